#include "sanagent/agent/config.h"

#include <sys/stat.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include "sanagent/agent/units.h"

namespace sanagent::agent {

namespace fs = std::filesystem;

std::string Origin::text() const {
    return file.empty() ? "(default)" : file + ":" + std::to_string(line);
}

std::string Diagnostic::text() const {
    std::string s = origin.text() + ":";
    if (!object.empty()) s += " [" + object + "]";
    if (!key.empty())
        s += " " + key + ":";
    else if (!object.empty())
        s += ":";
    return s + " " + message;
}

void Diagnostics::error(Origin origin, std::string object, std::string key, std::string message) {
    items_.push_back({std::move(origin), std::move(object), std::move(key), std::move(message)});
}

std::string Diagnostics::text() const {
    std::string s;
    for (const auto& d : items_) s += d.text() + "\n";
    return s;
}

// ---- Config accessors ----------------------------------------------------

std::vector<const ConfigObject*> Config::objects(std::string_view section) const {
    std::vector<const ConfigObject*> out;
    auto it = sections_.find(std::string(section));
    if (it == sections_.end()) return out;
    for (const auto& [name, obj] : it->second) out.push_back(&obj);
    return out;
}

const ConfigObject* Config::find(std::string_view section, std::string_view name) const {
    auto it = sections_.find(std::string(section));
    if (it == sections_.end()) return nullptr;
    auto jt = it->second.find(std::string(name));
    return jt == it->second.end() ? nullptr : &jt->second;
}

ConfigObject& Config::object(const std::string& section, const std::string& name, const Origin& origin) {
    auto& objects = sections_[section];
    auto it = objects.find(name);
    if (it == objects.end()) it = objects.emplace(name, ConfigObject{section, name, origin, {}, {}}).first;
    return it->second;
}

const ConfigValue* Config::value(std::string_view section, std::string_view name, std::string_view key) const {
    const auto* obj = find(section, name);
    if (!obj) return nullptr;
    auto it = obj->values.find(std::string(key));
    return it == obj->values.end() ? nullptr : &it->second;
}

namespace {

// A value in config syntax -> ConfigValue, or a sentence of what was expected.
Result<ConfigValue> convert(const KeySpec& spec, const toml::node& node);

ConfigValue default_value(const KeySpec& spec) {
    ConfigValue v;
    v.type = spec.type;
    if (spec.default_value.empty()) {
        switch (spec.type) {
            case ValueType::string_list:
            case ValueType::name_list:
                v.data = std::vector<std::string>{};
                break;
            case ValueType::string_map:
                v.data = std::map<std::string, std::string>{};
                break;
            case ValueType::integer:
            case ValueType::size:
            case ValueType::duration:
            case ValueType::percent:
                v.data = std::int64_t{0};
                break;
            case ValueType::boolean:
                v.data = false;
                break;
            default:
                v.data = std::string{};
        }
        return v;
    }
    // Defaults are written in config syntax; parse them as a value would be.
    auto doc = toml::parse("v = " + (spec.type == ValueType::integer || spec.type == ValueType::boolean ||
                                             spec.default_value.front() == '['
                                         ? std::string(spec.default_value)
                                         : "\"" + std::string(spec.default_value) + "\""));
    auto converted = convert(spec, *doc.get("v"));
    if (!converted) std::abort();  // a schema default that does not parse: caught by the schema unit test
    v = std::move(*converted);
    v.origin = {};
    return v;
}

}  // namespace

ConfigValue Config::resolved(std::string_view section, std::string_view name, std::string_view key) const {
    if (const auto* v = value(section, name, key)) return *v;
    const auto* spec = find_key(section, key);
    if (!spec) std::abort();  // reading a key the schema does not have is a bug
    return default_value(*spec);
}

std::string Config::get_string(std::string_view s, std::string_view n, std::string_view k) const {
    return std::get<std::string>(resolved(s, n, k).data);
}
std::int64_t Config::get_integer(std::string_view s, std::string_view n, std::string_view k) const {
    return std::get<std::int64_t>(resolved(s, n, k).data);
}
bool Config::get_bool(std::string_view s, std::string_view n, std::string_view k) const {
    return std::get<bool>(resolved(s, n, k).data);
}
std::vector<std::string> Config::get_list(std::string_view s, std::string_view n, std::string_view k) const {
    return std::get<std::vector<std::string>>(resolved(s, n, k).data);
}
std::chrono::milliseconds Config::get_duration(std::string_view s, std::string_view n, std::string_view k) const {
    return std::chrono::milliseconds(std::get<std::int64_t>(resolved(s, n, k).data));
}
std::uint64_t Config::get_size(std::string_view s, std::string_view n, std::string_view k) const {
    return static_cast<std::uint64_t>(std::get<std::int64_t>(resolved(s, n, k).data));
}

// ---- Parsing and merging ---------------------------------------------------

namespace {

int line_of(const toml::node& node) {
    return static_cast<int>(node.source().begin.line);
}

std::string toml_string(std::string_view s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        if (static_cast<unsigned char>(c) < 0x20) {
            out += '?';
            continue;
        }
        out += c;
    }
    return out + "\"";
}

Error expected(std::string what) {
    return Error{EINVAL, std::move(what)};
}

// A name from a file as it may be shown in a message: bounded, no control characters.
std::string printable(std::string_view s) {
    std::string out(s.substr(0, 80));
    for (char& c : out)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
    return out;
}

Result<std::string> name_item(const toml::node& node) {
    const auto* s = node.as_string();
    if (!s) return Error{EINVAL, "expected a name (a string)"};
    if (!is_safe_name(s->get()))
        return Error{EINVAL, "expected a name of [a-z0-9][a-z0-9.-]*, at most " + std::to_string(kMaxNameLength) +
                                 " characters, got " + toml_string(s->get().substr(0, 80))};
    return s->get();
}

Result<std::vector<std::string>> string_items(const toml::node& node, bool names) {
    const auto* arr = node.as_array();
    if (!arr) return Error{EINVAL, names ? "expected a list of names" : "expected a list of strings"};
    std::vector<std::string> out;
    for (const auto& item : *arr) {
        if (names) {
            auto n = name_item(item);
            if (!n) return n.error();
            out.push_back(std::move(*n));
        } else if (const auto* s = item.as_string()) {
            out.push_back(s->get());
        } else {
            return Error{EINVAL, "expected a list of strings, found a non-string item"};
        }
    }
    return out;
}

std::string render_list(const std::vector<std::string>& items) {
    std::string s = "[";
    for (std::size_t i = 0; i < items.size(); ++i) s += (i ? ", " : "") + toml_string(items[i]);
    return s + "]";
}

Result<ConfigValue> convert(const KeySpec& spec, const toml::node& node) {
    ConfigValue v;
    v.type = spec.type;
    auto need_string = [&](std::string_view what) -> Result<std::string> {
        if (const auto* s = node.as_string()) return s->get();
        return expected("expected " + std::string(what) + (what == "a string" ? "" : " (a string)"));
    };
    switch (spec.type) {
        case ValueType::string: {
            auto s = need_string("a string");
            if (!s) return s.error();
            v.raw = toml_string(*s);
            v.data = std::move(*s);
            return v;
        }
        case ValueType::name: {
            auto n = name_item(node);
            if (!n) return n.error();
            v.raw = toml_string(*n);
            v.data = std::move(*n);
            return v;
        }
        case ValueType::path:
        case ValueType::secret_file: {
            auto s = need_string("an absolute path");
            if (!s) return s.error();
            if (s->empty() || s->front() != '/' || s->find('\0') != std::string::npos || s->size() > 4095)
                return expected("expected an absolute path, got " + toml_string(s->substr(0, 80)));
            v.raw = toml_string(*s);
            v.data = std::move(*s);
            return v;
        }
        case ValueType::integer: {
            const auto* i = node.as_integer();
            if (!i) return expected("expected an integer");
            if (i->get() < spec.min || i->get() > spec.max)
                return expected("expected an integer from " + std::to_string(spec.min) + " to " +
                                std::to_string(spec.max) + ", got " + std::to_string(i->get()));
            v.raw = std::to_string(i->get());
            v.data = i->get();
            return v;
        }
        case ValueType::boolean: {
            const auto* b = node.as_boolean();
            if (!b) return expected("expected true or false");
            v.raw = b->get() ? "true" : "false";
            v.data = b->get();
            return v;
        }
        case ValueType::choice: {
            auto s = need_string("one of " + std::string(spec.choices));
            if (!s) return s.error();
            std::string_view choices = spec.choices;
            bool found = false;
            while (!choices.empty()) {
                auto bar = choices.find('|');
                if (choices.substr(0, bar) == *s) found = true;
                choices = bar == std::string_view::npos ? std::string_view{} : choices.substr(bar + 1);
            }
            if (!found)
                return expected("expected one of " + std::string(spec.choices) + ", got " +
                                toml_string(s->substr(0, 80)));
            v.raw = toml_string(*s);
            v.data = std::move(*s);
            return v;
        }
        case ValueType::string_list:
        case ValueType::name_list: {
            auto items = string_items(node, spec.type == ValueType::name_list);
            if (!items) return items.error();
            v.raw = render_list(*items);
            v.data = std::move(*items);
            return v;
        }
        case ValueType::string_map: {
            const auto* t = node.as_table();
            if (!t) return expected("expected a table of name = \"value\"");
            std::map<std::string, std::string> m;
            std::string raw = "{ ";
            for (const auto& [k, item] : *t) {
                if (!is_safe_name(k.str()))
                    return expected("expected names of [a-z0-9][a-z0-9.-]* as keys, got " +
                                    toml_string(k.str().substr(0, 80)));
                // Whole numbers are kept as their text (keep = 24).
                if (const auto* i = item.as_integer()) {
                    raw += (m.empty() ? "" : ", ") + toml_string(k.str()) + " = " + std::to_string(i->get());
                    m.emplace(std::string(k.str()), std::to_string(i->get()));
                    continue;
                }
                const auto* s = item.as_string();
                if (!s) return expected("expected a string value for " + toml_string(k.str()));
                raw += (m.empty() ? "" : ", ") + toml_string(k.str()) + " = " + toml_string(s->get());
                m.emplace(std::string(k.str()), s->get());
            }
            v.raw = raw + " }";
            v.data = std::move(m);
            return v;
        }
        case ValueType::size: {
            if (const auto* i = node.as_integer(); i && i->get() >= 0) {
                v.data = i->get();
                v.raw = std::to_string(i->get());
                return v;
            }
            auto s = need_string("a size like \"10G\"");
            if (!s) return s.error();
            auto n = parse_size(*s);
            if (!n) return expected("expected a size: " + n.error().message);
            if (*n > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
                return expected("expected a size below 8E, got " + toml_string(*s));
            v.data = static_cast<std::int64_t>(*n);
            v.raw = toml_string(*s);
            return v;
        }
        case ValueType::duration: {
            auto s = need_string("a duration like \"5s\"");
            if (!s) return s.error();
            auto d = parse_duration(*s);
            if (!d) return expected("expected a duration: " + d.error().message);
            if (d->count() < spec.min)
                return expected("expected at least " + format_duration(std::chrono::milliseconds(spec.min)) + ", got " +
                                toml_string(*s));
            v.data = static_cast<std::int64_t>(d->count());
            v.raw = toml_string(*s);
            return v;
        }
        case ValueType::percent: {
            auto s = need_string("a percentage like \"80%\"");
            if (!s) return s.error();
            auto p = parse_percent(*s);
            if (!p) return expected("expected a percentage: " + p.error().message);
            v.data = std::int64_t{*p};
            v.raw = toml_string(*s);
            return v;
        }
    }
    return expected("unsupported type");
}

std::string known_keys(const SectionSpec& section) {
    std::string s;
    for (const auto& k : section.keys) s += (s.empty() ? "" : ", ") + std::string(k.key);
    return s;
}

std::string known_sections() {
    std::string s;
    for (const auto& sec : schema()) s += (s.empty() ? "" : ", ") + std::string(sec.name);
    return s;
}

void merge_object(Config& config, const SectionSpec& section, const std::string& name, const toml::table& table,
                  const std::string& file, Diagnostics& diagnostics) {
    Origin origin{file, line_of(table)};
    auto& obj = config.object(std::string(section.name), name, origin);
    const std::string id = obj.id();
    for (const auto& [key, node] : table) {
        Origin at{file, line_of(node)};
        const std::string k(key.str());
        const KeySpec* spec = nullptr;
        for (const auto& candidate : section.keys)
            if (candidate.key == k) spec = &candidate;
        if (!spec) {
            diagnostics.error(at, id, printable(k), "unknown key; expected one of " + known_keys(section));
            continue;
        }
        auto value = convert(*spec, node);
        if (!value) {
            diagnostics.error(at, id, k, value.error().message);
            obj.rejected.insert(k);
            continue;
        }
        value->origin = at;
        obj.values[k] = std::move(*value);  // a later file overrides key by key
    }
}

}  // namespace

void merge_toml(Config& config, std::string_view text, const std::string& file, Diagnostics& diagnostics) {
    toml::table root;
    try {
        root = toml::parse(text, file);
    } catch (const toml::parse_error& e) {
        diagnostics.error({file, static_cast<int>(e.source().begin.line)}, {}, {},
                          "syntax error: " + std::string(e.description()));
        return;
    }
    for (const auto& [key, node] : root) {
        const std::string name(key.str());
        Origin at{file, line_of(node)};
        const SectionSpec* section = find_section(name);
        if (!section) {
            diagnostics.error(at, printable(name), {}, "unknown section; expected one of " + known_sections());
            continue;
        }
        const auto* table = node.as_table();
        if (!table) {
            diagnostics.error(at, name, {}, "expected a table ([" + name + (section->named ? ".NAME" : "") + "])");
            continue;
        }
        if (!section->named) {
            merge_object(config, *section, "", *table, file, diagnostics);
            continue;
        }
        for (const auto& [object_name, object_node] : *table) {
            const std::string oname(object_name.str());
            Origin oat{file, line_of(object_node)};
            const std::string shown = name + "." + printable(oname);
            if (!is_safe_name(oname)) {
                diagnostics.error(oat, shown, {},
                                  "unsafe name; expected [a-z0-9][a-z0-9.-]*, at most " +
                                      std::to_string(kMaxNameLength) + " characters");
                continue;
            }
            const auto* object_table = object_node.as_table();
            if (!object_table) {
                diagnostics.error(oat, shown, {}, "expected a table ([" + name + "." + oname + "]), got a value");
                continue;
            }
            merge_object(config, *section, oname, *object_table, file, diagnostics);
        }
    }
}

void validate_config(const Config& config, const LoadOptions& options, Diagnostics& diagnostics) {
    for (const auto& [section_name, objects] : config.sections()) {
        const auto* section = find_section(section_name);
        if (!section) continue;
        for (const auto& [name, obj] : objects) {
            for (const auto& spec : section->keys) {
                auto it = obj.values.find(std::string(spec.key));
                if (it == obj.values.end()) {
                    if (spec.required && !obj.rejected.count(std::string(spec.key)))
                        diagnostics.error(obj.origin, obj.id(), std::string(spec.key), "required key is missing");
                    continue;
                }
                const ConfigValue& v = it->second;
                if (!spec.ref.empty()) {
                    std::vector<std::string> refs;
                    if (const auto* s = std::get_if<std::string>(&v.data)) refs.push_back(*s);
                    if (const auto* l = std::get_if<std::vector<std::string>>(&v.data)) refs = *l;
                    for (const auto& ref : refs)
                        if (!config.find(spec.ref, ref))
                            diagnostics.error(v.origin, obj.id(), std::string(spec.key),
                                              "expected the name of a [" + std::string(spec.ref) + ".NAME] table; \"" +
                                                  ref + "\" is not defined");
                }
                if (spec.type == ValueType::secret_file) {
                    const auto& path = std::get<std::string>(v.data);
                    struct stat st {};
                    if (::lstat(path.c_str(), &st) != 0)
                        diagnostics.error(v.origin, obj.id(), std::string(spec.key),
                                          "expected a readable secrets file; cannot stat " + path);
                    else if (!S_ISREG(st.st_mode))
                        diagnostics.error(v.origin, obj.id(), std::string(spec.key),
                                          "expected a regular file (not a link or directory): " + path);
                    else if (st.st_uid != options.secret_owner || (st.st_mode & 07777) != 0600)
                        diagnostics.error(v.origin, obj.id(), std::string(spec.key),
                                          "expected a file owned by uid " + std::to_string(options.secret_owner) +
                                              " with mode 0600: " + path);
                }
            }
        }
    }
    // A bond and a link are both network interfaces: one name, one object.
    for (const auto* bond : config.objects("bond"))
        if (const auto* link = config.find("link", bond->name))
            diagnostics.error(
                link->origin, link->id(), {},
                "duplicate interface name; also declared as [bond." + bond->name + "] at " + bond->origin.text());
    for (const auto* vol : config.objects("volume")) {
        // Volume, target and LV share the name; so must the LV in every pool.
        if (config.get_string("volume", vol->name, "pool").empty() && config.objects("pool").size() > 1)
            diagnostics.error(vol->origin, vol->id(), "pool",
                              "expected a pool name: more than one [pool.NAME] is defined");
    }
}

std::vector<fs::path> config_files(const fs::path& config_dir, Diagnostics& diagnostics) {
    std::vector<fs::path> files;
    std::error_code ec;
    if (!fs::is_directory(config_dir, ec)) {
        diagnostics.error({config_dir.string(), 0}, {}, {}, "expected a config directory");
        return files;
    }
    if (fs::is_regular_file(config_dir / "sanagent.conf", ec)) files.push_back(config_dir / "sanagent.conf");
    std::vector<fs::path> dropins;
    for (const auto& entry : fs::directory_iterator(config_dir / "conf.d", ec))
        if (entry.path().extension() == ".conf" && entry.is_regular_file()) dropins.push_back(entry.path());
    std::sort(dropins.begin(), dropins.end());
    files.insert(files.end(), dropins.begin(), dropins.end());
    return files;
}

Config load_config(const LoadOptions& options, Diagnostics& diagnostics) {
    Config config;
    for (const auto& file : config_files(options.config_dir, diagnostics)) {
        std::ifstream in(file, std::ios::binary);
        if (!in) {
            diagnostics.error({file.string(), 0}, {}, {}, "cannot read the file");
            continue;
        }
        std::stringstream text;
        text << in.rdbuf();
        merge_toml(config, text.str(), file.string(), diagnostics);
    }
    validate_config(config, options, diagnostics);
    return config;
}

std::string render_config(const Config& config, bool explain) {
    std::ostringstream out;
    for (const auto& section : schema()) {
        for (const auto* obj : config.objects(section.name)) {
            out << "[" << obj->id() << "]";
            if (explain) out << "  # " << obj->origin.text();
            out << "\n";
            for (const auto& spec : section.keys) {
                auto it = obj->values.find(std::string(spec.key));
                bool set = it != obj->values.end();
                if (!set && !explain) continue;
                std::string shown;
                if (set)
                    shown = spec.secret ? "\"<redacted>\"" : it->second.raw;
                else if (!spec.default_value.empty())
                    shown = spec.type == ValueType::integer || spec.default_value.front() == '['
                                ? std::string(spec.default_value)
                                : toml_string(spec.default_value);
                else
                    continue;
                out << std::string(spec.key) << " = " << shown;
                if (explain) out << "  # " << (set ? it->second.origin.text() : "default");
                out << "\n";
            }
            out << "\n";
        }
    }
    return out.str();
}

}  // namespace sanagent::agent
