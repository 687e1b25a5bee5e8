// FakeVolumeModule: a module over an in-memory "machine" (volume name -> size),
// driven by the config's [volume.NAME] tables, counting every write. Failures
// are injected per action text.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>

#include "sanagent/agent/module.h"

namespace sanagent::agent::test {

struct FakeMachine {
    std::map<std::string, std::uint64_t> volumes;  // created ones; size 0 = created, no size yet
    std::size_t writes = 0;
    std::set<std::string> fail_actions;  // "set size of vm2" -> fails with EIO
    bool observe_fails = false;
};

class FakeVolumeModule final : public Module {
public:
    explicit FakeVolumeModule(std::shared_ptr<FakeMachine> machine) : machine_(std::move(machine)) {}

    std::string_view name() const override { return "fake-volume"; }
    void validate(const Config&, Diagnostics&) const override {}
    Status observe() override {
        if (machine_->observe_fails) return Error{EIO, "fake machine unreachable"};
        observed_ = machine_->volumes;
        return {};
    }
    std::vector<std::string> desired_objects(const Config& config) const override {
        std::vector<std::string> out;
        for (const auto* v : config.objects("volume")) out.push_back("volume/" + v->name);
        return out;
    }
    std::vector<Step> plan(const Config& config, const Ownership& owned) override {
        std::vector<Step> steps;
        for (const auto* v : config.objects("volume")) {
            const std::string object = "volume/" + v->name;
            const auto size = config.get_size("volume", v->name, "size");
            auto it = observed_.find(v->name);
            if (it != observed_.end() && !owned.owns(object)) continue;  // foreign: reported by status
            if (it != observed_.end() && it->second == size) continue;
            if (it == observed_.end()) steps.push_back(make_step(object, "create " + v->name, v->name, 0, true));
            steps.push_back(make_step(object, "set size of " + v->name, v->name, size, false));
        }
        return steps;
    }
    std::vector<ObjectStatus> status(const Config& config, const Ownership& owned) override {
        std::vector<ObjectStatus> out;
        for (const auto* v : config.objects("volume")) {
            const std::string object = "volume/" + v->name;
            const auto size = config.get_size("volume", v->name, "size");
            auto it = observed_.find(v->name);
            ObjectStatus s{object,
                           std::to_string(size),
                           it == observed_.end() ? "absent" : std::to_string(it->second),
                           Health::ok,
                           {}};
            if (it != observed_.end() && !owned.owns(object))
                s.health = Health::foreign;
            else if (it == observed_.end() || it->second != size)
                s.health = Health::degraded;
            out.push_back(s);
        }
        return out;
    }

private:
    Step make_step(const std::string& object, const std::string& action, const std::string& volume, std::uint64_t size,
                   bool create) {
        auto m = machine_;
        Step step{object, action, {}, {}, create, {}};
        step.apply = [m, action, volume, size, create]() -> Status {
            if (m->fail_actions.count(action)) return Error{EIO, action + ": Input/output error"};
            ++m->writes;
            if (create)
                m->volumes[volume] = 0;
            else
                m->volumes[volume] = size;
            return {};
        };
        if (create) {
            step.undo = [m, volume]() -> Status {
                ++m->writes;
                m->volumes.erase(volume);
                return {};
            };
        } else {
            auto previous = observed_.count(volume) ? observed_.at(volume) : 0;
            step.undo = [m, volume, previous]() -> Status {
                ++m->writes;
                m->volumes[volume] = previous;
                return {};
            };
        }
        return step;
    }

    std::shared_ptr<FakeMachine> machine_;
    std::map<std::string, std::uint64_t> observed_;
};

}  // namespace sanagent::agent::test
