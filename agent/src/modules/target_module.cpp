#include "sanagent/agent/target_module.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <charconv>
#include <cstdio>
#include <map>
#include <set>

#include "sanagent/fd.h"

namespace sanagent::agent {

namespace fs = std::filesystem;
using configfs::ConfigfsOp;

namespace {

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}
bool is_lower_alnum(char c) {
    return is_digit(c) || (c >= 'a' && c <= 'z');
}
bool is_hex(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
        return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    });
}

std::uint64_t fnv1a(std::string_view text, std::uint64_t hash) {
    for (unsigned char c : text) {
        hash ^= c;
        hash *= 1099511628211ull;
    }
    return hash;
}

bool wanted(const Config& config) {
    auto roles = config.get_list("node", "", "roles");
    return std::find(roles.begin(), roles.end(), "storage") != roles.end() ||
           std::find(roles.begin(), roles.end(), "both") != roles.end();
}

// Where a diagnostic about a volume's key points: the key if given, else the table.
Origin origin_of(const Config& config, const ConfigObject& obj, std::string_view key) {
    if (const auto* v = config.value(obj.section, obj.name, key)) return v->origin;
    return obj.origin;
}

// The portals a volume's target listens on, as written (not yet normalized),
// with where they came from.
std::pair<std::vector<std::string>, Origin> portal_texts(const Config& config, const std::string& volume) {
    if (const auto* v = config.value("volume", volume, "portals");
        v && !std::get<std::vector<std::string>>(v->data).empty())
        return {std::get<std::vector<std::string>>(v->data), v->origin};
    if (const auto* v = config.value("node", "", "portals"); v && !std::get<std::vector<std::string>>(v->data).empty())
        return {std::get<std::vector<std::string>>(v->data), v->origin};
    // This node's storage network address in the cluster table.
    const std::string node = config.get_string("node", "", "name");
    if (!node.empty())
        for (const auto* cluster : config.objects("cluster"))
            if (const auto* nodes = config.value("cluster", cluster->name, "nodes")) {
                const auto& map = std::get<std::map<std::string, std::string>>(nodes->data);
                if (auto it = map.find(node); it != map.end()) return {{it->second}, nodes->origin};
            }
    // No storage address known: every address of the node.
    return {{"0.0.0.0:3260"}, Origin{}};
}

std::string device_of(const Config& config, const std::string& volume) {
    std::string device = config.get_string("volume", volume, "device");
    if (!device.empty()) return device;
    std::string pool = config.get_string("volume", volume, "pool");
    if (pool.empty()) {
        auto pools = config.objects("pool");
        if (pools.size() == 1) pool = pools.front()->name;
    }
    if (pool.empty()) return {};
    // The LV shares the volume's name (lvm module): /dev/<vg>/<volume>.
    return "/dev/" + config.get_string("pool", pool, "vg") + "/" + volume;
}

bool printable_token(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return c > ' ' && c < 0x7f; });
}

// Checks one CHAP pair (user + secret file) and returns the secret when readable.
std::optional<std::string> check_chap(const Config& config, const ConfigObject& obj, const std::string& user_key,
                                      const std::string& file_key, Diagnostics& diagnostics) {
    const std::string user = config.get_string(obj.section, obj.name, user_key);
    const std::string file = config.get_string(obj.section, obj.name, file_key);
    if (user.empty() != file.empty()) {
        diagnostics.error(origin_of(config, obj, user.empty() ? file_key : user_key), obj.id(),
                          user.empty() ? user_key : file_key,
                          "expected both " + user_key + " and " + file_key + ", or neither");
        return std::nullopt;
    }
    if (user.empty()) return std::nullopt;
    if (user.size() > kMaxChapField || !printable_token(user))
        diagnostics.error(origin_of(config, obj, user_key), obj.id(), user_key,
                          "expected at most 255 printable characters without spaces");
    struct stat st {};
    if (::lstat(file.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || (st.st_mode & 077) != 0)
        return std::nullopt;  // already reported by the config's own secrets check
    auto secret = read_secret(file);
    if (!secret) {
        diagnostics.error(origin_of(config, obj, file_key), obj.id(), file_key, secret.error().message);
        return std::nullopt;
    }
    // Lengths only: the secret itself never reaches a message.
    if (secret->size() < kMinChapSecret || secret->size() > kMaxChapField)
        diagnostics.error(origin_of(config, obj, file_key), obj.id(), file_key,
                          "expected a secret of 12 to 255 bytes (RFC 3720 8.2.1 asks for 96 bits; LIO keeps 255), "
                          "got " +
                              std::to_string(secret->size()) + " bytes in " + file);
    else if (!printable_token(*secret))
        diagnostics.error(origin_of(config, obj, file_key), obj.id(), file_key,
                          "expected a secret of printable characters without spaces on one line in " + file);
    return secret.value();
}

Result<std::optional<configfs::ChapSpec>> chap_of(const Config& config, std::string_view section,
                                                  const std::string& name, const std::string& prefix,
                                                  TargetModule::SecretCache* cache = nullptr) {
    const std::string user = config.get_string(section, name, prefix + "chap_user");
    if (user.empty()) return std::optional<configfs::ChapSpec>{};
    configfs::ChapSpec chap;
    chap.userid = user;
    const std::string file = config.get_string(section, name, prefix + "chap_secret_file");
    Result<std::string> secret = std::string();
    if (cache) {
        auto it = cache->find(file);
        if (it == cache->end()) it = cache->emplace(file, read_secret(file)).first;
        secret = it->second;
    } else {
        secret = read_secret(file);
    }
    if (!secret)
        return secret.error().context("reading the CHAP secret of [" + std::string(section) + "." + name + "]");
    chap.password = std::move(secret.value());
    return std::optional<configfs::ChapSpec>{std::move(chap)};
}

std::vector<std::string> secret_warnings(const Config& config, const std::string& volume) {
    std::vector<std::string> out;
    for (const auto& server : config.get_list("volume", volume, "servers"))
        for (const char* key : {"chap_secret_file", "mutual_chap_secret_file"}) {
            const std::string file = config.get_string("server", server, key);
            if (file.empty()) continue;
            if (auto s = read_secret(file); s && s->size() > kPortableChapSecret)
                out.push_back("server " + server + ": " + key + " holds " + std::to_string(s->size()) +
                              " bytes; some initiators accept at most 16");
        }
    return out;
}

bool under_any(const fs::path& path, const std::vector<fs::path>& dirs) {
    const std::string p = path.string();
    return std::any_of(dirs.begin(), dirs.end(), [&](const fs::path& d) {
        const std::string ds = d.string();
        return p.size() > ds.size() && p.compare(0, ds.size(), ds) == 0 && p[ds.size()] == '/';
    });
}

// One configfs op as one engine Step, with its undo: a made directory or link
// is removed, the TPG's enable goes back to 0, a write inside a directory this
// plan made goes with the directory, and any other write puts back the value
// read just before it. Removals cannot be undone (the engine says so).
std::vector<Step> steps_of(const std::shared_ptr<configfs::ConfigfsTree>& tree, const std::string& object,
                           const std::vector<ConfigfsOp>& ops, const std::string& check_device) {
    std::vector<Step> steps;
    std::vector<fs::path> made;
    for (const auto& op : ops) {
        Step step;
        step.object = object;
        step.action = op.describe();
        step.claims = true;
        auto one = std::make_shared<const std::vector<ConfigfsOp>>(1, op);
        std::string device = (op.kind == ConfigfsOp::Kind::MakeDir && op.path.parent_path().parent_path() == "core" &&
                              !check_device.empty())
                                 ? check_device
                                 : std::string();
        step.apply = [tree, one, object, device]() -> Status {
            if (!device.empty()) {
                struct stat st {};
                if (::stat(device.c_str(), &st) != 0 || !S_ISBLK(st.st_mode))
                    return Error{ENOENT, object + ": backing device " + device +
                                             " is not a block device (is the "
                                             "volume's LV created?)"};
            }
            return configfs::apply_ops(*tree, *one, object);
        };
        const fs::path path = op.path;
        switch (op.kind) {
            case ConfigfsOp::Kind::MakeDir:
                step.undo = [tree, path]() { return tree->remove_dir(path); };
                made.push_back(path);
                break;
            case ConfigfsOp::Kind::MakeLink:
                step.undo = [tree, path]() { return tree->remove_link(path); };
                break;
            case ConfigfsOp::Kind::Write:
                if (path.filename() == "enable" && path.parent_path().filename().string().rfind("tpgt_", 0) == 0 &&
                    op.value == "1") {
                    step.undo = [tree, path]() { return tree->write_attr(path, "0"); };
                } else if (under_any(path, made) || path.filename() == "enable") {
                    // A storage object cannot be disabled, only removed: its rmdir undoes this.
                    step.undo = []() -> Status { return {}; };
                } else {
                    auto before = std::make_shared<std::optional<std::string>>();
                    step.apply = [tree, one, object, before, path]() -> Status {
                        *before = tree->read_attr(path);
                        return configfs::apply_ops(*tree, *one, object);
                    };
                    step.undo = [tree, before, path]() -> Status {
                        if (!*before) return Error{0, "the previous value of " + path.string() + " was not readable"};
                        return tree->write_attr(path, (*before)->empty() ? std::string("NULL") : **before);
                    };
                }
                break;
            case ConfigfsOp::Kind::RemoveDir:
            case ConfigfsOp::Kind::RemoveLink:
                break;
        }
        steps.push_back(std::move(step));
    }
    return steps;
}

}  // namespace

bool is_valid_iqn(std::string_view n) {
    // iqn.yyyy-mm.
    if (n.size() > 223 || n.size() < 13 || n.substr(0, 4) != "iqn.") return false;
    for (std::size_t i : {4u, 5u, 6u, 7u, 9u, 10u})
        if (!is_digit(n[i])) return false;
    if (n[8] != '-' || n[11] != '.') return false;
    const int month = (n[9] - '0') * 10 + (n[10] - '0');
    if (month < 1 || month > 12) return false;
    std::string_view rest = n.substr(12);
    const auto colon = rest.find(':');
    std::string_view domain = rest.substr(0, colon);
    // The naming authority's reversed domain: labels of [a-z0-9-].
    if (domain.empty() || domain.front() == '.' || domain.back() == '.' || domain.find("..") != std::string_view::npos)
        return false;
    if (!std::all_of(domain.begin(), domain.end(), [](char c) { return is_lower_alnum(c) || c == '-' || c == '.'; }))
        return false;
    if (colon == std::string_view::npos) return true;
    std::string_view suffix = rest.substr(colon + 1);
    return !suffix.empty() && std::all_of(suffix.begin(), suffix.end(),
                                          [](char c) { return is_lower_alnum(c) || c == '-' || c == '.' || c == ':'; });
}

bool is_valid_initiator_name(std::string_view n) {
    if (n.substr(0, 4) == "eui.") return n.size() == 20 && is_hex(n.substr(4));
    if (n.substr(0, 4) == "naa.") return (n.size() == 20 || n.size() == 36) && is_hex(n.substr(4));
    return is_valid_iqn(n);
}

Result<std::string> normalize_portal(std::string_view text) {
    std::string host;
    std::string_view port = "3260";
    bool v6 = false;
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string_view::npos) return Error{EINVAL, "expected [IPv6]:PORT"};
        host = std::string(text.substr(1, close - 1));
        std::string_view after = text.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') return Error{EINVAL, "expected [IPv6]:PORT"};
            port = after.substr(1);
        }
        v6 = true;
    } else {
        const auto colon = text.find(':');
        if (colon != std::string_view::npos && text.find(':', colon + 1) != std::string_view::npos)
            return Error{EINVAL, "expected an IPv6 address in brackets: [ADDRESS]:PORT"};
        host = std::string(text.substr(0, colon));
        if (colon != std::string_view::npos) port = text.substr(colon + 1);
    }
    unsigned char buf[16];
    if (::inet_pton(v6 ? AF_INET6 : AF_INET, host.c_str(), buf) != 1)
        return Error{EINVAL, "expected an IP address, got \"" + host.substr(0, 64) + "\""};
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc{} || end != port.data() + port.size() || value == 0 || value > 65535)
        return Error{EINVAL, "expected a port 1-65535, got \"" + std::string(port.substr(0, 16)) + "\""};
    // The kernel names np directories the way it prints them: canonical text.
    char canonical[INET6_ADDRSTRLEN] = {};
    ::inet_ntop(v6 ? AF_INET6 : AF_INET, buf, canonical, sizeof canonical);
    return (v6 ? "[" + std::string(canonical) + "]" : std::string(canonical)) + ":" + std::to_string(value);
}

std::string volume_serial(std::string_view group, std::string_view volume) {
    std::string key = "sanagent:";
    key.append(group).append("/").append(volume);
    const std::uint64_t a = fnv1a(key, 14695981039346656037ull);
    const std::uint64_t b = fnv1a(key, a ^ 0x9e3779b97f4a7c15ull);
    char out[33];
    std::snprintf(out, sizeof out, "%016llx%016llx", static_cast<unsigned long long>(a),
                  static_cast<unsigned long long>(b));
    return out;
}

Result<std::string> read_secret(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd.valid()) return last_errno("opening secret file " + path);
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return last_errno("stat of secret file " + path);
    if (!S_ISREG(st.st_mode) || st.st_uid != ::geteuid() || (st.st_mode & 077) != 0)
        return Error{EPERM, "secret file " + path + " must be a regular file owned by uid " +
                                std::to_string(::geteuid()) + " with mode 0600"};
    std::string secret(4097, '\0');
    std::size_t got = 0;
    while (got < secret.size()) {
        ssize_t n = ::read(fd.get(), secret.data() + got, secret.size() - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return last_errno("reading secret file " + path);
        if (n == 0) break;
        got += static_cast<std::size_t>(n);
    }
    if (got > 4096) return Error{EFBIG, "secret file " + path + " is larger than 4096 bytes"};
    secret.resize(got);
    if (!secret.empty() && secret.back() == '\n') secret.pop_back();
    return secret;
}

std::string TargetModule::target_iqn(const Config& config, const std::string& volume) {
    std::string iqn = config.get_string("volume", volume, "iqn");
    if (!iqn.empty()) return iqn;
    return config.get_string("group", "", "iqn_prefix") + ":" + config.get_string("group", "", "name") + ":" + volume;
}

Result<configfs::TargetSpec> TargetModule::target_spec(const Config& config, const std::string& volume,
                                                       SecretCache* secrets) {
    configfs::TargetSpec spec;
    spec.iqn = target_iqn(config, volume);
    spec.storage.plugin = config.get_string("volume", volume, "backstore");
    spec.storage.name = volume;
    spec.storage.device = device_of(config, volume);
    spec.storage.size_bytes = config.get_size("volume", volume, "size");
    spec.storage.serial = volume_serial(config.get_string("group", "", "name"), volume);
    spec.storage.thin = config.get_string("volume", volume, "provisioning") == "thin";
    for (const auto& text : portal_texts(config, volume).first) {
        auto portal = normalize_portal(text);
        if (!portal) return portal.error().context("portal of volume " + volume);
        spec.portals.push_back(*portal);
    }
    for (const auto& server : config.get_list("volume", volume, "servers")) {
        configfs::AclSpec acl;
        acl.initiator_iqn = config.get_string("server", server, "iqn");
        auto chap = chap_of(config, "server", server, "", secrets);
        if (!chap) return chap.error();
        acl.chap = std::move(chap.value());
        auto mutual = chap_of(config, "server", server, "mutual_", secrets);
        if (!mutual) return mutual.error();
        if (acl.chap && mutual.value()) {
            acl.chap->mutual_userid = mutual.value()->userid;
            acl.chap->mutual_password = mutual.value()->password;
        }
        spec.acls.push_back(std::move(acl));
    }
    return spec;
}

void TargetModule::validate(const Config& config, Diagnostics& diagnostics) const {
    const bool storage = wanted(config);
    for (const auto* server : config.objects("server")) {
        const std::string iqn = config.get_string("server", server->name, "iqn");
        if (!iqn.empty() && !is_valid_initiator_name(iqn))
            diagnostics.error(origin_of(config, *server, "iqn"), server->id(), "iqn",
                              "expected an initiator name: iqn.yyyy-mm.reversed.domain[:...] in lower case (RFC "
                              "3720 3.2.6.3.1, at most 223 bytes), eui.<16 hex> or naa.<16|32 hex>");
        auto one_way = check_chap(config, *server, "chap_user", "chap_secret_file", diagnostics);
        auto mutual = check_chap(config, *server, "mutual_chap_user", "mutual_chap_secret_file", diagnostics);
        if (!config.get_string("server", server->name, "mutual_chap_user").empty() &&
            config.get_string("server", server->name, "chap_user").empty())
            diagnostics.error(origin_of(config, *server, "mutual_chap_user"), server->id(), "mutual_chap_user",
                              "expected chap_user too: mutual CHAP adds the target's answer to one-way CHAP");
        // RFC 3720 8.2.1: a secret used to authenticate initiators must not
        // authenticate targets, or a rogue target can replay it.
        if (one_way && mutual && *one_way == *mutual)
            diagnostics.error(origin_of(config, *server, "mutual_chap_secret_file"), server->id(),
                              "mutual_chap_secret_file", "expected a secret different from chap_secret_file's");
    }
    if (const auto* group = config.find("group"))
        check_chap(config, *group, "discovery_chap_user", "discovery_chap_secret_file", diagnostics);

    std::map<std::string, std::string> iqns;     // iqn -> volume
    std::map<std::string, std::string> serials;  // first 25 hex digits -> volume
    for (const auto* vol : config.objects("volume")) {
        const std::string& name = vol->name;
        const bool explicit_iqn = !config.get_string("volume", name, "iqn").empty();
        if (!explicit_iqn &&
            (config.get_string("group", "", "iqn_prefix").empty() || config.get_string("group", "", "name").empty())) {
            diagnostics.error(vol->origin, vol->id(), "iqn",
                              "expected [group] name and iqn_prefix (the IQN is <iqn_prefix>:<group>:<volume>) or an "
                              "iqn for the volume");
        } else {
            const std::string iqn = target_iqn(config, name);
            if (!is_valid_iqn(iqn))
                diagnostics.error(origin_of(config, *vol, "iqn"), vol->id(), "iqn",
                                  "expected iqn.yyyy-mm.reversed.domain[:...] in lower case letters, digits, '-', "
                                  "'.', ':' (RFC 3720 3.2.6.3.1), at most 223 bytes; got \"" +
                                      iqn.substr(0, 240) + "\"");
            else if (auto [it, fresh] = iqns.emplace(iqn, name); !fresh)
                diagnostics.error(origin_of(config, *vol, "iqn"), vol->id(), "iqn",
                                  "duplicate IQN " + iqn + ", also the IQN of [volume." + it->second + "]");
        }
        const std::string serial = volume_serial(config.get_string("group", "", "name"), name);
        if (auto [it, fresh] = serials.emplace(serial.substr(0, 25), name); !fresh)
            diagnostics.error(vol->origin, vol->id(), {}, "SCSI serial collides with [volume." + it->second + "]'s");

        auto [portals, portals_origin] = portal_texts(config, name);
        std::set<std::string> seen;
        for (const auto& text : portals) {
            auto portal = normalize_portal(text);
            if (!portal)
                diagnostics.error(portals_origin, vol->id(), "portals",
                                  "\"" + text.substr(0, 64) + "\": " + portal.error().message);
            else if (!seen.insert(*portal).second)
                diagnostics.error(portals_origin, vol->id(), "portals", "duplicate portal " + *portal);
        }

        std::set<std::string> initiators;
        bool with_chap = false, without_chap = false;
        for (const auto& server : config.get_list("volume", name, "servers")) {
            if (!config.find("server", server)) continue;  // reported by the config's reference check
            const std::string iqn = config.get_string("server", server, "iqn");
            if (!initiators.insert(iqn).second)
                diagnostics.error(origin_of(config, *vol, "servers"), vol->id(), "servers",
                                  "two servers with the same IQN " + iqn + " (one ACL per initiator)");
            (config.get_string("server", server, "chap_user").empty() ? without_chap : with_chap) = true;
        }
        // LIO's authentication switch is per TPG: servers without CHAP could not log in.
        if (with_chap && without_chap)
            diagnostics.error(origin_of(config, *vol, "servers"), vol->id(), "servers",
                              "expected all of the volume's servers with CHAP or all without (LIO's TPG "
                              "authentication is one switch)");

        const std::string backstore = config.get_string("volume", name, "backstore");
        const std::string device = device_of(config, name);
        if (device.empty()) {
            diagnostics.error(vol->origin, vol->id(), "device",
                              "expected a device (or a pool whose LV /dev/<vg>/<volume> backs the volume)");
        } else if (device.find(',') != std::string::npos || device.find('\n') != std::string::npos) {
            diagnostics.error(origin_of(config, *vol, "device"), vol->id(), "device",
                              "expected a path without ',' or newlines (LIO's control syntax)");
        } else if (storage && config.value("volume", name, "device")) {
            // An explicit device must be there; the pool's LV is made by the lvm module in the same run.
            struct stat st {};
            if (backstore == "iblock" && (::stat(device.c_str(), &st) != 0 || !S_ISBLK(st.st_mode)))
                diagnostics.error(origin_of(config, *vol, "device"), vol->id(), "device",
                                  "expected an existing block device: " + device);
            if (backstore == "fileio" && !fs::is_directory(fs::path(device).parent_path()))
                diagnostics.error(origin_of(config, *vol, "device"), vol->id(), "device",
                                  "expected a file in an existing directory: " + device);
        }
        if (backstore == "fileio" && !config.value("volume", name, "device"))
            diagnostics.error(vol->origin, vol->id(), "device", "expected a device (the file) for backstore fileio");
    }
}

Status TargetModule::observe() {
    // Only what plan and status compare, but all of that, at every pass.
    observed_ = configfs::observe_lio(*tree_, configfs::LioDepth::plan);
    return {};
}

std::vector<std::string> TargetModule::desired_objects(const Config& config) const {
    std::vector<std::string> out;
    if (!wanted(config)) return out;
    for (const auto* vol : config.objects("volume")) out.push_back(object_of(vol->name));
    if (!config.get_string("group", "", "discovery_chap_user").empty()) out.push_back(kDiscoveryObject);
    return out;
}

bool TargetModule::ours(const configfs::TargetState& target, const configfs::TargetSpec& spec, const Ownership& owned,
                        const std::string& object) const {
    if (owned.owns(object)) return true;
    const std::string mine = configfs::sanagent_hba(spec.storage.plugin) + "/" + spec.storage.name;
    for (const auto& tpg : target.tpgs)
        for (const auto& lun : tpg.luns)
            if (lun.storage_object == mine) return true;
    return false;
}

std::vector<Step> TargetModule::plan(const Config& config, const Ownership& owned) {
    std::vector<Step> steps;
    if (!wanted(config) || !observed_.present) return steps;
    // Directories every target shares (the iscsi fabric, sanagent's HBAs) are
    // planned once, before the volumes, so undoing one volume never takes
    // away what another needs.
    std::vector<ConfigfsOp> shared;
    std::vector<Step> volumes;
    auto is_shared = [](const ConfigfsOp& op) {
        return op.kind == ConfigfsOp::Kind::MakeDir &&
               (op.path == "iscsi" ||
                (op.path.parent_path() == "core" &&
                 op.path.filename().string().ends_with("_" + std::to_string(configfs::kSanagentHbaIndex))));
    };
    auto removes_acl = [](const ConfigfsOp& op) {
        return op.kind == ConfigfsOp::Kind::RemoveDir && op.path.parent_path().filename() == "acls";
    };
    std::optional<configfs::LioState> full;  // read only when a removal needs it
    SecretCache secrets;
    for (const auto* vol : config.objects("volume")) {
        const std::string object = object_of(vol->name);
        auto spec = target_spec(config, vol->name, &secrets);
        if (!spec) {
            // Nothing can be planned without the secrets; the apply reports why.
            steps.push_back({object,
                             "read the volume's CHAP secrets",
                             [e = spec.error()]() -> Status { return e; },
                             {},
                             false,
                             {}});
            continue;
        }
        if (const auto* target = configfs::find_target(observed_, spec->iqn);
            target && !ours(*target, *spec, owned, object))
            continue;  // foreign: status says so
        auto planned = configfs::plan_target(*spec, observed_);
        // LioDepth::plan does not list what a removal must empty first (a
        // mapped LUN someone added by hand next to ours), so a plan that
        // removes a server's ACL is made again from the whole tree.
        if (std::any_of(planned.begin(), planned.end(), removes_acl)) {
            if (!full) full = configfs::observe_lio(*tree_, configfs::LioDepth::full);
            planned = configfs::plan_target(*spec, *full);
        }
        std::vector<ConfigfsOp> ops;
        for (auto& op : planned) {
            if (is_shared(op)) {
                if (std::none_of(shared.begin(), shared.end(), [&](const ConfigfsOp& s) { return s.path == op.path; }))
                    shared.push_back(std::move(op));
            } else {
                ops.push_back(std::move(op));
            }
        }
        auto vs = steps_of(tree_, object, ops, spec->storage.plugin == "iblock" ? spec->storage.device : "");
        std::move(vs.begin(), vs.end(), std::back_inserter(volumes));
    }

    const std::string disc_user = config.get_string("group", "", "discovery_chap_user");
    std::vector<ConfigfsOp> discovery;
    if (!disc_user.empty()) {
        const auto& have = observed_.discovery_auth;
        const bool foreign = !owned.owns(kDiscoveryObject) && have.enforce && have.chap.userid != disc_user;
        auto chap = chap_of(config, "group", "", "discovery_");
        if (!chap) {
            volumes.push_back({kDiscoveryObject,
                               "read the discovery CHAP secret",
                               [e = chap.error()]() -> Status { return e; },
                               {},
                               false,
                               {}});
        } else if (!foreign) {
            if (!observed_.iscsi_fabric &&
                std::none_of(shared.begin(), shared.end(), [](const ConfigfsOp& s) { return s.path == "iscsi"; }))
                shared.push_back({ConfigfsOp::Kind::MakeDir, "iscsi", {}, {}, false, "register the iSCSI fabric"});
            discovery = configfs::plan_discovery_auth(*chap, observed_);
        }
    }

    auto tree = tree_;
    for (const auto& op : shared) {
        const fs::path path = op.path;
        // An HBA directory can exist without storage objects (observe cannot see it): that is fine.
        steps.push_back({kFabricObject,
                         op.describe(),
                         [tree, path]() -> Status { return tree->exists(path) ? Status{} : tree->make_dir(path); },
                         {},
                         false,
                         {}});
    }
    std::move(volumes.begin(), volumes.end(), std::back_inserter(steps));
    auto ds = steps_of(tree_, kDiscoveryObject, discovery, "");
    std::move(ds.begin(), ds.end(), std::back_inserter(steps));
    return steps;
}

std::vector<ObjectStatus> TargetModule::status(const Config& config, const Ownership& owned) {
    std::vector<ObjectStatus> out;
    if (!wanted(config)) return out;
    SecretCache secrets;
    for (const auto* vol : config.objects("volume")) {
        const std::string object = object_of(vol->name);
        ObjectStatus s{object, target_iqn(config, vol->name), "absent", Health::ok, {}};
        auto spec = target_spec(config, vol->name, &secrets);
        const configfs::TargetState* target = spec ? configfs::find_target(observed_, spec->iqn) : nullptr;
        if (!observed_.present) {
            s.actual = "(LIO not loaded)";
            s.health = Health::degraded;
            s.detail = "target_core_mod is not loaded or configfs is not mounted";
        } else if (!spec) {
            s.health = Health::failed;
            s.detail = spec.error().message;
        } else if (target && !ours(*target, *spec, owned, object)) {
            s.actual = "a target made by someone else";
            s.health = Health::foreign;
            s.detail = "not made by sanagent (its LUN is not " + configfs::sanagent_hba(spec->storage.plugin) + "/" +
                       vol->name + "); left alone";
        } else {
            if (target) {
                std::size_t acls = 0;
                bool enabled = false;
                for (const auto& tpg : target->tpgs) {
                    acls += tpg.acls.size();
                    enabled = enabled || tpg.enabled;
                }
                s.actual = std::string(enabled ? "exported" : "disabled") + ", " + std::to_string(acls) + " ACL(s)";
            }
            if (auto pending = configfs::plan_target(*spec, observed_); !pending.empty()) {
                s.health = Health::degraded;
                s.detail = std::to_string(pending.size()) + " configfs change(s) pending";
            }
            auto warnings = secret_warnings(config, vol->name);
            for (const auto& w : warnings) s.detail += (s.detail.empty() ? "" : "; ") + w;
        }
        out.push_back(std::move(s));
    }
    if (const std::string user = config.get_string("group", "", "discovery_chap_user"); !user.empty()) {
        const auto& have = observed_.discovery_auth;
        ObjectStatus s{kDiscoveryObject,
                       "CHAP user " + user,
                       have.enforce ? "CHAP user " + have.chap.userid : "not enforced",
                       Health::ok,
                       {}};
        auto chap = chap_of(config, "group", "", "discovery_");
        if (!chap) {
            s.health = Health::failed;
            s.detail = chap.error().message;
        } else if (!owned.owns(kDiscoveryObject) && have.enforce && have.chap.userid != user) {
            s.health = Health::foreign;
            s.detail = "discovery CHAP set by someone else; left alone";
        } else if (!configfs::plan_discovery_auth(*chap, observed_).empty()) {
            s.health = Health::degraded;
            s.detail = "not applied yet";
        }
        out.push_back(std::move(s));
    }
    return out;
}

}  // namespace sanagent::agent
