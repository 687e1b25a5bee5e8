// The host's iSCSI software initiator (open-iscsi), driven through iscsiadm
// and read back from sysfs: discovery, node records, login / logout, sessions,
// and the block device of a session's LUN.
//
// Secrets: iscsiadm only takes a CHAP password on its command line
// (`-o update -n node.session.auth.password -v SECRET`), where every local
// user can read it in /proc/PID/cmdline. So the node settings are written into
// the node record file itself (<node_db>/<iqn>/<ip>,<port>,<tpgt>/default, the
// file iscsiadm -m discovery created and iscsiadm --login reads), mode 0600,
// replaced atomically. The secret never appears in an argv or a log line.
//
// Devices: a LUN is found through sysfs from its session's target name
// (/sys/class/iscsi_session/sessionN/targetname and .../device/target*/H:C:T:L/block/sdX),
// never by guessing /dev/sdX, and its SCSI id is read from the device's
// vpd_pg83 so the caller can check it is the LUN it expects. The sysfs root is
// a parameter so unit tests build a fake tree.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sanagent/lvm/iscsi_probe.h"
#include "sanagent/process.h"
#include "sanagent/result.h"

namespace sanagent::lvm {

struct Session {
    int sid = 0;
    std::string portal;  // "192.168.77.11:3260"
    int tpgt = 1;
    std::string target;  // IQN
};
// `iscsiadm -m session` lines: "tcp: [3] 192.168.77.11:3260,1 iqn... (non-flash)".
std::vector<Session> parse_sessions(std::string_view text);

struct NodeSettings {
    bool automatic_startup = true;                  // node.startup = automatic: logged in at boot
    std::chrono::seconds replacement_timeout{120};  // 120 s without multipath, 15 s with
    std::optional<ChapCredentials> chap;
};
// A node record with `settings` applied: each key replaced where present,
// added before "# END RECORD" (or at the end) where not.
std::string update_node_record(std::string_view record, const NodeSettings& settings);

// An iscsiadm exit status in words (open-iscsi's iscsi_err.h).
std::string iscsiadm_failure(int exit_code);

// "IP" -> "IP:3260"; "IP:PORT" unchanged.
std::string portal_with_default_port(const std::string& portal);

// A portal is "IPv4[:PORT]"; an IQN is "iqn.YYYY-MM.reverse.domain[:text]"
// in the characters RFC 3722 allows. Checked before either reaches an argv or a path.
bool is_valid_portal(std::string_view portal);
bool is_valid_iqn(std::string_view iqn);

// A CHAP secret from a regular file owned by `owner` with mode 0600; the
// trailing newline is dropped. RFC 3720 asks for at least 12 bytes; shorter
// ones are refused here with that reason rather than by the target later.
Result<std::string> read_secret_file(const std::filesystem::path& path, uid_t owner = 0);

class Initiator {
public:
    Initiator(CommandRunner& runner, std::filesystem::path node_db = "/etc/iscsi/nodes",
              std::filesystem::path sysfs = "/sys")
        : runner_(runner), node_db_(std::move(node_db)), sysfs_(std::move(sysfs)) {}

    // SendTargets discovery: the targets the portal offers (records are made for them).
    Result<std::vector<std::string>> discover(const std::string& portal);
    // Write `settings` into the node record of target@portal (made by discover()).
    Status configure(const std::string& target, const std::string& portal, const NodeSettings& settings);
    Status login(const std::string& target, const std::string& portal);
    Status logout(const std::string& target, const std::string& portal);
    // Forget the node record (so a failed create does not log in at boot).
    Status forget(const std::string& target, const std::string& portal);
    Result<std::vector<Session>> sessions();
    // The LUN's block device ("/dev/sdb") in the session(s) of `target`, or ENOENT.
    Result<std::string> lun_device(const std::string& target, int lun = 0) const;
    // The SCSI id of a block device ("sdb") from sysfs's vpd_pg83.
    Result<std::string> device_scsi_id(const std::string& device) const;

private:
    Result<CommandOutput> iscsiadm(std::vector<std::string> args, const std::string& what,
                                   std::chrono::seconds bound = std::chrono::seconds(60));
    CommandRunner& runner_;
    std::filesystem::path node_db_;
    std::filesystem::path sysfs_;
};

}  // namespace sanagent::lvm
