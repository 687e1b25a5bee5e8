#include "sanagent/agent/control.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

namespace sanagent::agent {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::string_view request_name(RequestKind kind) {
    switch (kind) {
        case RequestKind::status:
            return "status";
        case RequestKind::plan:
            return "plan";
        case RequestKind::apply:
            return "apply";
        case RequestKind::reload:
            return "reload";
    }
    return "?";
}

Result<Request> parse_request(std::string_view line) {
    if (line.size() >= kMaxRequestBytes)
        return Error{EMSGSIZE, "request larger than " + std::to_string(kMaxRequestBytes) + " bytes"};
    auto doc = nlohmann::json::parse(line.begin(), line.end(), nullptr, false);
    if (doc.is_discarded() || !doc.is_object()) return Error{EINVAL, "request is not a JSON object"};
    auto it = doc.find("request");
    if (it == doc.end() || !it->is_string()) return Error{EINVAL, "request has no \"request\" string"};
    for (const auto& [key, value] : doc.items()) {
        (void)value;
        if (key != "request") return Error{EINVAL, "unknown field in request"};
    }
    const auto& name = it->get_ref<const std::string&>();
    for (auto kind : {RequestKind::status, RequestKind::plan, RequestKind::apply, RequestKind::reload})
        if (name == request_name(kind)) return Request{kind};
    return Error{EINVAL, "unknown request; expected status, plan, apply or reload"};
}

std::string encode_request(const Request& request) {
    return nlohmann::json{{"request", request_name(request.kind)}}.dump() + "\n";
}

std::string ok_reply(const nlohmann::json& result) {
    return nlohmann::json{{"ok", true}, {"result", result}}.dump(-1, ' ', false,
                                                                 nlohmann::json::error_handler_t::replace) +
           "\n";
}

std::string error_reply(const std::string& message) {
    return nlohmann::json{{"ok", false}, {"error", message}}.dump(-1, ' ', false,
                                                                  nlohmann::json::error_handler_t::replace) +
           "\n";
}

namespace {

Result<sockaddr_un> socket_address(const fs::path& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.native().size() >= sizeof addr.sun_path)
        return Error{ENAMETOOLONG, "control socket path " + path.string() + " is too long"};
    std::memcpy(addr.sun_path, path.c_str(), path.native().size());
    return addr;
}

int remaining_ms(Clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    return left < 0 ? 0 : static_cast<int>(left);
}

// Write all of `data` before `deadline` on a non-blocking socket.
Status write_all(int fd, std::string_view data, Clock::time_point deadline) {
    while (!data.empty()) {
        ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
        if (n > 0) {
            data.remove_prefix(static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EINTR) return last_errno("writing to the control socket");
        pollfd p{fd, POLLOUT, 0};
        int left = remaining_ms(deadline);
        if (left == 0 || ::poll(&p, 1, left) == 0) return Error{ETIMEDOUT, "writing to the control socket: timed out"};
    }
    return {};
}

// One line (without newline) before `deadline`, at most `limit` bytes.
Result<std::string> read_line(int fd, std::size_t limit, Clock::time_point deadline) {
    std::string buffer;
    char chunk[4096];
    for (;;) {
        auto nl = buffer.find('\n');
        if (nl != std::string::npos) return buffer.substr(0, nl);
        if (buffer.size() >= limit) return Error{EMSGSIZE, "message larger than " + std::to_string(limit) + " bytes"};
        pollfd p{fd, POLLIN, 0};
        int left = remaining_ms(deadline);
        int ready = left == 0 ? 0 : ::poll(&p, 1, left);
        if (ready < 0 && errno == EINTR) continue;
        if (ready <= 0) return Error{ETIMEDOUT, "no complete line within the time limit"};
        ssize_t n = ::recv(fd, chunk, std::min(sizeof chunk, limit + 1 - buffer.size()), 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (n < 0) return last_errno("reading from the control socket");
        if (n == 0) {
            if (buffer.empty()) return Error{ECONNRESET, "connection closed before a message"};
            return buffer;  // a last line without newline still counts
        }
        buffer.append(chunk, static_cast<std::size_t>(n));
    }
}

}  // namespace

Result<UniqueFd> listen_control_socket(const fs::path& path) {
    auto addr = socket_address(path);
    if (!addr) return addr.error();
    std::error_code ec;
    if (path.has_parent_path() && !fs::exists(path.parent_path(), ec)) {
        fs::create_directories(path.parent_path(), ec);
        if (ec) return Error{ec.value(), "creating " + path.parent_path().string() + ": " + ec.message()};
        ::chmod(path.parent_path().c_str(), 0700);
    }
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) return Error{EEXIST, path.string() + " exists and is not a socket"};
        ::unlink(path.c_str());  // stale socket of a previous run
    }
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd.valid()) return last_errno("creating the control socket");
    // The socket file is born 0600: no window in which others could connect.
    mode_t old = ::umask(0177);
    int rc = ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr);
    ::umask(old);
    if (rc != 0) return last_errno("binding " + path.string());
    if (::chmod(path.c_str(), 0600) != 0) return last_errno("chmod 0600 " + path.string());
    if (::listen(fd.get(), 16) != 0) return last_errno("listening on " + path.string());
    return fd;
}

Status serve_client(int fd, const RequestHandler& handler, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    auto line = read_line(fd, kMaxRequestBytes, deadline);
    std::string reply;
    if (!line) {
        reply = error_reply(line.error().message);
    } else if (auto request = parse_request(*line); !request) {
        reply = error_reply(request.error().message);
    } else {
        reply = ok_reply(handler(*request));
    }
    return write_all(fd, reply, Clock::now() + timeout);
}

Result<nlohmann::json> control_call(const fs::path& socket, const Request& request, std::chrono::milliseconds timeout) {
    auto addr = socket_address(socket);
    if (!addr) return addr.error();
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) return last_errno("creating a socket");
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) != 0)
        return last_errno("connecting to " + socket.string());
    const auto deadline = Clock::now() + timeout;
    if (auto sent = write_all(fd.get(), encode_request(request), deadline); !sent) return sent.error();
    // Replies (a plan, a status) may be larger than requests; still bounded.
    auto line = read_line(fd.get(), 16 * 1024 * 1024, deadline);
    if (!line) return line.error().context("reading the reply from " + socket.string());
    auto doc = nlohmann::json::parse(*line, nullptr, false);
    if (doc.is_discarded() || !doc.is_object() || !doc.contains("ok") || !doc["ok"].is_boolean())
        return Error{EPROTO, "malformed reply from " + socket.string()};
    if (!doc["ok"].get<bool>()) return Error{0, doc.value("error", std::string("unknown error"))};
    return doc["result"];
}

}  // namespace sanagent::agent
