// What one sanrepd process serves, from its flags and/or its TOML file
// (docs/replicator.md, "Configuration file"). The file is the interface
// between the agent (which will render it) and sanrepd; flags override it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sanagent/result.h"

namespace sanagent::replicator {

inline constexpr std::uint64_t kMinGranularity = 4096;
inline constexpr std::uint64_t kMaxGranularity = 1 << 20;  // one resync copy

struct DaemonOptions {
    std::string volume;
    std::string replica;
    std::string meta;
    std::string role = "primary";
    std::uint64_t size = 0;
    std::uint64_t granularity = 64 * 1024;  // kMinGranularity..kMaxGranularity, a power of two
    bool preallocate = false;
    bool direct = true;
    bool force_primary = false;
    std::string nbd_socket;
    std::string nbd_tcp;
    std::string nbd_tls_psk;  // TLS on nbd_tcp with these pre-shared keys (psktool's file) ...
    std::string nbd_tls_dir;  // ... or with the X.509 certificate in this directory
    std::string peer;
    std::string listen;
    std::string control;
    int ack_timeout_ms = 5000;
    int retire_ms = 1000;
    unsigned threads = 16;
    std::string node;  // this node's name, for `replica resolve --keep NODE`
    bool async = false;
    std::uint64_t max_lag = 64ull << 20;
    std::uint64_t verify_chunk = 1 << 20;
    std::string psk_file;  // the peers' pre-shared key; empty: no authentication

    bool operator==(const DaemonOptions&) const = default;
};

// "64K", "10G", "4096": bytes. False on anything else.
bool parse_size(const std::string& text, std::uint64_t& out);

// Reads [sanrepd] and [volume.VOLUME] of the TOML file at `path` into `out`;
// keys that are absent leave `out` as it is. Nothing is half-applied: on an
// error `out` is untouched and the message is "PATH:LINE: [table] key: what".
Status load_daemon_config(const std::string& path, const std::string& volume, DaemonOptions& out);

// Every [volume.NAME] of the file (one sanrepd per node), each read over
// `base` with [sanrepd] applied first (its `listen` is every secondary's
// default), defaults filled in (fill_defaults) and checked one by one
// (check_options) and as a set: two volumes may not share a replica,
// metadata file, NBD socket or control socket. Errors name file:line and key.
Result<std::vector<DaemonOptions>> load_node_config(const std::string& path, const DaemonOptions& base);

// A volume name is also a file name (/run/sanrepd/NAME.ctl): letters,
// digits, '.', '_', '-', not starting with '.' or '-', at most 128 bytes.
bool valid_volume_name(const std::string& name);

// The paths that default from the volume's name or replica: meta
// (REPLICA.meta), nbd_socket and control (/run/sanrepd/NAME.nbd, .ctl).
void fill_defaults(DaemonOptions& options);

// What a volume needs to start: a valid name, a replica, a listen address
// when it is a secondary, at most one kind of NBD TLS credentials. The
// message starts with the key at fault; empty when fine.
std::string check_options(const DaemonOptions& options);

}  // namespace sanagent::replicator
