#include "sanagent/agent/ownership.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "sanagent/fd.h"

namespace sanagent::agent {

namespace fs = std::filesystem;

Result<Ownership> Ownership::load(const fs::path& state_dir) {
    const fs::path file = state_dir / "owned.json";
    std::ifstream in(file);
    if (!in) {
        std::error_code ec;
        if (!fs::exists(file, ec)) return Ownership{};
        return last_errno("reading " + file.string());
    }
    std::stringstream text;
    text << in.rdbuf();
    auto doc = nlohmann::json::parse(text.str(), nullptr, false);
    if (doc.is_discarded() || !doc.is_object() || !doc.contains("objects") || !doc["objects"].is_object())
        return Error{EINVAL, "reading " + file.string() + ": not a sanagent ownership file; fix or remove it"};
    Ownership owned;
    for (const auto& [object, entry] : doc["objects"].items()) {
        if (!entry.is_object() || !entry.contains("module") || !entry["module"].is_string())
            return Error{EINVAL, "reading " + file.string() + ": entry \"" + object + "\" has no module"};
        owned.claim(object, entry["module"].get<std::string>());
    }
    return owned;
}

Status Ownership::save(const fs::path& state_dir) const {
    std::error_code ec;
    fs::create_directories(state_dir, ec);
    if (ec) return Error{ec.value(), "creating " + state_dir.string() + ": " + ec.message()};
    nlohmann::json doc{{"version", 1}, {"objects", nlohmann::json::object()}};
    for (const auto& [object, module] : objects_) doc["objects"][object] = {{"module", module}};
    const std::string text = doc.dump(2) + "\n";
    const fs::path tmp = state_dir / "owned.json.tmp";
    const fs::path file = state_dir / "owned.json";
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd.valid()) return last_errno("creating " + tmp.string());
    if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()) || ::fsync(fd.get()) != 0)
        return last_errno("writing " + tmp.string());
    fd.reset();
    if (::rename(tmp.c_str(), file.c_str()) != 0) return last_errno("renaming " + tmp.string());
    return {};
}

}  // namespace sanagent::agent
