#include "sanagent/replicator/secret_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sanagent/fd.h"

namespace sanagent::replicator {

Result<std::vector<std::uint8_t>> read_secret_file(const std::string& path, const std::string& what,
                                                   std::size_t max_bytes) {
    // O_NOFOLLOW and fstat of the opened file: what is checked is what is read.
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd.valid()) return last_errno("opening the " + what + " " + path);
    struct stat st {};
    if (::fstat(fd.get(), &st) < 0) return last_errno("stat of the " + what + " " + path);
    if (!S_ISREG(st.st_mode)) return Error{EINVAL, what + " " + path + ": not a regular file"};
    if (st.st_uid != 0 && st.st_uid != ::geteuid())
        return Error{EPERM, what + " " + path + ": must be owned by root (chown root " + path + ")"};
    if (st.st_mode & 077) return Error{EPERM, what + " " + path + ": readable by others; chmod 0600 " + path};
    std::vector<std::uint8_t> data(max_bytes + 1);
    std::size_t got = 0;
    while (got < data.size()) {
        ssize_t r = ::read(fd.get(), data.data() + got, data.size() - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            auto error = last_errno("reading the " + what + " " + path);
            explicit_bzero(data.data(), data.size());
            return error;
        }
        if (r == 0) break;
        got += static_cast<std::size_t>(r);
    }
    if (got > max_bytes) {
        explicit_bzero(data.data(), data.size());
        return Error{EFBIG, what + " " + path + ": larger than " + std::to_string(max_bytes) + " bytes"};
    }
    data.resize(got);
    return data;
}

}  // namespace sanagent::replicator
