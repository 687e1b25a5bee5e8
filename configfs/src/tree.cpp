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

bool ConfigfsTree::exists(const fs::path& relative) const {
    std::error_code ec;
    return fs::exists(fs::symlink_status(path(relative), ec));
}

namespace {
// readdir's d_type, which configfs fills in, saves an lstat per entry (the
// tree is read whole at every pass; each syscall counts).
std::vector<std::string> list_entries(const fs::path& dir, bool links) {
    std::vector<std::string> names;
    std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
    if (!d) return names;
    while (const dirent* e = ::readdir(d.get())) {
        const std::string name = e->d_name;
        if (name == "." || name == "..") continue;
        unsigned char type = e->d_type;
        if (type == DT_UNKNOWN) {
            struct stat st {};
            if (::lstat((dir / name).c_str(), &st) != 0) continue;
            type = S_ISLNK(st.st_mode) ? DT_LNK : S_ISDIR(st.st_mode) ? DT_DIR : DT_REG;
        }
        if (links ? type == DT_LNK : type == DT_DIR) names.push_back(name);
    }
    std::sort(names.begin(), names.end());
    return names;
}
}  // namespace

std::vector<std::string> ConfigfsTree::list_dirs(const fs::path& relative) const {
    return list_entries(path(relative), false);
}

std::vector<std::string> ConfigfsTree::list_links(const fs::path& relative) const {
    return list_entries(path(relative), true);
}

std::optional<std::string> ConfigfsTree::read_attr(const fs::path& relative) const {
    // One open and read: configfs attributes are at most a page.
    UniqueFd fd(::open(path(relative).c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return std::nullopt;
    std::string value;
    char buf[4096];
    for (;;) {
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            return std::nullopt;
        }
        if (n == 0) break;
        value.append(buf, static_cast<std::size_t>(n));
    }
    while (!value.empty() && (value.back() == '\n' || value.back() == '\0')) value.pop_back();
    return value;
}

std::optional<fs::path> ConfigfsTree::read_link(const fs::path& relative) const {
    std::error_code ec;
    fs::path target = fs::read_symlink(path(relative), ec);
    if (ec) return std::nullopt;
    if (target.is_relative()) target = (path(relative).parent_path() / target).lexically_normal();
    auto rel = target.lexically_relative(root_);
    if (!rel.empty() && *rel.begin() != "..") return rel;
    return target;
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
