#include "sanagent/configfs/tree.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <memory>

#include "sanagent/fd.h"

namespace sanagent::configfs {

namespace fs = std::filesystem;

std::string ConfigfsTree::full(const std::string& relative) const {
    std::string out = root_.native();
    if (!relative.empty()) {
        if (out.empty() || out.back() != '/') out += '/';
        out += relative;
    }
    return out;
}

bool ConfigfsTree::exists(const std::string& relative) const {
    struct stat st {};
    return ::lstat(full(relative).c_str(), &st) == 0;
}

namespace {
// A directory's entries of one kind, read with getdents64 into one buffer:
// opendir would add an fstat per directory, and an lstat per entry is saved
// by d_type, which configfs fills in. The tree is read whole at every pass,
// so each syscall counts.
// nullopt when the directory cannot be opened (absent).
std::optional<std::vector<std::string>> entries(int at, const std::string& dir, bool links) {
    std::vector<std::string> names;
    UniqueFd fd(::openat(at, dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid()) return std::nullopt;
    alignas(8) char buf[16384];
    for (;;) {
        const ssize_t n = ::getdents64(fd.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        for (ssize_t off = 0; off < n;) {
            const auto* e = reinterpret_cast<const struct dirent64*>(buf + off);
            off += e->d_reclen;
            const std::string_view name = e->d_name;
            if (name == "." || name == "..") continue;
            unsigned char type = e->d_type;
            if (type == DT_UNKNOWN) {
                struct stat st {};
                if (::fstatat(fd.get(), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
                type = S_ISLNK(st.st_mode) ? DT_LNK : S_ISDIR(st.st_mode) ? DT_DIR : DT_REG;
            }
            if (links ? type == DT_LNK : type == DT_DIR) names.emplace_back(name);
        }
    }
    std::sort(names.begin(), names.end());
    return names;
}

std::vector<std::string> list_entries(int at, const std::string& dir, bool links) {
    return entries(at, dir, links).value_or(std::vector<std::string>{});
}

std::optional<std::string> read_attr_at(int at, const std::string& relative) {
    // One open and, as a rule, one read: a configfs attribute is at most a
    // page and comes whole from the first read; only a full buffer asks for more.
    UniqueFd fd(::openat(at, relative.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return std::nullopt;
    std::string value;
    char buf[8192];
    for (;;) {
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            return std::nullopt;
        }
        value.append(buf, static_cast<std::size_t>(n));
        if (static_cast<std::size_t>(n) < sizeof buf) break;
    }
    while (!value.empty() && (value.back() == '\n' || value.back() == '\0')) value.pop_back();
    return value;
}

// "a/b/../c/./d" -> "a/c/d" (absolute paths keep their leading '/'), by
// string: std::filesystem's lexical functions split every component into a
// path object, thousands of times per pass.
std::string normalize(std::string_view path) {
    std::vector<std::string_view> parts;
    const bool absolute = !path.empty() && path.front() == '/';
    std::size_t i = 0;
    while (i <= path.size()) {
        std::size_t j = path.find('/', i);
        if (j == std::string_view::npos) j = path.size();
        std::string_view part = path.substr(i, j - i);
        if (part == "..") {
            if (!parts.empty() && parts.back() != "..")
                parts.pop_back();
            else if (!absolute)
                parts.push_back(part);
        } else if (!part.empty() && part != ".") {
            parts.push_back(part);
        }
        i = j + 1;
    }
    std::string out = absolute ? "/" : "";
    for (std::size_t k = 0; k < parts.size(); ++k) {
        if (k) out += '/';
        out += parts[k];
    }
    return out;
}

// `name` is read relative to `at`; `link` is the link's full path.
std::optional<fs::path> read_link_at(int at, const std::string& name, const std::string& root,
                                     const std::string& link) {
    char buf[4096];
    const ssize_t n = ::readlinkat(at, name.c_str(), buf, sizeof buf);
    if (n < 0 || static_cast<std::size_t>(n) >= sizeof buf) return std::nullopt;
    std::string target(buf, static_cast<std::size_t>(n));
    if (target.empty()) return std::nullopt;
    // A relative target is relative to the link's own directory.
    if (target.front() != '/') target = link.substr(0, link.rfind('/') + 1) + target;
    target = normalize(target);
    const std::string base = normalize(root);
    if (target.size() > base.size() && target.compare(0, base.size(), base) == 0 && target[base.size()] == '/')
        return fs::path(target.substr(base.size() + 1));
    return fs::path(target);
}
}  // namespace

ConfigfsTree::Dir ConfigfsTree::open_dir(const std::string& relative) const {
    return Dir(this, relative, ::open(full(relative).c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
}

ConfigfsTree::Dir ConfigfsTree::Dir::open_dir(const std::string& relative) const {
    const std::string path = relative_.empty() ? relative : relative_ + "/" + relative;
    if (!valid()) return Dir(tree_, path, -1);
    return Dir(tree_, path, ::openat(fd_.get(), relative.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
}

std::vector<std::string> ConfigfsTree::Dir::list_dirs(const std::string& relative) const {
    if (!valid()) return {};
    return list_entries(fd_.get(), relative, false);
}

std::vector<std::string> ConfigfsTree::Dir::list_links(const std::string& relative) const {
    if (!valid()) return {};
    return list_entries(fd_.get(), relative, true);
}

std::optional<std::vector<std::string>> ConfigfsTree::Dir::links_in(const std::string& relative) const {
    if (!valid()) return std::nullopt;
    return entries(fd_.get(), relative, true);
}

std::optional<std::string> ConfigfsTree::Dir::read_attr(const std::string& relative) const {
    if (!valid()) return std::nullopt;
    return read_attr_at(fd_.get(), relative);
}

std::optional<fs::path> ConfigfsTree::Dir::read_link(const std::string& relative) const {
    if (!valid()) return std::nullopt;
    return read_link_at(fd_.get(), relative, tree_->root().native(),
                        tree_->full(relative_.empty() ? relative : relative_ + "/" + relative));
}

std::vector<std::string> ConfigfsTree::list_dirs(const std::string& relative) const {
    return list_entries(AT_FDCWD, full(relative), false);
}

std::vector<std::string> ConfigfsTree::list_links(const std::string& relative) const {
    return list_entries(AT_FDCWD, full(relative), true);
}

std::optional<std::string> ConfigfsTree::read_attr(const std::string& relative) const {
    return read_attr_at(AT_FDCWD, full(relative));
}

std::optional<fs::path> ConfigfsTree::read_link(const std::string& relative) const {
    const std::string link = full(relative);
    return read_link_at(AT_FDCWD, link, root_.native(), link);
}

Status ConfigfsTree::make_dir(const fs::path& relative) {
    ++mutations_;
    if (backing_ == Backing::PlainDirectory) {
        std::error_code ec;
        fs::create_directories(path(relative).parent_path(), ec);
    }
    if (::mkdir(path(relative).c_str(), 0755) != 0) return last_errno("mkdir " + path(relative).string());
    return {};
}

Status ConfigfsTree::remove_dir(const fs::path& relative) {
    ++mutations_;
    if (backing_ == Backing::PlainDirectory) {
        std::error_code ec;
        if (!fs::is_directory(fs::symlink_status(path(relative), ec)))
            return errno_error(ENOENT, "rmdir " + path(relative).string());
        fs::remove_all(path(relative), ec);
        return {};
    }
    if (::rmdir(path(relative).c_str()) != 0) return last_errno("rmdir " + path(relative).string());
    return {};
}

Status ConfigfsTree::write_attr(const fs::path& relative, const std::string& value) {
    ++mutations_;
    const auto p = path(relative);
    int flags = O_WRONLY | O_TRUNC | O_CLOEXEC;
    if (backing_ == Backing::PlainDirectory) {
        std::error_code ec;
        fs::create_directories(p.parent_path(), ec);
        flags |= O_CREAT;  // configfs attributes exist with their group
    }
    UniqueFd fd(::open(p.c_str(), flags, 0644));
    if (!fd.valid()) return last_errno("open " + p.string());
    ssize_t n = ::write(fd.get(), value.data(), value.size());
    if (n < 0) return last_errno("write to " + p.string());  // never the value: it may be a CHAP secret
    if (static_cast<std::size_t>(n) != value.size()) return Error{EIO, "short write to " + p.string()};
    return {};
}

Status ConfigfsTree::make_link(const fs::path& target_relative, const fs::path& link_relative) {
    ++mutations_;
    if (::symlink(path(target_relative).c_str(), path(link_relative).c_str()) != 0)
        return last_errno("symlink " + path(link_relative).string() + " -> " + path(target_relative).string());
    return {};
}

Status ConfigfsTree::remove_link(const fs::path& relative) {
    ++mutations_;
    if (::unlink(path(relative).c_str()) != 0) return last_errno("unlink " + path(relative).string());
    return {};
}

}  // namespace sanagent::configfs
