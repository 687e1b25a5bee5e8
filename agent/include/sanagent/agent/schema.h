// The config schema, written once: every section and key with its type,
// default, unit and a sentence of documentation. The loader checks files
// against it, the getters take defaults from it, and docs/config.md's table is
// generated from it (`sanctl config schema --markdown`, checked by a unit test).
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

namespace sanagent::agent {

enum class ValueType {
    string,   // free text
    name,     // a safe name (see is_safe_name)
    path,     // an absolute path
    integer,  // within [min, max]
    boolean,
    choice,       // one of `choices` ("a|b|c")
    string_list,  // array of strings
    name_list,    // array of safe names
    string_map,   // inline table of name -> string
    size,         // "10G", binary units
    duration,     // "100ms", "5s"
    percent,      // "80%"
    secret_file,  // absolute path of a root-owned 0600 file; its content is never read here
};

std::string_view type_name(ValueType type);

struct KeySpec {
    std::string_view key;
    ValueType type;
    std::string_view default_value;  // in config syntax ("60s", "[\"storage\"]"); empty: none
    std::string_view doc;
    std::string_view unit = {};
    std::string_view ref = {};      // the section a name/name_list value names
    std::string_view choices = {};  // for choice: "active-backup|balance-alb|802.3ad"
    bool required = false;
    std::int64_t min = std::numeric_limits<std::int64_t>::min();
    std::int64_t max = std::numeric_limits<std::int64_t>::max();
    bool secret = false;  // value never printed
};

struct SectionSpec {
    std::string_view name;
    bool named;  // [volume.NAME] vs [node]
    std::string_view doc;
    std::vector<KeySpec> keys;
};

const std::vector<SectionSpec>& schema();
const SectionSpec* find_section(std::string_view name);
const KeySpec* find_key(std::string_view section, std::string_view key);

// The reference table of docs/config.md.
std::string schema_markdown();

}  // namespace sanagent::agent
