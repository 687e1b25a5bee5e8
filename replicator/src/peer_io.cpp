#include "sanagent/replicator/peer_io.h"

#include <sys/ioctl.h>

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "sanagent/replicator/crc32c.h"
#include "sanagent/replicator/net.h"

namespace sanagent::replicator::peer {

Result<Message> receive(int fd) {
    std::array<std::uint8_t, kHeaderSize> hb;
    if (auto st = read_full(fd, hb); !st) return st.error();
    auto h = decode_header(hb);
    if (!h) return h.error();
    Message m;
    m.header = *h;
    if (h->type == Type::Write) {
        std::array<std::uint8_t, 8> prefix;
        if (h->length < prefix.size()) return Error{EBADMSG, "peer WRITE: shorter than its offset"};
        if (auto st = read_full(fd, prefix); !st) return st.error();
        m.write_offset = *decode_write_prefix(prefix);
        m.write_data = std::make_shared<AlignedBuffer>(h->length - prefix.size());
        if (auto st = read_full(fd, m.write_data->span()); !st) return st.error();
        if (crc32c(m.write_data->span(), crc32c(prefix, crc_seed(*h))) != h->crc)
            return Error{EBADMSG, "peer WRITE seq " + std::to_string(h->seq) + ": CRC mismatch"};
        return m;
    }
    m.body.resize(h->length);
    if (auto st = read_full(fd, m.body); !st) return st.error();
    if (auto st = check_body(*h, m.body); !st) return st.error();
    return m;
}

namespace {
constexpr std::size_t kReaderBuffer = 256 * 1024;
// Payload left to receive past which the reader skips its buffer.
constexpr std::size_t kDirectReceive = 64 * 1024;
}  // namespace

Reader::Reader(int fd) : fd_(fd), buf_(kReaderBuffer) {}

Status Reader::fill() {
    if (begin_ == end_) begin_ = end_ = 0;
    if (end_ == buf_.size()) {
        std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
        end_ -= begin_;
        begin_ = 0;
    }
    // Bounded: one recv per call; EINTR is the only retry.
    for (;;) {
        ssize_t n = ::recv(fd_, buf_.data() + end_, buf_.size() - end_, 0);
        if (n > 0) {
            end_ += static_cast<std::size_t>(n);
            return {};
        }
        if (n == 0)
            return Error{ECONNRESET, current_ || buffered() ? "receiving: connection closed mid-message"
                                                            : "receiving: connection closed"};
        if (errno != EINTR) return last_errno("receiving");
    }
}

// Moves n buffered bytes into the current message at done_.
void Reader::take(std::size_t n) {
    const std::uint8_t* src = buf_.data() + begin_;
    begin_ += n;
    if (current_->header.type != Type::Write) {
        std::memcpy(current_->body.data() + done_, src, n);
        done_ += n;
        return;
    }
    if (done_ < prefix_.size()) {
        std::size_t k = std::min(n, prefix_.size() - done_);
        std::memcpy(prefix_.data() + done_, src, k);
        done_ += k;
        src += k;
        n -= k;
    }
    std::memcpy(current_->write_data->data() + (done_ - prefix_.size()), src, n);
    done_ += n;
}

bool Reader::more_waiting() const {
    if (buffered() >= kHeaderSize) return true;
    int bytes = 0;
    return ::ioctl(fd_, FIONREAD, &bytes) == 0 && buffered() + static_cast<std::size_t>(std::max(bytes, 0)) >= kHeaderSize;
}

Result<Message> Reader::receive(const std::function<void()>& before_blocking) {
    if (!current_) {
        while (buffered() < kHeaderSize)
            if (auto st = fill(); !st) return st.error();
        auto h = decode_header({buf_.data() + begin_, kHeaderSize});
        if (!h) return h.error();
        if (h->type == Type::Write && h->length < prefix_.size())
            return Error{EBADMSG, "peer WRITE: shorter than its offset"};
        begin_ += kHeaderSize;
        current_.emplace();
        current_->header = *h;
        // Out of memory ends this connection (the caller drops it on any
        // error), not the daemon with every other volume.
        try {
            if (h->type == Type::Write)
                current_->write_data = std::make_shared<AlignedBuffer>(h->length - prefix_.size());
            else
                current_->body.resize(h->length);
        } catch (const std::bad_alloc&) {
            current_.reset();
            return Error{ENOMEM, "no memory for a peer message of " + std::to_string(h->length) + " bytes"};
        }
        done_ = 0;
    }
    const std::size_t total = current_->header.length;
    // Bounded: each round moves buffered bytes or receives more.
    while (done_ < total) {
        if (buffered() > 0) {
            take(std::min(buffered(), total - done_));
            continue;
        }
        if (before_blocking) {
            int bytes = 0;
            if (::ioctl(fd_, FIONREAD, &bytes) != 0 || bytes == 0) before_blocking();
        }
        if (current_->header.type == Type::Write && done_ >= prefix_.size() && total - done_ >= kDirectReceive) {
            ssize_t n = ::recv(fd_, current_->write_data->data() + (done_ - prefix_.size()), total - done_, 0);
            if (n > 0) {
                done_ += static_cast<std::size_t>(n);
                continue;
            }
            if (n == 0) return Error{ECONNRESET, "receiving: connection closed mid-message"};
            if (errno == EINTR) continue;
            return last_errno("receiving");
        }
        if (auto st = fill(); !st) return st.error();
    }
    Message m = std::move(*current_);
    current_.reset();
    if (m.header.type == Type::Write) {
        m.write_offset = *decode_write_prefix(prefix_);
        if (crc32c(m.write_data->span(), crc32c(prefix_, crc_seed(m.header))) != m.header.crc)
            return Error{EBADMSG, "peer WRITE seq " + std::to_string(m.header.seq) + ": CRC mismatch"};
        return m;
    }
    if (auto st = check_body(m.header, m.body); !st) return st.error();
    return m;
}

Result<Message> receive_small(int fd, std::uint32_t max_body) {
    std::array<std::uint8_t, kHeaderSize> hb;
    if (auto st = read_full(fd, hb); !st) return st.error();
    auto h = decode_header(hb);
    if (!h) return h.error();
    if (h->type == Type::Write || h->length > max_body)
        return Error{EMSGSIZE, "peer message of type " + std::to_string(static_cast<int>(h->type)) + " with " +
                                   std::to_string(h->length) + " bytes during the handshake"};
    Message m;
    m.header = *h;
    m.body.resize(h->length);
    if (auto st = read_full(fd, m.body); !st) return st.error();
    if (auto st = check_body(*h, m.body); !st) return st.error();
    return m;
}

Status send(int fd, Type type, std::uint16_t flags, std::uint64_t seq, std::span<const std::uint8_t> body) {
    auto h = encode_header(type, flags, seq, body);
    struct iovec iov[2] = {{h.data(), h.size()}, {const_cast<std::uint8_t*>(body.data()), body.size()}};
    return writev_full(fd, iov, body.empty() ? 1 : 2);
}

Status send_write(int fd, std::uint16_t flags, std::uint64_t seq, std::uint64_t offset,
                  std::span<const std::uint8_t> data) {
    auto prefix = encode_write_prefix(offset);
    auto h = encode_header(Type::Write, flags, seq, prefix);
    // The header's length and CRC cover prefix + data.
    {
        std::uint32_t len = static_cast<std::uint32_t>(prefix.size() + data.size());
        std::uint32_t crc = crc32c(data, crc32c(prefix, crc_seed(Type::Write, flags, seq, len)));
        for (int i = 0; i < 4; ++i) {
            h[16 + i] = static_cast<std::uint8_t>(len >> (8 * i));
            h[20 + i] = static_cast<std::uint8_t>(crc >> (8 * i));
        }
    }
    struct iovec iov[3] = {
        {h.data(), h.size()}, {prefix.data(), prefix.size()}, {const_cast<std::uint8_t*>(data.data()), data.size()}};
    return writev_full(fd, iov, 3);
}

}  // namespace sanagent::replicator::peer
