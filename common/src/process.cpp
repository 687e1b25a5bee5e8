#include "sanagent/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstring>

#include "sanagent/fd.h"

extern char** environ;

namespace sanagent {

std::string Command::display() const {
    std::string s;
    for (const auto& a : argv) {
        if (!s.empty()) s += ' ';
        s += a;
    }
    return s;
}

namespace {

struct Pipe {
    UniqueFd read;
    UniqueFd write;
};

Result<Pipe> make_pipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return last_errno("pipe2");
    return Pipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

// Keep the tail of what a tool printed on stderr: the end holds the reason.
std::string tail_lines(const std::string& text, std::size_t max_chars = 400) {
    std::string t = text;
    while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
    if (t.size() > max_chars) t = "..." + t.substr(t.size() - max_chars);
    for (auto& c : t)
        if (c == '\n') c = ' ';
    return t;
}

// Tools are looked up in the system's own directories, never in the caller's
// PATH: a daemon running as root must not run an `lvm` that a user's PATH
// (~/.cargo/bin, a virtualenv) happens to put first.
constexpr const char* kTrustedPath[] = {"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"};

std::string resolve_tool(const std::string& name) {
    if (name.find('/') != std::string::npos) return name;
    for (const char* dir : kTrustedPath) {
        std::string candidate = std::string(dir) + "/" + name;
        if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    return {};
}

}  // namespace

Result<CommandOutput> SystemCommandRunner::run(const Command& command) {
    if (command.argv.empty()) return Error{EINVAL, "running a command: empty argv"};
    const std::string program = resolve_tool(command.argv[0]);
    if (program.empty())
        return Error{ENOENT, "running " + command.display() + ": cannot execute " + command.argv[0] +
                                 " (not in /usr/local/sbin, /usr/local/bin, /usr/sbin, /usr/bin, /sbin or /bin)"};
    auto in = make_pipe();
    auto out = make_pipe();
    auto err = make_pipe();
    if (!in) return in.error().context("running " + command.display());
    if (!out) return out.error().context("running " + command.display());
    if (!err) return err.error().context("running " + command.display());

    std::vector<std::string> env_storage;
    for (char** e = environ; *e; ++e) env_storage.emplace_back(*e);
    for (const auto& e : command.extra_env) env_storage.push_back(e);
    std::vector<char*> envp;
    for (auto& e : env_storage) envp.push_back(e.data());
    envp.push_back(nullptr);
    std::vector<std::string> argv_storage = command.argv;
    std::vector<char*> argv;
    for (auto& a : argv_storage) argv.push_back(a.data());
    argv.push_back(nullptr);

    pid_t pid = ::fork();
    if (pid < 0) return last_errno("running " + command.display() + ": fork");
    if (pid == 0) {
        // Child: only async-signal-safe calls until exec.
        ::dup2(in->read.get(), 0);
        ::dup2(out->write.get(), 1);
        ::dup2(err->write.get(), 2);
        ::setpgid(0, 0);
        ::execve(program.c_str(), argv.data(), envp.data());
        const char msg[] = "exec failed\n";
        [[maybe_unused]] auto n = ::write(2, msg, sizeof msg - 1);
        ::_exit(127);
    }
    in->read.reset();
    out->write.reset();
    err->write.reset();

    // Feed stdin and drain stdout/stderr together so neither side blocks.
    std::size_t written = 0;
    if (command.stdin_data.empty()) in->write.reset();
    ::fcntl(in->write.get(), F_SETFL, O_NONBLOCK);
    CommandOutput result;
    auto deadline = std::chrono::steady_clock::now() + command.timeout;
    bool timed_out = false;
    std::array<char, 65536> buf;
    while (out->read.valid() || err->read.valid()) {
        std::array<pollfd, 3> fds{};
        fds[0] = {out->read.get(), POLLIN, 0};
        fds[1] = {err->read.get(), POLLIN, 0};
        fds[2] = {in->write.get(), POLLOUT, 0};
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            timed_out = true;
            break;
        }
        int n = ::poll(fds.data(), fds.size(), static_cast<int>(left.count()));
        if (n < 0 && errno != EINTR) break;
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd >= 0 && (fds[i].revents & (POLLIN | POLLHUP | POLLERR))) {
                ssize_t r = ::read(fds[i].fd, buf.data(), buf.size());
                if (r > 0) {
                    (i == 0 ? result.out : result.err).append(buf.data(), static_cast<std::size_t>(r));
                } else if (r == 0 || errno != EINTR) {
                    (i == 0 ? out : err)->read.reset();
                }
            }
        }
        if (fds[2].fd >= 0 && (fds[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t w = ::write(fds[2].fd, command.stdin_data.data() + written, command.stdin_data.size() - written);
            if (w > 0) written += static_cast<std::size_t>(w);
            if (w < 0 && errno != EAGAIN && errno != EINTR) written = command.stdin_data.size();
            if (written >= command.stdin_data.size()) in->write.reset();
        }
    }
    if (timed_out) ::kill(-pid, SIGKILL);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (timed_out) {
        return Error{ETIMEDOUT, "running " + command.display() + ": no answer within " +
                                    std::to_string(command.timeout.count()) + " ms, killed"};
    }
    if (WIFEXITED(status)) {
        result.exit_code = WEXITSTATUS(status);
        if (result.exit_code == 127 && result.err == "exec failed\n")
            return Error{ENOENT, "running " + command.display() + ": cannot execute " + command.argv[0]};
    } else if (WIFSIGNALED(status)) {
        result.exit_code = 128 + WTERMSIG(status);
    }
    return result;
}

Result<CommandOutput> check_exit(const Command& command, Result<CommandOutput> result) {
    if (!result) return result;
    if (result->exit_code != 0) {
        return Error{0, command.display() + " exited with status " + std::to_string(result->exit_code) +
                            (result->err.empty() ? std::string() : ": " + tail_lines(result->err))};
    }
    return result;
}

}  // namespace sanagent
