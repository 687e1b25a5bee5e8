// Framed peer messages on a socket: the blocking send/receive halves shared by
// the primary's link and the secondary's target. The codec is peer_protocol.h;
// this adds only the socket and the CRC check of bodies as they arrive.
#pragma once

#include <array>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "sanagent/replicator/peer_protocol.h"
#include "sanagent/replicator/replica.h"

namespace sanagent::replicator::peer {

struct Message {
    Header header;
    std::vector<std::uint8_t> body;             // every type but Write
    std::uint64_t write_offset = 0;             // Write only
    std::shared_ptr<AlignedBuffer> write_data;  // Write only: aligned for O_DIRECT
};

// Reads one message; EBADMSG/EMSGSIZE on a malformed one (close the link).
Result<Message> receive(int fd);

// The data phase's receiver: reads whatever the socket holds into a buffer
// and cuts messages out of it, so a burst of small messages (acks, 4 KiB
// writes) costs one system call instead of two or three each. Large write
// payloads are received straight into their O_DIRECT buffer. A receive
// timeout (EAGAIN) keeps what arrived of the message: call again and it
// resumes, the stream stays framed. Not for the handshake, which reads
// exactly one message at a time so nothing is buffered when it hands over.
class Reader {
public:
    explicit Reader(int fd);
    // `before_blocking`, if given, runs before a receive of the message's
    // body that would block (nothing readable): the caller's chance to
    // submit what it queued, which would otherwise wait for a body still on
    // its way.
    Result<Message> receive(const std::function<void()>& before_blocking = {});
    // True when another message's header is already here, whole: buffered,
    // or readable on the socket. (Part of one does not count: the reader
    // would block on the rest.)
    bool more_waiting() const;

private:
    Status fill();
    void take(std::size_t n);
    std::size_t buffered() const { return end_ - begin_; }

    int fd_;
    std::vector<std::uint8_t> buf_;
    std::size_t begin_ = 0, end_ = 0;
    // The message being received: header decoded, `done_` body bytes in.
    std::optional<Message> current_;
    std::array<std::uint8_t, 8> prefix_{};  // a Write's offset
    std::size_t done_ = 0;
};
// As receive, for handshake messages: a header announcing a body longer than
// `max_body` fails (EMSGSIZE) before any of the body is read.
Result<Message> receive_small(int fd, std::uint32_t max_body);
Status send(int fd, Type type, std::uint16_t flags, std::uint64_t seq, std::span<const std::uint8_t> body);
// A Write: the offset prefix and the data from the caller's buffer, one CRC over both.
Status send_write(int fd, std::uint16_t flags, std::uint64_t seq, std::uint64_t offset,
                  std::span<const std::uint8_t> data);

}  // namespace sanagent::replicator::peer
