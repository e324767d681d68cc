// The takeover channel: a Unix-domain SOCK_SEQPACKET connection between a running pgrelay and the
// one replacing it (online restart), carrying whole messages with descriptors (SCM_RIGHTS).
//
// Messages are a type byte and a body (takeover_giver.h and App::take_over() say which way each
// goes and what its body holds). The socket file is takeover_socket (docs/deployment.md); only a
// process of the same user (or root) may connect (SO_PEERCRED). Each channel is used from one
// executor's thread only.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <boost/asio/posix/stream_descriptor.hpp>

#include "protocol/bytes.h"
#include "protocol/result.h"
#include "proxy/net/asio.h"

namespace pgrelay::proxy::takeover {

inline constexpr uint8_t kVersion = 1;
// A message must fit the socket's send buffer whole (net.core.wmem_default, 208 KiB on most
// systems): a client whose state is larger is not handed over.
inline constexpr size_t kMaxMessage = 160 * 1024;
inline constexpr size_t kMaxDescriptors = 250;   // below the kernel's SCM_MAX_FD (253)

// Message types.
inline constexpr char kHello = 'H';      // new -> old: version, pid
inline constexpr char kListeners = 'L';  // old -> new: the listening sockets (attached), one kind byte each
inline constexpr char kReady = 'R';      // new -> old: accepting on them
inline constexpr char kClient = 'C';     // old -> new: sequence number, HandoffState; the client socket attached
inline constexpr char kAdopted = 'A';    // new -> old: sequence number, 1 adopted / 0 refused
inline constexpr char kCancel = 'X';     // new -> old: a CancelRequest's key (pid, secret) it does not know
inline constexpr char kListenerTcp = 't', kListenerUnix = 'u';

// A descriptor received (or to be sent) that closes itself unless released.
class OwnedFd {
 public:
  OwnedFd() = default;
  explicit OwnedFd(int fd) : fd_(fd) {}
  OwnedFd(OwnedFd&& o) noexcept : fd_(o.release()) {}
  OwnedFd& operator=(OwnedFd&& o) noexcept;
  ~OwnedFd();
  int get() const { return fd_; }
  int release() { int fd = fd_; fd_ = -1; return fd; }

 private:
  int fd_ = -1;
};

struct Message {
  char type = 0;
  protocol::Buffer body;
  std::vector<OwnedFd> fds;
};

class Channel {
 public:
  // Takes `fd`, a connected non-blocking SOCK_SEQPACKET socket.
  Channel(asio::any_io_executor ex, int fd);

  // Connects to the takeover socket at `path`. Error names the path.
  static Result<Channel> connect(asio::any_io_executor ex, const std::string& path);

  // Sends one message, waiting while the socket is full. The descriptors are duplicated into
  // the message; the caller keeps its own.
  awaitable<Result<void>> send(char type, protocol::Bytes body, std::span<const int> fds = {});
  // The next message; an error when the peer has gone ("closed") or sent something malformed.
  awaitable<Result<Message>> receive();
  void close();
  bool is_open() const { return sd_.is_open(); }

 private:
  asio::posix::stream_descriptor sd_;
  protocol::Buffer packet_;   // receive(): one message, reused
};

// Listens on `path` for takeover connections (mode 0600; a stale file nobody listens on is
// replaced). Returns the listening descriptor. Error names the path.
Result<OwnedFd> listen(const std::string& path);
// Accepts one connection on `listener`, waiting with `waiter`; refuses (closes) peers of another
// user. Error: the listener failed or was closed.
awaitable<Result<Channel>> accept(asio::posix::stream_descriptor& waiter);

// Little helpers for the bodies.
void put_u64(protocol::Buffer& out, uint64_t v);
bool get_u64(protocol::Reader& r, uint64_t& v);

}  // namespace pgrelay::proxy::takeover
