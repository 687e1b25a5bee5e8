#include "sanagent/agent/dbroot_module.h"

#include <sys/stat.h>

#include <algorithm>

namespace sanagent::agent {

namespace fs = std::filesystem;

namespace {

// What the kernel starts with: /etc/target when it exists at module load, else /var/target.
bool is_kernel_default(const std::string& dbroot) {
    return dbroot == "/etc/target" || dbroot == "/var/target";
}

}  // namespace

bool DbrootModule::wanted(const Config& config) const {
    auto roles = config.get_list("node", "", "roles");
    return std::find(roles.begin(), roles.end(), "storage") != roles.end() ||
           std::find(roles.begin(), roles.end(), "both") != roles.end();
}

void DbrootModule::validate(const Config& config, Diagnostics& diagnostics) const {
    if (const auto* roles = config.value("node", "", "roles"))
        for (const auto& role : std::get<std::vector<std::string>>(roles->data))
            if (role != "storage" && role != "host" && role != "both")
                diagnostics.error(roles->origin, "node", "roles",
                                  "expected storage, host or both, got \"" + role.substr(0, 40) + "\"");
    if (const auto* dbroot = config.value("node", "", "target_dbroot");
        dbroot && std::get<std::string>(dbroot->data).size() >= 4096)
        diagnostics.error(dbroot->origin, "node", "target_dbroot", "expected a path shorter than 4096 bytes");
}

Status DbrootModule::observe() {
    // Only whether LIO is there, its dbroot and whether any device exists.
    observed_ = configfs::observe_lio(*tree_, configfs::LioDepth::core);
    return {};
}

std::vector<std::string> DbrootModule::desired_objects(const Config& config) const {
    if (!wanted(config)) return {};
    return {kObject};
}

namespace {

// The kernel writes under dbroot but never makes directories there: every
// PERSISTENT RESERVE OUT rewrites <dbroot>/pr/aptpl_<serial>
// (core_scsi3_update_and_write_aptpl, also with APTPL off), and fails with
// LOGICAL UNIT COMMUNICATION FAILURE when pr/ is missing, so SCSI-3
// reservations (clustered hosts) would not work at all. ALUA keeps its
// metadata under alua/. targetcli's packaging makes both under /etc/target.
std::vector<std::string> missing_dirs(const std::string& dbroot) {
    std::vector<std::string> out;
    for (const std::string& d : {dbroot, dbroot + "/pr", dbroot + "/alua"}) {
        std::error_code ec;
        if (!fs::is_directory(d, ec)) out.push_back(d);
    }
    return out;
}

Step make_dirs_step(const std::vector<std::string>& dirs) {
    std::string list;
    for (const auto& d : dirs) list += (list.empty() ? "" : ", ") + d;
    return {DbrootModule::kObject,
            "create directory " + list + " (mode 0700)",
            [dirs]() -> Status {
                for (const auto& d : dirs) {
                    std::error_code mk;
                    fs::create_directories(d, mk);
                    if (mk) return Error{mk.value(), "creating " + d + ": " + mk.message()};
                    fs::permissions(d, fs::perms::owner_all, mk);
                }
                return {};
            },
            [dirs]() -> Status {
                // Only what this step made, deepest first; they are still empty.
                for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) {
                    std::error_code rm;
                    fs::remove(*it, rm);
                    if (rm) return Error{rm.value(), "removing " + *it + ": " + rm.message()};
                }
                return {};
            },
            false,
            {}};
}

}  // namespace

std::vector<Step> DbrootModule::plan(const Config& config, const Ownership& owned) {
    std::vector<Step> steps;
    if (!wanted(config) || !observed_.present) return steps;
    const std::string desired = config.get_string("node", "", "target_dbroot");
    const std::string actual = observed_.dbroot;
    const auto missing = missing_dirs(desired);
    if (actual == desired) {
        if (!missing.empty()) steps.push_back(make_dirs_step(missing));
        return steps;
    }
    if (!observed_.storage_objects.empty()) return steps;                  // the kernel would refuse: status says why
    if (!is_kernel_default(actual) && !owned.owns(kObject)) return steps;  // foreign

    if (!missing.empty()) steps.push_back(make_dirs_step(missing));
    auto tree = tree_;
    steps.push_back({kObject,
                     "set LIO dbroot to " + desired + " (was " + actual + ")",
                     [tree, desired]() { return tree->write_attr("dbroot", desired); },
                     [tree, actual]() { return tree->write_attr("dbroot", actual); },
                     true,
                     {}});
    return steps;
}

std::vector<ObjectStatus> DbrootModule::status(const Config& config, const Ownership& owned) {
    std::vector<ObjectStatus> out;
    if (!wanted(config)) return out;
    const std::string desired = config.get_string("node", "", "target_dbroot");
    ObjectStatus s{kObject, desired, observed_.present ? observed_.dbroot : "(LIO not loaded)", Health::ok, {}};
    if (!observed_.present) {
        s.health = Health::degraded;
        s.detail = "target_core_mod is not loaded or configfs is not mounted";
    } else if (observed_.dbroot == desired && !missing_dirs(desired).empty()) {
        s.health = Health::degraded;
        s.detail = "pr/ or alua/ missing under dbroot: persistent reservations fail until apply makes them";
    } else if (observed_.dbroot != desired) {
        if (!observed_.storage_objects.empty()) {
            s.health = Health::degraded;
            s.detail = "devices are registered; the kernel changes dbroot only before the first device";
        } else if (!is_kernel_default(observed_.dbroot) && !owned.owns(kObject)) {
            s.health = Health::foreign;
            s.detail = "set by someone else; not changed";
        } else {
            s.health = Health::degraded;
            s.detail = "not applied yet";
        }
    }
    out.push_back(std::move(s));
    return out;
}

}  // namespace sanagent::agent
