// Result<T>: a value or an Error, the one error style of every sanagent library.
//
// Expected failures of the environment (a configfs write refused by the kernel,
// an lvm command that exits non-zero, a netlink NACK) travel up as values, with
// the errno and a sentence of context that grows as it goes up ("creating ACL
// ... on target ...: mkdir ...: File exists"). Exceptions are for start-up and
// configuration time only; impossible states abort.
#pragma once

#include <cerrno>
#include <cstdlib>
#include <string>
#include <utility>
#include <variant>

namespace sanagent {

struct Error {
    int code = 0;          // errno value where there is one, else 0
    std::string message;   // what was being done, to what, and why it failed

    // Prefix the message with what the caller was doing: "doing X: <inner>".
    Error context(const std::string& doing) const& { return Error{code, doing + ": " + message}; }
    Error context(const std::string& doing) && {
        message = doing + ": " + message;
        return std::move(*this);
    }
};

// An Error from errno after a failed system call: "<what>: <strerror>".
Error errno_error(int code, const std::string& what);
inline Error last_errno(const std::string& what) { return errno_error(errno, what); }

template <typename T>
class [[nodiscard]] Result {
public:
    Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}
    Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}

    bool ok() const { return v_.index() == 0; }
    explicit operator bool() const { return ok(); }

    T& value() & { return checked(); }
    const T& value() const& { return const_cast<Result*>(this)->checked(); }
    T&& value() && { return std::move(checked()); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

    const Error& error() const {
        if (ok()) std::abort();
        return std::get<1>(v_);
    }

private:
    T& checked() {
        if (!ok()) std::abort();  // reading the value of a failure is a bug
        return std::get<0>(v_);
    }
    std::variant<T, Error> v_;
};

// Result<void>: success or an Error.
template <>
class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Error error) : error_(std::move(error)), failed_(true) {}
    bool ok() const { return !failed_; }
    explicit operator bool() const { return ok(); }
    const Error& error() const {
        if (!failed_) std::abort();
        return error_;
    }

private:
    Error error_;
    bool failed_ = false;
};

using Status = Result<void>;

}  // namespace sanagent
