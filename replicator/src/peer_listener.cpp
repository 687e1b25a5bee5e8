#include "sanagent/replicator/peer_listener.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <condition_variable>
#include <cstdio>
#include <system_error>

#include "sanagent/replicator/handshake_deadline.h"
#include "sanagent/replicator/net.h"
#include "sanagent/replicator/peer_io.h"
#include "sanagent/replicator/thread_name.h"

namespace sanagent::replicator {

namespace {

// A HELLO is a few hundred bytes.
constexpr std::uint32_t kMaxFirstBody = 4096;

// The address part of a peer's socket address (not the port): the key that
// handshakes from one host are counted by.
// One host's key: an IPv4 address, or an IPv6 /64 (one host may hold a
// whole /64, and pick a new address in it for every connection).
std::string source_key(const sockaddr_storage& from) {
    if (from.ss_family == AF_INET) {
        const auto& a = reinterpret_cast<const sockaddr_in&>(from).sin_addr;
        return std::string(reinterpret_cast<const char*>(&a), sizeof a);
    }
    if (from.ss_family == AF_INET6) {
        const auto& a = reinterpret_cast<const sockaddr_in6&>(from).sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(&a)) return std::string(reinterpret_cast<const char*>(a.s6_addr) + 12, 4);
        return std::string(reinterpret_cast<const char*>(a.s6_addr), 8);
    }
    return {};
}

// A name from an unauthenticated peer, safe to put in a log line.
std::string printable(const std::string& name) {
    std::string out;
    for (unsigned char c : name) out += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
    return out;
}

}  // namespace

PeerListener::PeerListener(std::string address)
    : address_(std::move(address)),
      drops_("sanrepd: peer listener " + address_ + ": dropping a connection: ", std::chrono::seconds(10)) {}

PeerListener::~PeerListener() {
    stop();
}

void PeerListener::add(PeerTarget& target) {
    std::lock_guard lock(mu_);
    targets_[target.volume()] = &target;
}

void PeerListener::remove(const std::string& volume) {
    std::unique_lock lock(mu_);
    auto it = targets_.find(volume);
    if (it == targets_.end()) return;
    PeerTarget* target = it->second;
    // Out of the map first: a connection naming it from now on is refused.
    targets_.erase(it);
    for (auto& c : connections_)
        if (c.volume == volume && c.fd.valid()) ::shutdown(c.fd.get(), SHUT_RDWR);
    lock.unlock();
    target->stop();
    lock.lock();
    released_.wait(lock, [&] {
        return std::none_of(connections_.begin(), connections_.end(),
                            [&](const Connection& c) { return c.volume == volume && !c.done; });
    });
}

std::size_t PeerListener::volumes() const {
    std::lock_guard lock(mu_);
    return targets_.size();
}

Status PeerListener::listen() {
    auto fd = tcp_listen(address_);
    if (!fd) return fd.error().context("peer listener " + address_);
    bound_unacked_time(fd->get());  // inherited by every session accepted here
    listen_fd_ = std::move(*fd);
    return {};
}

void PeerListener::start() {
    accept_thread_ = std::thread([this] {
        name_thread("peer-listen");
        accept_loop();
    });
}

void PeerListener::stop() {
    stopping_ = true;
    if (accept_thread_.joinable()) accept_thread_.join();
    {
        std::lock_guard lock(mu_);
        for (auto& c : connections_)
            if (c.fd.valid()) ::shutdown(c.fd.get(), SHUT_RDWR);
    }
    // Only this thread adds or removes connections now (the accept thread
    // is gone), so the list is walked without the lock.
    for (auto& c : connections_)
        if (c.thread.joinable()) c.thread.join();
    connections_.clear();
}

void PeerListener::reap() {
    std::lock_guard lock(mu_);
    for (auto it = connections_.begin(); it != connections_.end();) {
        if (!it->done) {
            ++it;
            continue;
        }
        it->thread.join();  // it only returns after setting done
        it = connections_.erase(it);
    }
}

void PeerListener::accept_loop() {
    // The poll tick bounds how long stop() waits and paces the reaping.
    while (!stopping_) {
        pollfd pfd{listen_fd_.get(), POLLIN, 0};
        int n = ::poll(&pfd, 1, 200);
        reap();
        if (n <= 0) continue;
        sockaddr_storage from{};
        UniqueFd fd = accept_client(listen_fd_.get(), "peer", &from);
        if (!fd.valid()) continue;
        std::string source = source_key(from);
        std::unique_lock lock(mu_);
        // Past a limit (per source, or all slots: two hosts stalling would
        // take them) the oldest handshake that has not proved itself goes,
        // not the newcomer: a real primary proves the key within a round
        // trip or two, so it is never the oldest unproven one for long,
        // while a stalled client would hold its slot for the whole bound.
        // Per source too, or a host sharing the primary's source (an IPv6
        // /64) could keep it out. Bounded: cut-off connections end at their
        // next read, and while kMaxHandshakes of them are still ending,
        // newcomers are closed.
        std::string dropped;
        auto cut_off_oldest = [&](auto&& among, const std::string& full) {
            auto oldest = std::find_if(connections_.begin(), connections_.end(), [&](const Connection& o) {
                return o.handshaking && !o.evicted && !o.proven && among(o);
            });
            if (evicted_ >= kMaxHandshakes || oldest == connections_.end()) {
                dropped = full + ": closing the new connection";
                return false;
            }
            oldest->evicted = true;
            ++evicted_;
            ::shutdown(oldest->fd.get(), SHUT_RDWR);
            dropped = full + ": cutting off the oldest for a new connection";
            return true;
        };
        bool admitted = true;
        if (std::count_if(connections_.begin(), connections_.end(), [&](const Connection& o) {
                return o.handshaking && !o.evicted && o.source == source;
            }) >= static_cast<long>(kMaxHandshakesPerSource))
            admitted = cut_off_oldest([&](const Connection& o) { return o.source == source; },
                                      std::to_string(kMaxHandshakesPerSource) +
                                          " handshakes from its address are already running");
        if (admitted && handshaking_ - evicted_ >= kMaxHandshakes)
            admitted = cut_off_oldest([](const Connection&) { return true; },
                                      "all " + std::to_string(kMaxHandshakes) + " handshake slots are taken");
        if (!admitted) {
            lock.unlock();
            drops_(dropped);
            continue;  // closed here: the peer retries later
        }
        ++handshaking_;
        auto& c = connections_.emplace_back();
        c.fd = std::move(fd);
        c.source = std::move(source);
        try {
            c.thread = std::thread([this, &c] {
                name_thread("peer-session");
                run(c);
            });
        } catch (const std::exception& e) {
            // Out of threads (or memory): this connection is dropped, the daemon goes on.
            --handshaking_;
            connections_.pop_back();
            dropped = std::string("no thread for it: ") + e.what();
        }
        lock.unlock();
        if (!dropped.empty()) drops_(dropped);  // not under mu_: stderr may block
    }
}

void PeerListener::proven(Connection& c) {
    std::lock_guard lock(mu_);
    c.proven = true;
}

bool PeerListener::evicted(const Connection& c) const {
    std::lock_guard lock(mu_);
    return c.evicted;
}

void PeerListener::handshake_over(Connection& c) {
    std::lock_guard lock(mu_);
    if (!c.handshaking) return;
    c.handshaking = false;
    --handshaking_;
    if (c.evicted) --evicted_;
}

void PeerListener::run(Connection& c) {
    const int fd = c.fd.get();
    set_recv_timeout(fd, 5000);
    HandshakeDeadline deadline(fd, kPeerHandshakeBound);
    auto cut_off = [&](const std::string& why) {
        return deadline.expired() ? "no complete handshake within " + std::to_string(kPeerHandshakeBound.count()) + " s"
               : evicted(c)       ? std::string("cut off for a newer connection (every handshake slot was taken)")
                                  : why;
    };
    auto refuse = [fd](const std::string& why) {
        (void)peer::send(fd, peer::Type::Refuse, 0, 0, peer::encode_refuse(why));
    };
    [&] {
        // The first message names the volume. Its header is checked before
        // any body is read: nobody makes us wait for (or allocate) a body we
        // would refuse.
        std::array<std::uint8_t, peer::kHeaderSize> hb;
        if (auto st = read_full(fd, hb); !st) {
            drops_("no first message: " + cut_off(st.error().message));
            return;
        }
        auto h = peer::decode_header(hb);
        if (!h) {
            if (peer::old_framing(hb))  // told in its own framing, so that it can show why
                (void)write_full(fd, peer::encode_old_refuse("protocol version " + std::to_string(peer::kVersion) +
                                                             " needed: upgrade both nodes"));
            drops_(h.error().message);
            return;
        }
        if (h->type == peer::Type::Auth && h->length == peer::kAuthNonceSize) {
            refuse("protocol version " + std::to_string(peer::kVersion) +
                   " needed: this AUTH names no volume (an older sanrepd); upgrade both nodes");
            drops_("a primary of an older protocol (AUTH without a volume name)");
            return;
        }
        const bool auth_ok =
            h->type == peer::Type::Auth && h->length >= peer::kMinAuthChallenge && h->length <= peer::kMaxAuthChallenge;
        const bool hello_ok = h->type == peer::Type::Hello && h->length <= kMaxFirstBody;
        if (!auth_ok && !hello_ok) {
            refuse("expected AUTH or HELLO");
            drops_("expected AUTH or HELLO first, got message type " + std::to_string(static_cast<int>(h->type)));
            return;
        }
        std::vector<std::uint8_t> body(h->length);
        if (auto st = read_full(fd, body); !st) {
            drops_("reading the first message: " + cut_off(st.error().message));
            return;
        }
        if (auto st = peer::check_body(*h, body); !st) {
            drops_(st.error().message);
            return;
        }
        PeerOpening opening;
        std::string volume;
        if (auth_ok) {
            auto a = peer::decode_auth_challenge(body);
            if (!a) {
                drops_(a.error().message);
                return;
            }
            volume = a->volume;
            opening.auth = std::move(*a);
        } else {
            auto hello = peer::decode_hello(body);
            if (!hello) {
                refuse(hello.error().message);  // a version mismatch, say
                drops_(hello.error().message);
                return;
            }
            volume = hello->volume;
            opening.hello = std::move(*hello);
        }
        PeerTarget* target = nullptr;
        {
            // Marked as its user under the lock: remove() waits for it.
            std::lock_guard lock(mu_);
            if (auto it = targets_.find(volume); it != targets_.end()) {
                target = it->second;
                c.volume = volume;
            }
        }
        if (!target) {
            refuse("no volume " + volume + " on this node");
            drops_("no volume " + printable(volume) + " on this node");
            return;
        }
        // Cut off by the deadline or for a newcomer: no verdict on the data.
        opening.expired = [&] { return deadline.expired() || evicted(c); };
        opening.proven = [&] { proven(c); };
        opening.handshake_done = [&] {
            deadline.disarm();
            handshake_over(c);
        };
        target->serve(fd, opening);
    }();
    deadline.disarm();
    handshake_over(c);
    std::lock_guard lock(mu_);
    c.fd.reset();  // under the lock: stop() and remove() shut down by number
    c.done = true;
    released_.notify_all();
}

}  // namespace sanagent::replicator
