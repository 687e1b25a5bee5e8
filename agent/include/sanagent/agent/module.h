// The spine every kind of object plugs into: a Module validates its part of
// the config, observes the machine, and plans Steps that take what it saw to
// what the config says. Plans are data: printed by `sanctl plan`, run by the
// Engine (engine.h), compared in tests.
//
// Rules every module keeps:
// - it changes only objects listed in the Ownership (owned.json) or objects
//   it creates in this plan (Step::claims); anything else it finds is
//   reported as foreign and left alone;
// - an owned object that is no longer in the config is reported orphaned and
//   left in place (data is never destroyed by a config edit alone);
// - when actual equals desired it plans no step (a second apply writes nothing).
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "sanagent/agent/config.h"
#include "sanagent/agent/ownership.h"
#include "sanagent/result.h"

namespace sanagent::agent {

// One change to one object. `object` is "<kind>/<name>" ("dbroot/lio",
// "bond/san0"); steps of one object run in order and stop at the first failure.
struct Step {
    std::string object;
    std::string action;  // what it does, in the admin's words
    std::function<Status()> apply;
    std::function<Status()> undo;  // empty when the step cannot be undone
    bool claims = false;           // on success the object becomes owned
    std::string module;            // filled in by the Engine
};

nlohmann::json to_json(const Step& step);
std::string to_text(const std::vector<Step>& plan);

enum class Health { ok, degraded, failed, orphaned, foreign };
std::string_view health_name(Health health);

// What `sanctl status` shows for one object.
struct ObjectStatus {
    std::string object;
    std::string desired;
    std::string actual;
    Health health = Health::ok;
    std::string detail;  // why it is not ok
};

class Module {
public:
    virtual ~Module() = default;
    virtual std::string_view name() const = 0;
    // Rules beyond the schema for the module's own sections.
    virtual void validate(const Config& config, Diagnostics& diagnostics) const = 0;
    // Read the machine; kept until the next observe(). An Error means the
    // module cannot plan at all (reported, other modules go on).
    virtual Status observe() = 0;
    // The objects the config asks this module for ("dbroot/lio").
    virtual std::vector<std::string> desired_objects(const Config& config) const = 0;
    // Steps from the last observation to `config`, in a safe order.
    virtual std::vector<Step> plan(const Config& config, const Ownership& owned) = 0;
    // Desired vs actual of each desired or owned object, from the last observation.
    virtual std::vector<ObjectStatus> status(const Config& config, const Ownership& owned) = 0;
};

}  // namespace sanagent::agent
