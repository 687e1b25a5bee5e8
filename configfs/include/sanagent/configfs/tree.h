// ConfigfsTree: every file operation sanagent does under a configfs root, and
// nothing else touches configfs. The root is given (default
// /sys/kernel/config/target in the daemon, a temporary directory in unit tests),
// so nothing below the top of a program hard-codes /sys.
//
// Each operation's error carries the full path and the kernel's errno, because
// configfs reports every refusal as an errno on mkdir/write/symlink.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "sanagent/fd.h"
#include "sanagent/result.h"

namespace sanagent::configfs {

class ConfigfsTree {
public:
    // Kernel: the real configfs, where mkdir makes a group with its default
    // groups (attrib/, auth/, wwn/ ...) and rmdir takes them away.
    // PlainDirectory: a temporary directory standing in for it in unit tests;
    // parents are made on demand and rmdir removes a whole subtree, which is
    // what configfs does for default groups.
    enum class Backing { Kernel, PlainDirectory };

    explicit ConfigfsTree(std::filesystem::path root, Backing backing = Backing::Kernel)
        : root_(std::move(root)), backing_(backing) {}

    const std::filesystem::path& root() const { return root_; }
    std::filesystem::path path(const std::filesystem::path& relative) const { return root_ / relative; }

    // The reading side takes relative paths as plain strings ("iscsi/IQN/tpgt_1"),
    // which a std::filesystem::path converts to: observing walks the whole tree
    // at every pass, and building a path object per file (which splits it into
    // components) costs more than the read itself under emulation.
    bool exists(const std::string& relative) const;
    // Names of the subdirectories (configfs groups) of a directory; empty if absent.
    std::vector<std::string> list_dirs(const std::string& relative) const;
    // Names of the symbolic links in a directory.
    std::vector<std::string> list_links(const std::string& relative) const;
    // An attribute's value with the trailing newline removed; nullopt if absent
    // or unreadable (some attributes are write-only).
    std::optional<std::string> read_attr(const std::string& relative) const;
    // Target of a symlink, relative to the root when it points inside it.
    std::optional<std::filesystem::path> read_link(const std::string& relative) const;

    // A directory of the tree held open (O_PATH) for one pass of reads: what
    // is read through it walks only the rest of the path. Under emulation the
    // path walk was a third of an open of a deep attribute; observe reads
    // thousands. Never kept across passes (a module reload makes a new tree).
    class Dir {
    public:
        bool valid() const { return fd_.valid(); }
        const std::string& relative() const { return relative_; }
        // The same reads as the tree's, with `relative` below this directory.
        std::vector<std::string> list_dirs(const std::string& relative) const;
        std::vector<std::string> list_links(const std::string& relative) const;
        // list_links, or nullopt when the directory is absent.
        std::optional<std::vector<std::string>> links_in(const std::string& relative) const;
        std::optional<std::string> read_attr(const std::string& relative) const;
        std::optional<std::filesystem::path> read_link(const std::string& relative) const;
        Dir open_dir(const std::string& relative) const;

    private:
        friend class ConfigfsTree;
        Dir(const ConfigfsTree* tree, std::string relative, int fd)
            : tree_(tree), relative_(std::move(relative)), fd_(fd) {}
        const ConfigfsTree* tree_;
        std::string relative_;  // from the tree's root; "" for the root itself
        UniqueFd fd_;
    };
    // The directory `relative` ("" for the root); !valid() if absent.
    Dir open_dir(const std::string& relative) const;

    Status make_dir(const std::filesystem::path& relative);
    Status remove_dir(const std::filesystem::path& relative);
    // One write(2) of the whole value, as configfs attributes expect.
    Status write_attr(const std::filesystem::path& relative, const std::string& value);
    Status make_link(const std::filesystem::path& target_relative, const std::filesystem::path& link_relative);
    Status remove_link(const std::filesystem::path& relative);

    // Writes and directory changes done through this tree, for idempotence tests.
    std::size_t mutations() const { return mutations_; }

private:
    // root_ + "/" + relative, without std::filesystem's component parsing.
    std::string full(const std::string& relative) const;

    std::filesystem::path root_;
    Backing backing_;
    std::size_t mutations_ = 0;
};

}  // namespace sanagent::configfs
