// The LVM modules of a storage node: `pool` (a VG with a thin pool on the
// node's data disks) and `volume` (one LV per volume: thin, full or a
// SmartClone). Both read lvm2 through one `vgs` and one `lvs` report per
// observe (lvm is slow to start; never one call per volume) and plan through
// lvm/volumes.h, so what `sanctl plan` prints is what lvm will be asked.
//
// Ownership: a VG or LV sanagent made carries the `sanagent` tag and is listed
// in owned.json. A VG of the same name without the tag is foreign: reported,
// never touched. A volume removed from the config is orphaned: its LV stays
// (data is never destroyed by a config edit; `sanctl volume delete` does that).
#pragma once

#include <memory>
#include <optional>

#include "sanagent/agent/module.h"
#include "sanagent/lvm/report.h"
#include "sanagent/lvm/volumes.h"
#include "sanagent/process.h"

namespace sanagent::agent {

// One reading of lvm2, shared by the pool and volume modules.
struct LvmView {
    std::vector<lvm::VolumeGroupState> vgs;
    std::vector<lvm::LogicalVolumeState> lvs;
};

// lvm2's state read on first use after an invalidate(): a host with no pool or
// volume never starts lvm, and the pool and volume modules share one reading
// per pass (the pool module, planned first, invalidates it when it observes).
class LvmCache {
public:
    explicit LvmCache(std::shared_ptr<CommandRunner> runner) : runner_(std::move(runner)) {}
    void invalidate() { view_.reset(); }
    Result<const LvmView*> get();
    const std::shared_ptr<CommandRunner>& runner() const { return runner_; }

private:
    std::shared_ptr<CommandRunner> runner_;
    std::optional<LvmView> view_;
};

// Signatures of a device, by libblkid; a seam so unit tests need no devices.
using SignatureProbe = std::function<Result<std::vector<lvm::DeviceSignature>>(const std::string& device)>;

// The pool a volume lives in: its `pool` key, or the only pool there is.
std::string pool_of_volume(const Config& config, const std::string& volume);
lvm::PoolSpec pool_spec(const Config& config, const std::string& pool);
bool is_storage_node(const Config& config);

class PoolModule final : public Module {
public:
    PoolModule(std::shared_ptr<LvmCache> cache, SignatureProbe probe)
        : cache_(std::move(cache)), runner_(cache_->runner()), probe_(std::move(probe)) {}
    PoolModule(std::shared_ptr<CommandRunner> runner, SignatureProbe probe)
        : PoolModule(std::make_shared<LvmCache>(std::move(runner)), std::move(probe)) {}

    std::string_view name() const override { return "pool"; }
    void validate(const Config& config, Diagnostics& diagnostics) const override;
    Status observe() override;
    std::vector<std::string> desired_objects(const Config& config) const override;
    std::vector<Step> plan(const Config& config, const Ownership& owned) override;
    std::vector<ObjectStatus> status(const Config& config, const Ownership& owned) override;

private:
    std::shared_ptr<LvmCache> cache_;
    std::shared_ptr<CommandRunner> runner_;
    SignatureProbe probe_;
};

class VolumeModule final : public Module {
public:
    // Shares the pool module's reading; it refreshes it.
    explicit VolumeModule(std::shared_ptr<LvmCache> shared)
        : cache_(std::move(shared)), runner_(cache_->runner()), refresh_on_observe_(false) {}
    // Alone (tests): its own reading, refreshed at each observe.
    explicit VolumeModule(std::shared_ptr<CommandRunner> runner)
        : cache_(std::make_shared<LvmCache>(runner)), runner_(std::move(runner)), refresh_on_observe_(true) {}

    std::string_view name() const override { return "volume"; }
    void validate(const Config& config, Diagnostics& diagnostics) const override;
    Status observe() override;
    std::vector<std::string> desired_objects(const Config& config) const override;
    std::vector<Step> plan(const Config& config, const Ownership& owned) override;
    std::vector<ObjectStatus> status(const Config& config, const Ownership& owned) override;

private:
    std::shared_ptr<LvmCache> cache_;
    std::shared_ptr<CommandRunner> runner_;
    bool refresh_on_observe_;
};

}  // namespace sanagent::agent
