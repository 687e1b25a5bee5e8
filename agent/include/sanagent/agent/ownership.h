// Ownership: the objects the agent made or adopted, kept in
// <state_dir>/owned.json. Modules change only owned objects; an owned object
// absent from the config is orphaned, never removed by the agent on its own.
#pragma once

#include <filesystem>
#include <map>
#include <string>

#include "sanagent/result.h"

namespace sanagent::agent {

class Ownership {
public:
    Ownership() = default;
    // A missing file is an empty ownership; a corrupt one is an Error (never
    // guessed: guessing would let the agent touch foreign objects).
    static Result<Ownership> load(const std::filesystem::path& state_dir);
    // Written to a temporary file and renamed, so it is never half written.
    Status save(const std::filesystem::path& state_dir) const;

    bool owns(const std::string& object) const { return objects_.count(object) != 0; }
    // object -> module name
    const std::map<std::string, std::string>& objects() const { return objects_; }
    void claim(const std::string& object, const std::string& module) { objects_[object] = module; }
    void release(const std::string& object) { objects_.erase(object); }

private:
    std::map<std::string, std::string> objects_;
};

}  // namespace sanagent::agent
