// The target module: on a storage node, every [volume.NAME] is exported as one
// LIO iSCSI target with one LUN (configfs/target_plan.h does the kernel's
// ordering), reachable only by the servers assigned to it, with their CHAP.
//
// Naming: the target's IQN is <group.iqn_prefix>:<group.name>:<volume> unless
// the volume sets `iqn`; the storage object is named after the volume under
// sanagent's HBA (iblock_57 / fileio_57); its SCSI serial is derived from the
// group and volume names, so a restart or another node shows initiators the
// same disk.
//
// Ownership: a target is sanagent's when owned.json lists "target/<volume>" or
// its LUN 0 links to sanagent's storage object of that volume (HBA 57: the
// kernel itself carries the mark, so a lost owned.json adopts nothing else). A
// target with the same IQN made by anyone else is foreign and never touched; a
// volume removed from the config leaves its target in place, orphaned.
//
// Secrets are read from their files (regular, owned by the agent's user, no
// group/other access) when validating and when planning, kept only in the
// steps' closures, and shown as "(secret)".
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "sanagent/agent/module.h"
#include "sanagent/configfs/lio.h"
#include "sanagent/configfs/target_plan.h"

namespace sanagent::agent {

// RFC 3720 3.2.6.3.1 "iqn." names: iqn.yyyy-mm.reversed.domain[:anything],
// lower case ASCII letters, digits, '-', '.', ':', at most 223 bytes.
bool is_valid_iqn(std::string_view name);
// What an initiator may call itself: an iqn. name, eui. + 16 hex digits, or
// naa. + 16 or 32 hex digits (RFC 3720 3.2.6.3, RFC 3980).
bool is_valid_initiator_name(std::string_view name);
// "10.0.10.11" -> "10.0.10.11:3260"; "[fd00::1]:3261" stays; configfs's np
// directory names take exactly this form. An Error says what is wrong.
Result<std::string> normalize_portal(std::string_view text);
// 32 hex digits from the group and volume names (two FNV-1a 64 hashes): the
// host's SCSI id takes the first 25, so they differ for different volumes.
std::string volume_serial(std::string_view group, std::string_view volume);
// A secret from its file: regular, not a link, owned by this process's user,
// no group/other access; one trailing newline is dropped.
Result<std::string> read_secret(const std::string& path);

// CHAP limits: RFC 3720 8.2.1 asks for 96 bits; LIO keeps at most 255 bytes.
inline constexpr std::size_t kMinChapSecret = 12;
inline constexpr std::size_t kMaxChapField = 255;
// Some initiators (older Microsoft ones among them) refuse longer secrets.
inline constexpr std::size_t kPortableChapSecret = 16;

class TargetModule final : public Module {
public:
    explicit TargetModule(std::shared_ptr<configfs::ConfigfsTree> tree) : tree_(std::move(tree)) {}

    static constexpr const char* kDiscoveryObject = "target/discovery-auth";
    static constexpr const char* kFabricObject = "target/fabric";
    static std::string object_of(const std::string& volume) { return "target/" + volume; }

    std::string_view name() const override { return "target"; }
    void validate(const Config& config, Diagnostics& diagnostics) const override;
    Status observe() override;
    std::vector<std::string> desired_objects(const Config& config) const override;
    std::vector<Step> plan(const Config& config, const Ownership& owned) override;
    std::vector<ObjectStatus> status(const Config& config, const Ownership& owned) override;

    // Secret files already read in one pass, by path: every volume assigned to
    // a server carries that server's secret, and 1000 volumes need not read
    // the same file 1000 times.
    using SecretCache = std::map<std::string, Result<std::string>>;
    // The export of one volume as the config says, with the secrets read.
    static Result<configfs::TargetSpec> target_spec(const Config& config, const std::string& volume,
                                                    SecretCache* secrets = nullptr);
    static std::string target_iqn(const Config& config, const std::string& volume);

private:
    bool ours(const configfs::TargetState& target, const configfs::TargetSpec& spec, const Ownership& owned,
              const std::string& object) const;
    std::shared_ptr<configfs::ConfigfsTree> tree_;
    configfs::LioState observed_;
};

}  // namespace sanagent::agent
