// The agent's configuration: sanagent.conf then conf.d/*.conf (lexical order),
// merged key by key, every value remembering the file and line it came from.
//
// Loading never throws and never stops at the first problem: every problem
// becomes a Diagnostic ("file:line: [section.name] key: what was expected") and
// the caller applies nothing when there is any. The keys, their types and
// defaults are the schema (schema.h); modules read values through the typed
// getters, which fall back to the schema's defaults.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "sanagent/agent/schema.h"

namespace sanagent::agent {

struct Origin {
    std::string file;  // empty for a schema default
    int line = 0;
    std::string text() const;  // "file:line", or "(default)"
};

struct Diagnostic {
    Origin origin;
    std::string object;  // "volume.xpsp2-01", "node"; empty for file-level problems
    std::string key;
    std::string message;
    std::string text() const;
};

class Diagnostics {
public:
    void error(Origin origin, std::string object, std::string key, std::string message);
    bool empty() const { return items_.empty(); }
    std::size_t size() const { return items_.size(); }
    const std::vector<Diagnostic>& items() const { return items_; }
    // One line per error, in the order found.
    std::string text() const;

private:
    std::vector<Diagnostic> items_;
};

// One key's merged value. Sizes are bytes, durations milliseconds, percents
// 0-100; `raw` keeps what the admin wrote for printing.
struct ConfigValue {
    using Data =
        std::variant<std::string, std::int64_t, bool, std::vector<std::string>, std::map<std::string, std::string>>;
    ValueType type = ValueType::string;
    Data data;
    std::string raw;
    Origin origin;
};

// A table: [node] (name "") or [volume.xpsp2-01] (name "xpsp2-01").
struct ConfigObject {
    std::string section;
    std::string name;
    Origin origin;  // where it was first declared
    std::map<std::string, ConfigValue> values;
    std::set<std::string> rejected;  // keys given with an invalid value (already reported)
    std::string id() const { return name.empty() ? section : section + "." + name; }
};

class Config {
public:
    // Objects of a section in name order; singletons have one object named "".
    std::vector<const ConfigObject*> objects(std::string_view section) const;
    const ConfigObject* find(std::string_view section, std::string_view name = {}) const;
    ConfigObject& object(const std::string& section, const std::string& name, const Origin& origin);

    // The explicit value, or nullptr.
    const ConfigValue* value(std::string_view section, std::string_view name, std::string_view key) const;
    // Typed reads with the schema default; a key of another type is a bug (abort).
    std::string get_string(std::string_view section, std::string_view name, std::string_view key) const;
    std::int64_t get_integer(std::string_view section, std::string_view name, std::string_view key) const;
    bool get_bool(std::string_view section, std::string_view name, std::string_view key) const;
    std::vector<std::string> get_list(std::string_view section, std::string_view name, std::string_view key) const;
    std::chrono::milliseconds get_duration(std::string_view section, std::string_view name, std::string_view key) const;
    std::uint64_t get_size(std::string_view section, std::string_view name, std::string_view key) const;

    const std::map<std::string, std::map<std::string, ConfigObject>>& sections() const { return sections_; }

private:
    ConfigValue resolved(std::string_view section, std::string_view name, std::string_view key) const;
    std::map<std::string, std::map<std::string, ConfigObject>> sections_;
};

struct LoadOptions {
    std::filesystem::path config_dir = "/etc/sanagent";
    // Secret files must belong to this user (root); tests run as root and chown.
    uid_t secret_owner = 0;
};

// Parse one TOML document and merge it into `config` key by key, reporting
// syntax, unknown sections/keys, wrong types and unsafe names. Pure apart from
// its arguments (the fuzz target's entry point).
void merge_toml(Config& config, std::string_view text, const std::string& file, Diagnostics& diagnostics);

// Whole-config rules after merging: required keys, dangling references,
// duplicate interface names, secrets files (owner and mode).
void validate_config(const Config& config, const LoadOptions& options, Diagnostics& diagnostics);

// The files that make the config, in the order they are read.
std::vector<std::filesystem::path> config_files(const std::filesystem::path& config_dir, Diagnostics& diagnostics);

// config_files + merge_toml each + validate_config.
Config load_config(const LoadOptions& options, Diagnostics& diagnostics);

// The merged config as TOML, secrets redacted; with `explain`, each value is
// followed by "# file:line" (or "# default" for defaults that are shown).
std::string render_config(const Config& config, bool explain);

}  // namespace sanagent::agent
