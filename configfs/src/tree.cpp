#include "sanagent/configfs/tree.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "sanagent/fd.h"

namespace sanagent::configfs {

namespace fs = std::filesystem;

bool ConfigfsTree::exists(const fs::path& relative) const {
    std::error_code ec;
    return fs::exists(fs::symlink_status(path(relative), ec));
}

namespace {
std::vector<std::string> list_entries(const fs::path& dir, bool links) {
    std::vector<std::string> names;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
        std::error_code ec2;
        auto st = entry.symlink_status(ec2);
        if (links ? fs::is_symlink(st) : fs::is_directory(st)) names.push_back(entry.path().filename().string());
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
    std::ifstream in(path(relative));
    if (!in) return std::nullopt;
    std::ostringstream ss;
    ss << in.rdbuf();
    if (in.bad()) return std::nullopt;
    std::string value = ss.str();
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
