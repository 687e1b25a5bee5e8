// The control socket protocol between sanctl and sanagentd: one JSON object
// per line each way, one request per connection.
//
//   request:  {"request": "status" | "plan" | "apply" | "reload"}\n
//   reply:    {"ok": true, "result": ...}\n  or  {"ok": false, "error": "..."}\n
//
// A request is at most kMaxRequestBytes including the newline; a longer,
// malformed or slow one (no newline within the read timeout) gets an error
// reply and the connection is closed. parse_request() is pure, so unit tests
// and the fuzzer call it without sockets.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "sanagent/fd.h"
#include "sanagent/result.h"

namespace sanagent::agent {

constexpr std::size_t kMaxRequestBytes = 64 * 1024;

enum class RequestKind { status, plan, apply, reload };
std::string_view request_name(RequestKind kind);

struct Request {
    RequestKind kind = RequestKind::status;
};

// One line (without its newline) -> Request.
Result<Request> parse_request(std::string_view line);
std::string encode_request(const Request& request);

std::string ok_reply(const nlohmann::json& result);
std::string error_reply(const std::string& message);

// Server side: a listening socket at `path` (parent created 0700, socket 0600;
// a stale socket file is replaced).
Result<UniqueFd> listen_control_socket(const std::filesystem::path& path);

using RequestHandler = std::function<nlohmann::json(const Request&)>;
// Read one request from a connected client within `timeout`, answer it, and
// return. Never blocks longer than `timeout` for reading (plus the handler).
Status serve_client(int fd, const RequestHandler& handler, std::chrono::milliseconds timeout);

// Client side: send `request`, return the reply's "result", or an Error (the
// daemon's "error", or why it could not be reached).
Result<nlohmann::json> control_call(const std::filesystem::path& socket, const Request& request,
                                    std::chrono::milliseconds timeout);

}  // namespace sanagent::agent
