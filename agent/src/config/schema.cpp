#include "sanagent/agent/schema.h"

#include <sstream>

namespace sanagent::agent {

std::string_view type_name(ValueType type) {
    switch (type) {
        case ValueType::string:
            return "string";
        case ValueType::name:
            return "name";
        case ValueType::path:
            return "path";
        case ValueType::integer:
            return "integer";
        case ValueType::boolean:
            return "boolean";
        case ValueType::choice:
            return "choice";
        case ValueType::string_list:
            return "list of strings";
        case ValueType::name_list:
            return "list of names";
        case ValueType::string_map:
            return "table of strings";
        case ValueType::size:
            return "size";
        case ValueType::duration:
            return "duration";
        case ValueType::percent:
            return "percent";
        case ValueType::secret_file:
            return "secret file";
    }
    return "?";
}

const std::vector<SectionSpec>& schema() {
    using T = ValueType;
    // Keys of the design sketch are the public interface: extend, never rename.
    static const std::vector<SectionSpec> table = {
        {"agent",
         false,
         "The daemon itself.",
         {
             {.key = "interval",
              .type = T::duration,
              .default_value = "60s",
              .doc = "How often sanagentd reconciles without being asked.",
              .min = 1000},
             {.key = "state_dir",
              .type = T::path,
              .default_value = "/var/lib/sanagent",
              .doc = "Where the agent keeps owned.json, the list of objects it made."},
             {.key = "control_socket",
              .type = T::path,
              .default_value = "/run/sanagent/control.sock",
              .doc = "The control socket sanctl talks to (mode 0600)."},
             {.key = "target_root",
              .type = T::path,
              .default_value = "/sys/kernel/config/target",
              .doc = "The LIO configfs root (changed only by tests)."},
             {.key = "alert_command",
              .type = T::string_list,
              .default_value = "[]",
              .doc = "Run when a pool crosses warn_at or critical_at: an absolute path and its arguments, no shell; "
                     "details in SANAGENT_* environment variables (see volumes.md). A pool's own alert_command "
                     "overrides it."},
         }},
        {"node",
         false,
         "This machine.",
         {
             {.key = "name", .type = T::name, .default_value = "", .doc = "The node's name in the cluster."},
             {.key = "roles",
              .type = T::string_list,
              .default_value = "[\"storage\"]",
              .doc = "storage, host, or both."},
             {.key = "target_dbroot",
              .type = T::path,
              .default_value = "/var/lib/sanagent/target",
              .doc = "LIO's dbroot (persistent reservations, ALUA); set before the first device exists."},
             {.key = "portals",
              .type = T::string_list,
              .default_value = "[]",
              .doc = "iSCSI portals (IP or IP:PORT, [IPv6]:PORT) of this storage node; empty: this node's "
                     "address in [cluster.NAME] nodes on port 3260, else 0.0.0.0:3260."},
         }},
        {"group",
         false,
         "The management group.",
         {
             {.key = "name", .type = T::name, .default_value = "", .doc = "The group's name, part of every IQN."},
             {.key = "iqn_prefix",
              .type = T::string,
              .default_value = "",
              .doc = "Volume IQN = <iqn_prefix>:<group>:<volume>."},
             {.key = "discovery_chap_user",
              .type = T::string,
              .default_value = "",
              .doc = "CHAP user an initiator needs for SendTargets discovery; empty: discovery is not "
                     "authenticated."},
             {.key = "discovery_chap_secret_file",
              .type = T::secret_file,
              .default_value = "",
              .doc = "File holding the discovery CHAP secret; root-owned, mode 0600."},
         }},
        {"cluster",
         true,
         "A set of storage nodes.",
         {
             {.key = "nodes",
              .type = T::string_map,
              .default_value = "",
              .doc = "Node name = storage network address."},
         }},
        {"time",
         false,
         "The one time source.",
         {
             {.key = "servers",
              .type = T::string_list,
              .default_value = "[]",
              .doc = "NTP servers (host names or addresses), used with iburst."},
             {.key = "pools",
              .type = T::string_list,
              .default_value = "[]",
              .doc = "NTP pools (host names), used with iburst."},
             {.key = "prefer",
              .type = T::string,
              .default_value = "",
              .doc = "One of servers or pools that chrony prefers when it is good."},
             {.key = "minpoll",
              .type = T::integer,
              .default_value = "",
              .doc = "Shortest polling interval of every source, as a power of 2 (chrony's default 6: 64 s).",
              .unit = "log2 seconds",
              .min = -6,
              .max = 24},
             {.key = "maxpoll",
              .type = T::integer,
              .default_value = "",
              .doc = "Longest polling interval of every source (chrony's default 10: 1024 s).",
              .unit = "log2 seconds",
              .min = -6,
              .max = 24},
             {.key = "serve_to",
              .type = T::string_list,
              .default_value = "[]",
              .doc = "Subnets this node serves time to (chrony `allow`), e.g. the storage network."},
             {.key = "local_stratum",
              .type = T::integer,
              .default_value = "0",
              .doc = "Serve the local clock at this stratum when no source is reachable (isolated site); 0: off.",
              .min = 0,
              .max = 15},
             {.key = "max_offset",
              .type = T::duration,
              .default_value = "100ms",
              .doc = "Largest offset still called synchronised.",
              .min = 1},
             {.key = "timezone",
              .type = T::string,
              .default_value = "UTC",
              .doc = "The time zone, a name under /usr/share/zoneinfo (the /etc/localtime link)."},
         }},
        {"bond",
         true,
         "A bonded storage network interface (NAME is the interface).",
         {
             {.key = "mode",
              .type = T::choice,
              .default_value = "balance-alb",
              .doc = "Bonding mode.",
              .choices = "active-backup|balance-alb|802.3ad"},
             {.key = "slaves", .type = T::string_list, .default_value = "[]", .doc = "Ports enslaved to the bond."},
             {.key = "mtu",
              .type = T::integer,
              .default_value = "1500",
              .doc = "MTU of the bond and its ports.",
              .unit = "bytes",
              .min = 68,
              .max = 65535},
             {.key = "miimon", .type = T::duration, .default_value = "100ms", .doc = "Link monitoring interval."},
             {.key = "updelay",
              .type = T::duration,
              .default_value = "0ms",
              .doc = "Wait this long before using a port whose link came up (a multiple of miimon)."},
             {.key = "downdelay",
              .type = T::duration,
              .default_value = "0ms",
              .doc = "Wait this long before dropping a port whose link went down (a multiple of miimon)."},
             {.key = "lacp_rate",
              .type = T::choice,
              .default_value = "fast",
              .doc = "802.3ad: how often the partner is asked for LACPDUs (fast: every second).",
              .choices = "slow|fast"},
             {.key = "xmit_hash_policy",
              .type = T::choice,
              .default_value = "layer3+4",
              .doc = "802.3ad: how flows are spread over ports (layer3+4 spreads iSCSI sessions).",
              .choices = "layer2|layer3+4|layer2+3"},
             {.key = "min_links",
              .type = T::integer,
              .default_value = "0",
              .doc = "802.3ad: ports that must be up for the bond to be up.",
              .min = 0,
              .max = 16},
             {.key = "addresses",
              .type = T::string_list,
              .default_value = "[]",
              .doc = "Addresses with prefix length."},
             {.key = "description",
              .type = T::string,
              .default_value = "",
              .doc = "The interface alias shown by `ip link`."},
         }},
        {"link",
         true,
         "A plain network interface (NAME is the interface).",
         {
             {.key = "mtu",
              .type = T::integer,
              .default_value = "1500",
              .doc = "MTU.",
              .unit = "bytes",
              .min = 68,
              .max = 65535},
             {.key = "addresses",
              .type = T::string_list,
              .default_value = "[]",
              .doc = "Addresses with prefix length."},
             {.key = "description", .type = T::string, .default_value = "", .doc = "The interface alias."},
         }},
        {"pool",
         true,
         "An LVM volume group with a thin pool that holds volumes.",
         {
             {.key = "vg", .type = T::name, .default_value = "", .doc = "Volume group name.", .required = true},
             {.key = "devices", .type = T::string_list, .default_value = "[]", .doc = "Physical volumes."},
             {.key = "thin_pool", .type = T::name, .default_value = "thin", .doc = "Thin pool LV name."},
             {.key = "warn_at",
              .type = T::percent,
              .default_value = "80%",
              .doc = "Thin pool data use that turns status to degraded."},
             {.key = "critical_at",
              .type = T::percent,
              .default_value = "90%",
              .doc = "Thin pool data or metadata use that turns status to failed."},
             {.key = "thin_pool_size",
              .type = T::percent,
              .default_value = "90%",
              .doc = "Share of the volume group given to the thin pool; the rest is metadata spare and room to grow."},
             {.key = "force",
              .type = T::boolean,
              .default_value = "false",
              .doc = "Use devices even when libblkid finds a file system, partition table or PV on them."},
             {.key = "alert_command",
              .type = T::string_list,
              .default_value = "[]",
              .doc = "This pool's alert command (absolute path and arguments); empty: [agent] alert_command."},
         }},
        {"server",
         true,
         "An initiator (hypervisor host) volumes are assigned to.",
         {
             {.key = "iqn", .type = T::string, .default_value = "", .doc = "The initiator's IQN.", .required = true},
             {.key = "chap_user", .type = T::string, .default_value = "", .doc = "CHAP user name."},
             {.key = "chap_secret_file",
              .type = T::secret_file,
              .default_value = "",
              .doc = "File holding the CHAP secret; root-owned, mode 0600."},
             {.key = "mutual_chap_user",
              .type = T::string,
              .default_value = "",
              .doc = "Mutual CHAP: the user name the target answers with."},
             {.key = "mutual_chap_secret_file",
              .type = T::secret_file,
              .default_value = "",
              .doc = "File holding the target's mutual CHAP secret (must differ from the server's); root-owned, "
                     "mode 0600."},
         }},
        {"volume",
         true,
         "A volume: one iSCSI target with one LUN.",
         {
             {.key = "size",
              .type = T::size,
              .default_value = "",
              .doc = "Size.",
              .unit = "bytes (binary)",
              .required = true},
             {.key = "provisioning",
              .type = T::choice,
              .default_value = "thin",
              .doc = "thin or full.",
              .choices = "thin|full"},
             {.key = "replication",
              .type = T::integer,
              .default_value = "1",
              .doc = "Network RAID: copies on this many nodes.",
              .min = 1,
              .max = 3},
             {.key = "servers",
              .type = T::name_list,
              .default_value = "[]",
              .doc = "Servers allowed to use it (ACLs).",
              .ref = "server"},
             {.key = "pool", .type = T::name, .default_value = "", .doc = "Pool holding it.", .ref = "pool"},
             {.key = "iqn", .type = T::string, .default_value = "", .doc = "Overrides the derived IQN."},
             {.key = "clone",
              .type = T::string_map,
              .default_value = "",
              .doc = "SmartClone: { from = \"golden\" [, snapshot = \"S\"] } makes the volume a writable thin snapshot."},
             {.key = "backstore",
              .type = T::choice,
              .default_value = "iblock",
              .doc = "iblock (a block device) or fileio (a file).",
              .choices = "iblock|fileio"},
             {.key = "device",
              .type = T::path,
              .default_value = "",
              .doc = "Backing device or file; empty: /dev/<pool vg>/<volume>, the volume's LV."},
             {.key = "portals",
              .type = T::string_list,
              .default_value = "[]",
              .doc = "iSCSI portals of this volume's target; empty: the node's portals."},
             {.key = "snapshots",
              .type = T::string_map,
              .default_value = "",
              .doc = "Scheduled thin snapshots: { every = \"1h\", keep = 24 } (every at least 1s; keep at least 1); "
                     "only automatic snapshots are pruned."},
         }},
        {"sr",
         true,
         "On a host: a storage repository on a volume.",
         {
             {.key = "volume", .type = T::name, .default_value = "", .doc = "The volume behind it.", .ref = "volume"},
             {.key = "target",
              .type = T::string,
              .default_value = "",
              .doc = "Target IQN, when the volume is not in this config."},
             {.key = "portals",
              .type = T::string_list,
              .default_value = "[]",
              .doc = "IP[:PORT] portals; from the [cluster] nodes' addresses when `volume` is set. Without "
                     "multipath only the first is logged in to; with multipathd running every portal is a path."},
             {.key = "chap_user",
              .type = T::string,
              .default_value = "",
              .doc = "CHAP user name; with `volume`, this node's own [server.NAME] entry is used when unset."},
             {.key = "chap_secret_file",
              .type = T::secret_file,
              .default_value = "",
              .doc = "File holding the CHAP secret (at least 12 characters); root-owned, mode 0600."},
             {.key = "force",
              .type = T::boolean,
              .default_value = "false",
              .doc = "Make the SR even when libblkid finds a file system, partition table or PV on the LUN."},
         }},
        {"vdi",
         true,
         "On a host: a virtual disk in an SR.",
         {
             {.key = "sr",
              .type = T::name,
              .default_value = "",
              .doc = "The SR holding it.",
              .ref = "sr",
              .required = true},
             {.key = "size",
              .type = T::size,
              .default_value = "",
              .doc = "Size.",
              .unit = "bytes (binary)",
              .required = true},
         }},
    };
    return table;
}

const SectionSpec* find_section(std::string_view name) {
    for (const auto& s : schema())
        if (s.name == name) return &s;
    return nullptr;
}

const KeySpec* find_key(std::string_view section, std::string_view key) {
    const auto* s = find_section(section);
    if (!s) return nullptr;
    for (const auto& k : s->keys)
        if (k.key == key) return &k;
    return nullptr;
}

std::string schema_markdown() {
    std::ostringstream out;
    for (const auto& s : schema()) {
        out << "### `[" << s.name << (s.named ? ".NAME" : "") << "]`\n\n" << s.doc << "\n\n";
        out << "| key | type | default | unit | description |\n| --- | --- | --- | --- | --- |\n";
        for (const auto& k : s.keys) {
            std::string type(type_name(k.type));
            if (k.type == ValueType::choice) {
                std::string choices(k.choices);
                for (auto pos = choices.find('|'); pos != std::string::npos; pos = choices.find('|', pos))
                    choices.replace(pos, 1, ", ");
                type += ": " + choices;
            }
            if (!k.ref.empty()) type += " of `[" + std::string(k.ref) + ".NAME]`";
            if (k.type == ValueType::integer && k.max != std::numeric_limits<std::int64_t>::max())
                type += " " + std::to_string(k.min) + "-" + std::to_string(k.max);
            std::string def = k.required                ? "(required)"
                              : k.default_value.empty() ? ""
                                                        : "`" + std::string(k.default_value) + "`";
            out << "| `" << k.key << "` | " << type << " | " << def << " | " << k.unit << " | " << k.doc << " |\n";
        }
        out << "\n";
    }
    return out.str();
}

}  // namespace sanagent::agent
