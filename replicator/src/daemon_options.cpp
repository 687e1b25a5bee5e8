#include "sanagent/replicator/daemon_options.h"

#include <toml++/toml.h>

#include <bit>
#include <cctype>
#include <cstdlib>
#include <functional>
#include <map>

#include "sanagent/replicator/net.h"

namespace sanagent::replicator {

bool parse_size(const std::string& s, std::uint64_t& out) {
    if (s.empty() || s[0] < '0' || s[0] > '9') return false;
    char* end = nullptr;
    errno = 0;
    unsigned long long v = std::strtoull(s.c_str(), &end, 10);
    if (errno) return false;
    std::string unit(end);
    int shift = unit == "K" ? 10 : unit == "M" ? 20 : unit == "G" ? 30 : unit == "T" ? 40 : unit.empty() ? 0 : -1;
    if (shift < 0 || (shift && v > (~0ull >> shift))) return false;
    out = v << shift;
    return true;
}

namespace {

// One key's reader: it checks the value's type and range and stores it into
// the copy of the options; the message says what was expected.
using Setter = std::function<std::string(const toml::node&, DaemonOptions&)>;

Setter text(std::string DaemonOptions::*field) {
    return [field](const toml::node& n, DaemonOptions& o) -> std::string {
        auto v = n.value<std::string>();
        if (!v || v->empty()) return "expected a non-empty string";
        o.*field = *v;
        return {};
    };
}

Setter choice(std::string DaemonOptions::*field, std::string a, std::string b) {
    return [=](const toml::node& n, DaemonOptions& o) -> std::string {
        auto v = n.value<std::string>();
        if (!v || (*v != a && *v != b)) return "expected \"" + a + "\" or \"" + b + "\"";
        o.*field = *v;
        return {};
    };
}

Setter size(std::uint64_t DaemonOptions::*field, std::uint64_t min, std::uint64_t max) {
    return [=](const toml::node& n, DaemonOptions& o) -> std::string {
        std::uint64_t v = 0;
        bool ok = false;
        if (auto s = n.value<std::string>())
            ok = parse_size(*s, v);
        else if (auto i = n.as_integer(); i && i->get() >= 0) {
            v = static_cast<std::uint64_t>(i->get());
            ok = true;
        }
        if (!ok || v < min || v > max) return "expected a size like \"64K\" or \"10G\" in range";
        o.*field = v;
        return {};
    };
}

// The dirty bitmap's region: a power of two (the metadata file refuses
// anything else) and at most 1 MiB, what one resync copy carries.
Setter granularity() {
    auto in_range = size(&DaemonOptions::granularity, kMinGranularity, kMaxGranularity);
    return [in_range](const toml::node& n, DaemonOptions& o) -> std::string {
        if (auto why = in_range(n, o); !why.empty()) return why + " (4K to 1M, a power of two)";
        if (!std::has_single_bit(o.granularity)) return "expected a power of two from 4K to 1M";
        return {};
    };
}

template <typename T>
Setter integer(T DaemonOptions::*field, std::int64_t min, std::int64_t max) {
    return [=](const toml::node& n, DaemonOptions& o) -> std::string {
        auto i = n.as_integer();
        if (!i || i->get() < min || i->get() > max)
            return "expected an integer from " + std::to_string(min) + " to " + std::to_string(max);
        o.*field = static_cast<T>(i->get());
        return {};
    };
}

Setter flag(bool DaemonOptions::*field) {
    return [=](const toml::node& n, DaemonOptions& o) -> std::string {
        auto b = n.as_boolean();
        if (!b) return "expected true or false";
        o.*field = b->get();
        return {};
    };
}

const std::map<std::string, Setter>& daemon_keys() {
    static const std::map<std::string, Setter> keys = {
        {"node", text(&DaemonOptions::node)},
        {"threads", integer(&DaemonOptions::threads, 1, 256)},
        {"psk_file", text(&DaemonOptions::psk_file)},
        {"listen", text(&DaemonOptions::listen)},
        {"nbd_tls_psk", text(&DaemonOptions::nbd_tls_psk)},
        {"nbd_tls_dir", text(&DaemonOptions::nbd_tls_dir)},
    };
    return keys;
}

const std::map<std::string, Setter>& volume_keys() {
    static const std::map<std::string, Setter> keys = {
        {"role", choice(&DaemonOptions::role, "primary", "secondary")},
        {"replica", text(&DaemonOptions::replica)},
        {"meta", text(&DaemonOptions::meta)},
        {"size", size(&DaemonOptions::size, 4096, ~0ull)},
        {"granularity", granularity()},
        {"preallocate", flag(&DaemonOptions::preallocate)},
        {"direct_io", flag(&DaemonOptions::direct)},
        {"nbd_socket", text(&DaemonOptions::nbd_socket)},
        {"nbd_tcp", text(&DaemonOptions::nbd_tcp)},
        {"nbd_tls_psk", text(&DaemonOptions::nbd_tls_psk)},
        {"nbd_tls_dir", text(&DaemonOptions::nbd_tls_dir)},
        {"listen", text(&DaemonOptions::listen)},
        {"control", text(&DaemonOptions::control)},
        {"ack_timeout_ms", integer(&DaemonOptions::ack_timeout_ms, 100, 600000)},
        {"activity_retire_ms", integer(&DaemonOptions::retire_ms, 10, 3600000)},
        {"verify_chunk", size(&DaemonOptions::verify_chunk, 4096, 32u << 20)},
    };
    return keys;
}

const std::map<std::string, Setter>& peer_keys() {
    static const std::map<std::string, Setter> keys = {
        {"address", text(&DaemonOptions::peer)},
        {"mode",
         [](const toml::node& n, DaemonOptions& o) -> std::string {
             auto v = n.value<std::string>();
             if (!v || (*v != "sync" && *v != "async")) return "expected \"sync\" or \"async\"";
             o.async = *v == "async";
             return {};
         }},
        {"max_lag", size(&DaemonOptions::max_lag, 1, ~0ull)},
    };
    return keys;
}

}  // namespace

bool valid_volume_name(const std::string& name) {
    if (name.empty() || name.size() > 128 || name[0] == '.' || name[0] == '-') return false;
    for (unsigned char c : name)
        if (!std::isalnum(c) && c != '.' && c != '_' && c != '-') return false;
    return true;
}

void fill_defaults(DaemonOptions& o) {
    if (o.meta.empty() && !o.replica.empty()) o.meta = o.replica + ".meta";
    if (o.nbd_socket.empty()) o.nbd_socket = "/run/sanrepd/" + o.volume + ".nbd";
    if (o.control.empty()) o.control = "/run/sanrepd/" + o.volume + ".ctl";
}

std::string check_options(const DaemonOptions& o) {
    if (!valid_volume_name(o.volume))
        return "volume name '" + o.volume +
               "': use letters, digits, '.', '_', '-' (at most 128, not starting with . or -)";
    if (o.replica.empty()) return "replica: missing (the file or device holding this node's copy)";
    if (o.role != "primary" && o.role != "secondary") return "role: expected \"primary\" or \"secondary\"";
    if (o.role == "secondary" && o.listen.empty())
        return "listen: a secondary needs an address to listen on (here or in [sanrepd])";
    if (!o.nbd_tls_psk.empty() && !o.nbd_tls_dir.empty())
        return "nbd_tls_dir: give nbd_tls_psk or nbd_tls_dir, not both";
    // Addresses are parsed here, before anything is opened: a typo is an
    // error at start, not a link that retries for ever without a word.
    for (auto [key, value] : {std::pair<const char*, const std::string&>{"listen", o.listen},
                              {"address", o.peer},
                              {"nbd_tcp", o.nbd_tcp}}) {
        if (value.empty()) continue;
        if (auto st = check_address(value); !st)
            return std::string(key) + ": " + st.error().message + " (a numeric IP and a port, [::1]:PORT for IPv6)";
    }
    if (o.granularity < kMinGranularity || o.granularity > kMaxGranularity || !std::has_single_bit(o.granularity))
        return "granularity: " + std::to_string(o.granularity) + " bytes: expected a power of two from 4K to 1M";
    // The node name travels in HELLO and is what `resolve --keep` names.
    if (!o.node.empty() && !valid_volume_name(o.node))
        return "node: '" + o.node + "': use letters, digits, '.', '_', '-' (at most 128, not starting with . or -)";
    return {};
}

Status load_daemon_config(const std::string& path, const std::string& volume, DaemonOptions& out) {
    toml::table root;
    try {
        root = toml::parse_file(path);
    } catch (const toml::parse_error& e) {
        return Error{EINVAL, path + ":" + std::to_string(e.source().begin.line) + ": " + std::string(e.description())};
    }
    auto where = [&](const toml::node& n, const std::string& table, const std::string& key) {
        return path + ":" + std::to_string(n.source().begin.line) + ": [" + table + "] " + key + ": ";
    };
    DaemonOptions next = out;
    auto apply = [&](const toml::table& t, const std::string& name, const std::map<std::string, Setter>& keys,
                     const std::string& nested) -> Status {
        for (auto&& [k, v] : t) {
            std::string key(k.str());
            if (key == nested && !nested.empty()) continue;
            auto it = keys.find(key);
            if (it == keys.end()) return Error{EINVAL, where(v, name, key) + "unknown key"};
            if (auto why = it->second(v, next); !why.empty()) return Error{EINVAL, where(v, name, key) + why};
        }
        return {};
    };
    for (auto&& [k, v] : root) {
        std::string key(k.str());
        if (key != "sanrepd" && key != "volume")
            return Error{EINVAL, where(v, key, "") + "unknown table (expected [sanrepd] or [volume.NAME])"};
        if (!v.is_table()) return Error{EINVAL, where(v, key, "") + "expected a table"};
    }
    if (auto* d = root["sanrepd"].as_table())
        if (auto st = apply(*d, "sanrepd", daemon_keys(), ""); !st) return st;
    auto* volumes = root["volume"].as_table();
    auto* mine = volumes ? (*volumes)[volume].as_table() : nullptr;
    if (!mine) return Error{ENOENT, path + ": no [volume." + volume + "] table"};
    const std::string name = "volume." + volume;
    if (auto st = apply(*mine, name, volume_keys(), "peer"); !st) return st;
    if (auto* p = (*mine)["peer"].node()) {
        if (!p->is_table()) return Error{EINVAL, where(*p, name, "peer") + "expected a table [" + name + ".peer]"};
        if (auto st = apply(*p->as_table(), name + ".peer", peer_keys(), ""); !st) return st;
    }
    next.volume = volume;
    out = next;
    return {};
}

Result<std::vector<DaemonOptions>> load_node_config(const std::string& path, const DaemonOptions& base) {
    toml::table root;
    try {
        root = toml::parse_file(path);
    } catch (const toml::parse_error& e) {
        return Error{EINVAL, path + ":" + std::to_string(e.source().begin.line) + ": " + std::string(e.description())};
    }
    auto* volumes = root["volume"].as_table();
    if (!volumes || volumes->empty()) return Error{ENOENT, path + ": no [volume.NAME] table: nothing to serve"};
    auto line = [](const toml::node& n) { return std::to_string(n.source().begin.line); };
    std::vector<DaemonOptions> out;
    // Path -> the volume (and its line) that uses it, per kind of path.
    std::map<std::string, std::map<std::string, std::pair<std::string, std::string>>> taken;
    for (auto&& [k, v] : *volumes) {
        std::string name(k.str());
        const std::string table = "volume." + name;
        if (!v.is_table()) return Error{EINVAL, path + ":" + line(v) + ": [" + table + "]: expected a table"};
        DaemonOptions o = base;
        // Each volume reads the whole file: [sanrepd] and unknown tables are
        // checked the same way for each, and a volume's keys override [sanrepd].
        if (auto st = load_daemon_config(path, name, o); !st) return st.error();
        fill_defaults(o);
        auto* t = v.as_table();
        if (auto why = check_options(o); !why.empty()) {
            // The key's line: in the volume's table, its peer table, or [sanrepd].
            auto key = why.substr(0, why.find(':'));
            auto* at = (*t)[key].node();
            if (auto* p = (*t)["peer"].as_table(); !at && p) at = (*p)[key].node();
            if (auto* d = root["sanrepd"].as_table(); !at && d) at = (*d)[key].node();
            return Error{EINVAL, path + ":" + line(at ? *at : v) + ": [" + table + "] " + why};
        }
        for (auto [key, value] : {std::pair<std::string, std::string>{"replica", o.replica},
                                  {"meta", o.meta},
                                  {"nbd_socket", o.nbd_socket},
                                  {"nbd_tcp", o.nbd_tcp},
                                  {"control", o.control}}) {
            if (value.empty()) continue;  // no NBD on TCP
            // Secondaries' NBD sockets too: any volume may be promoted.
            auto* at = (*t)[key].node();
            std::string where = line(at ? *at : v);
            auto [it, fresh] = taken[key].emplace(value, std::pair{name, where});
            if (!fresh)
                return Error{EINVAL, path + ":" + where + ": [" + table + "] " + key + ": " + value +
                                         " is also [volume." + it->second.first + "]'s (line " + it->second.second +
                                         "): each volume needs its own"};
        }
        out.push_back(std::move(o));
    }
    return out;
}

}  // namespace sanagent::replicator
