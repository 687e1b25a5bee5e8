// The control socket: a UNIX stream socket, mode 0600 (root only when the
// daemon runs as root), one JSON request line in, one JSON reply line out, then
// close. The agent (sanctl replica ...) drives sanrepd through it; the handler
// that turns requests into replies lives with the daemon's main.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <thread>

#include "sanagent/fd.h"
#include "sanagent/result.h"

namespace sanagent::replicator {

class ControlServer {
public:
    using Handler = std::function<std::string(const std::string& request)>;
    ControlServer(std::string path, Handler handler) : path_(std::move(path)), handler_(std::move(handler)) {}
    ~ControlServer();
    Status start();
    void stop();

    static constexpr std::size_t kMaxRequest = 4096;

private:
    void loop();
    std::string path_;
    Handler handler_;
    UniqueFd fd_;
    std::thread thread_;
    std::atomic<bool> stopping_{false};
};

// The client half: sends one request line to the control socket at `path`
// and returns the reply line (without its newline). Bounded by `timeout_ms`.
Result<std::string> control_request(const std::string& path, const std::string& request, int timeout_ms = 5000);

}  // namespace sanagent::replicator
