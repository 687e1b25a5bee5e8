#include "sanagent/lvm/initiator.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <fstream>
#include <map>
#include <sstream>

#include "sanagent/fd.h"
#include "sanagent/lvm/scsi.h"

namespace sanagent::lvm {

namespace fs = std::filesystem;

namespace {

// open-iscsi's iscsi_err.h
constexpr int kSessionExists = 15;
constexpr int kNoObjectsFound = 21;

std::string trim(std::string s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
    std::size_t i = 0;
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    return s.substr(i);
}

Result<std::string> read_small_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return last_errno("reading " + path.string());
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

bool valid_secret_text(const std::string& s) {
    for (char c : s)
        if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f) return false;
    return true;
}

}  // namespace

std::vector<Session> parse_sessions(std::string_view text) {
    std::vector<Session> out;
    std::istringstream in{std::string(text)};
    std::string line;
    while (std::getline(in, line)) {
        // tcp: [3] 192.168.77.11:3260,1 iqn.2026-11.org.example:g:vol1 (non-flash)
        std::istringstream words(line);
        std::string transport, sid, portal, target;
        if (!(words >> transport >> sid >> portal >> target)) continue;
        if (sid.size() < 3 || sid.front() != '[' || sid.back() != ']') continue;
        Session s;
        try {
            s.sid = std::stoi(sid.substr(1, sid.size() - 2));
            auto comma = portal.rfind(',');
            if (comma != std::string::npos) s.tpgt = std::stoi(portal.substr(comma + 1));
            s.portal = portal.substr(0, comma);
        } catch (const std::exception&) {
            continue;
        }
        s.target = target;
        out.push_back(std::move(s));
    }
    return out;
}

std::string update_node_record(std::string_view record, const NodeSettings& settings) {
    std::vector<std::pair<std::string, std::string>> wanted = {
        {"node.startup", settings.automatic_startup ? "automatic" : "manual"},
        {"node.conn[0].startup", settings.automatic_startup ? "automatic" : "manual"},
        {"node.session.timeo.replacement_timeout", std::to_string(settings.replacement_timeout.count())},
        {"node.session.auth.authmethod", settings.chap ? "CHAP" : "None"},
    };
    if (settings.chap) {
        wanted.emplace_back("node.session.auth.username", settings.chap->user);
        wanted.emplace_back("node.session.auth.password", settings.chap->secret);
    }
    std::map<std::string, bool> written;
    std::string out;
    std::istringstream in{std::string(record)};
    std::string line;
    auto add_missing = [&]() {
        for (const auto& [k, v] : wanted)
            if (!written[k]) {
                out += k + " = " + v + "\n";
                written[k] = true;
            }
    };
    while (std::getline(in, line)) {
        if (line.rfind("# END RECORD", 0) == 0) add_missing();
        auto eq = line.find(" = ");
        if (eq != std::string::npos && line[0] != '#') {
            const std::string key = line.substr(0, eq);
            bool replaced = false;
            for (const auto& [k, v] : wanted)
                if (k == key) {
                    out += k + " = " + v + "\n";
                    written[k] = true;
                    replaced = true;
                }
            // Without CHAP, stale credentials go: nothing secret stays behind.
            if (!settings.chap && (key == "node.session.auth.username" || key == "node.session.auth.password"))
                replaced = true;
            if (replaced) continue;
        }
        out += line + "\n";
    }
    add_missing();
    return out;
}

std::string iscsiadm_failure(int code) {
    switch (code) {
        case 2:
            return "session not found";
        case 4:
            return "transport error (is the portal reachable and listening on its port?)";
        case 5:
            return "login failed (the target refused it: is this initiator in its ACL?)";
        case 6:
            return "the node record database is unreadable";
        case 7:
            return "invalid argument";
        case 8:
            return "connection timed out (is the portal reachable?)";
        case 11:
            return "the target did not answer in time";
        case 13:
            return "access denied";
        case 15:
            return "a session already exists";
        case 19:
            return "fatal login error (target not found, or this initiator is not allowed)";
        case 20:
            return "iscsid is not running";
        case 21:
            return "no such record or session (was the target discovered on this portal?)";
        case 24:
            return "CHAP authentication failed (wrong chap_user or secret)";
        case 29:
            return "the portal did not answer (try again?)";
        default:
            return "iscsiadm exit status " + std::to_string(code);
    }
}

std::string portal_with_default_port(const std::string& portal) {
    return portal.find(':') == std::string::npos ? portal + ":3260" : portal;
}

bool is_valid_portal(std::string_view portal) {
    // IPv4 dotted quad, optional :port. Host names are not accepted: a portal
    // ends up in a record path and must be exactly what iscsiadm prints.
    auto colon = portal.find(':');
    std::string_view ip = portal.substr(0, colon);
    int parts = 0;
    for (std::size_t i = 0; i <= ip.size();) {
        auto dot = ip.find('.', i);
        auto part = ip.substr(i, dot == std::string_view::npos ? std::string_view::npos : dot - i);
        if (part.empty() || part.size() > 3) return false;
        int v = 0;
        for (char c : part) {
            if (c < '0' || c > '9') return false;
            v = v * 10 + (c - '0');
        }
        if (v > 255) return false;
        ++parts;
        if (dot == std::string_view::npos) break;
        i = dot + 1;
    }
    if (parts != 4) return false;
    if (colon == std::string_view::npos) return true;
    auto port = portal.substr(colon + 1);
    if (port.empty() || port.size() > 5) return false;
    int p = 0;
    for (char c : port) {
        if (c < '0' || c > '9') return false;
        p = p * 10 + (c - '0');
    }
    return p > 0 && p < 65536;
}

bool is_valid_iqn(std::string_view iqn) {
    if (iqn.size() < 12 || iqn.size() > 223 || !iqn.starts_with("iqn.")) return false;
    // iqn.YYYY-MM.
    for (std::size_t i : {4u, 5u, 6u, 7u, 9u, 10u})
        if (!std::isdigit(static_cast<unsigned char>(iqn[i]))) return false;
    if (iqn[8] != '-' || iqn[11] != '.') return false;
    for (char c : iqn)
        if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) || c == '.' ||
              c == '-' || c == ':'))
            return false;
    return true;
}

Result<std::string> read_secret_file(const fs::path& path, uid_t owner) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd.valid()) return last_errno("reading the CHAP secret file " + path.string());
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return last_errno("reading the CHAP secret file " + path.string());
    if (!S_ISREG(st.st_mode) || st.st_uid != owner || (st.st_mode & 07777) != 0600)
        return Error{EPERM, "reading the CHAP secret file " + path.string() +
                                ": expected a regular file owned by uid " + std::to_string(owner) + " with mode 0600"};
    char buf[256];
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) return last_errno("reading the CHAP secret file " + path.string());
    std::string secret(buf, static_cast<std::size_t>(n));
    while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
    if (!valid_secret_text(secret))
        return Error{EINVAL, "reading the CHAP secret file " + path.string() +
                                 ": expected one line of printable characters without spaces"};
    if (secret.size() < 12 || secret.size() > 255)
        return Error{EINVAL, "reading the CHAP secret file " + path.string() + ": a CHAP secret has 12 to 255 " +
                                 "characters (RFC 3720 asks for at least 12), this one has " +
                                 std::to_string(secret.size())};
    return secret;
}

Result<CommandOutput> Initiator::iscsiadm(std::vector<std::string> args, const std::string& what,
                                          std::chrono::seconds bound) {
    args.insert(args.begin(), "iscsiadm");
    Command cmd(std::move(args), bound);
    auto out = runner_.run(cmd);
    if (!out) return out.error().context(what);
    if (out->exit_code != 0) {
        // The line naming the cause ("initiator reported error (24 - ...
        // authorization failure)") beats the summary iscsiadm ends with.
        std::string said, line;
        std::istringstream lines(out->err);
        while (std::getline(lines, line))
            if (!trim(line).empty() &&
                (said.empty() || said.find("error") == std::string::npos || line.find("error") != std::string::npos))
                said = trim(line);
        if (said.rfind("iscsiadm: ", 0) == 0) said = said.substr(10);
        return Error{out->exit_code, what + ": " + iscsiadm_failure(out->exit_code) +
                                         (said.empty() ? "" : " (iscsiadm: " + said + ")")};
    }
    return out;
}

Result<std::vector<std::string>> Initiator::discover(const std::string& portal) {
    auto out =
        iscsiadm({"-m", "discovery", "-t", "sendtargets", "-p", portal}, "discovering the targets of portal " + portal);
    if (!out) return out.error();
    std::vector<std::string> targets;
    std::istringstream in(out->out);
    std::string address, iqn;
    while (in >> address >> iqn) targets.push_back(iqn);
    return targets;
}

Status Initiator::configure(const std::string& target, const std::string& portal, const NodeSettings& settings) {
    const std::string what = "configuring the node record of " + target + " at " + portal;
    // Records live in <iqn>/<ip>,<port>,<tpgt>/default.
    std::string prefix = portal_with_default_port(portal);
    prefix[prefix.rfind(':')] = ',';
    prefix += ",";
    std::error_code ec;
    fs::path record;
    for (const auto& entry : fs::directory_iterator(node_db_ / target, ec))
        if (entry.path().filename().string().rfind(prefix, 0) == 0) record = entry.path() / "default";
    if (record.empty() || !fs::is_regular_file(record, ec))
        return Error{ENOENT, what + ": no record under " + (node_db_ / target).string() + " (not discovered?)"};
    auto text = read_small_file(record);
    if (!text) return text.error().context(what);
    const std::string updated = update_node_record(*text, settings);
    if (updated == *text) return {};
    const fs::path tmp = record.string() + ".sanagent";
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd.valid()) return last_errno(what + ": creating " + tmp.string());
    for (std::size_t done = 0; done < updated.size();) {
        ssize_t n = ::write(fd.get(), updated.data() + done, updated.size() - done);
        if (n < 0) {
            ::unlink(tmp.c_str());
            return last_errno(what + ": writing " + tmp.string());
        }
        done += static_cast<std::size_t>(n);
    }
    if (::fsync(fd.get()) != 0 || ::rename(tmp.c_str(), record.c_str()) != 0) {
        auto e = last_errno(what + ": replacing " + record.string());
        ::unlink(tmp.c_str());
        return e;
    }
    return {};
}

Status Initiator::login(const std::string& target, const std::string& portal) {
    auto out = iscsiadm({"-m", "node", "-T", target, "-p", portal, "--login"},
                        "logging in to " + target + " at " + portal, std::chrono::seconds(120));
    if (!out && out.error().code != kSessionExists) return out.error();
    return {};
}

Status Initiator::logout(const std::string& target, const std::string& portal) {
    auto out =
        iscsiadm({"-m", "node", "-T", target, "-p", portal, "--logout"}, "logging out of " + target + " at " + portal);
    if (!out && out.error().code != kNoObjectsFound) return out.error();
    return {};
}

Status Initiator::forget(const std::string& target, const std::string& portal) {
    auto out = iscsiadm({"-m", "node", "-T", target, "-p", portal, "-o", "delete"},
                        "deleting the node record of " + target + " at " + portal);
    if (!out && out.error().code != kNoObjectsFound) return out.error();
    return {};
}

Result<std::vector<Session>> Initiator::sessions() {
    auto out = iscsiadm({"-m", "session"}, "listing iSCSI sessions", std::chrono::seconds(30));
    if (!out) {
        if (out.error().code == kNoObjectsFound) return std::vector<Session>{};
        return out.error();
    }
    return parse_sessions(out->out);
}

Result<std::string> Initiator::lun_device(const std::string& target, int lun) const {
    std::error_code ec;
    const fs::path sessions = sysfs_ / "class/iscsi_session";
    for (const auto& session : fs::directory_iterator(sessions, ec)) {
        auto name = read_small_file(session.path() / "targetname");
        if (!name || trim(*name) != target) continue;
        const fs::path device = session.path() / "device";
        std::error_code ec2;
        for (const auto& tgt : fs::directory_iterator(device, ec2)) {
            if (tgt.path().filename().string().rfind("target", 0) != 0) continue;
            std::error_code ec3;
            for (const auto& sdev : fs::directory_iterator(tgt.path(), ec3)) {
                const std::string hctl = sdev.path().filename().string();
                auto last = hctl.rfind(':');
                if (last == std::string::npos || hctl.substr(last + 1) != std::to_string(lun)) continue;
                std::error_code ec4;
                for (const auto& block : fs::directory_iterator(sdev.path() / "block", ec4))
                    return "/dev/" + block.path().filename().string();
            }
        }
    }
    return Error{ENOENT, "finding LUN " + std::to_string(lun) + " of " + target +
                             ": no block device in its sessions (not logged in, or the disk driver is not loaded)"};
}

Result<std::string> Initiator::device_scsi_id(const std::string& device) const {
    const std::string name = fs::path(device).filename().string();
    auto page = read_small_file(sysfs_ / "block" / name / "device/vpd_pg83");
    if (!page) return page.error().context("reading the SCSI id of " + device);
    auto ids = parse_device_identification(Bytes(reinterpret_cast<const std::uint8_t*>(page->data()), page->size()));
    if (!ids) return ids.error().context("reading the SCSI id of " + device);
    auto id = scsi_id(*ids);
    if (id.empty()) return Error{ENODATA, "reading the SCSI id of " + device + ": no usable designator in VPD 0x83"};
    return id;
}

}  // namespace sanagent::lvm
