// The takeover channel: whole messages with descriptors over a Unix-domain SOCK_SEQPACKET socket.
#include "proxy/app/takeover_channel.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace pgrelay::proxy::takeover {
namespace {

Error sys_error(const std::string& what) { return Error{"", what + ": " + std::strerror(errno)}; }

bool make_address(const std::string& path, sockaddr_un& addr) {
  std::memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return false;
  std::memcpy(addr.sun_path, path.data(), path.size());
  return true;
}

}  // namespace

OwnedFd& OwnedFd::operator=(OwnedFd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.release();
  }
  return *this;
}

OwnedFd::~OwnedFd() {
  if (fd_ >= 0) ::close(fd_);
}

Channel::Channel(asio::any_io_executor ex, int fd) : sd_(ex, fd) {}

Result<Channel> Channel::connect(asio::any_io_executor ex, const std::string& path) {
  sockaddr_un addr;
  if (!make_address(path, addr)) return Error{"", "takeover socket path too long: " + path};
  OwnedFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (fd.get() < 0) return sys_error("cannot create a socket for " + path);
  // Non-blocking: a Unix-domain connect completes at once, or fails (nobody listens, the backlog is full).
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
    return sys_error("cannot connect to the running pgrelay at " + path);
  return Channel(std::move(ex), fd.release());
}

awaitable<Result<void>> Channel::send(char type, protocol::Bytes body, std::span<const int> fds) {
  if (body.size() + 1 > kMaxMessage) co_return Error{"", "message too large for the takeover channel"};
  if (fds.size() > kMaxDescriptors) co_return Error{"", "too many descriptors for one takeover message"};
  protocol::Buffer packet;
  packet.reserve(body.size() + 1);
  packet.push_back(std::byte(type));
  packet.insert(packet.end(), body.begin(), body.end());
  std::vector<char> control(fds.empty() ? 0 : CMSG_SPACE(sizeof(int) * fds.size()));
  for (;;) {
    iovec iov{packet.data(), packet.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (!fds.empty()) {
      msg.msg_control = control.data();
      msg.msg_controllen = control.size();
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
      std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    ssize_t n = ::sendmsg(sd_.native_handle(), &msg, MSG_NOSIGNAL);
    if (n == ssize_t(packet.size())) co_return Result<void>{};
    if (n >= 0) co_return Error{"", "takeover channel: short send"};
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) co_return sys_error("takeover channel: send");
    error_code ec;
    co_await sd_.async_wait(asio::posix::stream_descriptor::wait_write, ec_awaitable(ec));
    if (ec) co_return Error{"", "takeover channel: " + ec.message()};
  }
}

awaitable<Result<Message>> Channel::receive() {
  protocol::Buffer& packet = packet_;
  packet.resize(kMaxMessage);
  std::vector<char> control(CMSG_SPACE(sizeof(int) * kMaxDescriptors));
  for (;;) {
    iovec iov{packet.data(), packet.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    ssize_t n = ::recvmsg(sd_.native_handle(), &msg, MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      error_code ec;
      co_await sd_.async_wait(asio::posix::stream_descriptor::wait_read, ec_awaitable(ec));
      if (ec) co_return Error{"", "takeover channel: " + ec.message()};
      continue;
    }
    if (n < 0) co_return sys_error("takeover channel: receive");
    Message m;
    // Whatever came, its descriptors are owned (and closed on every error path) from here on.
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
        m.fds.emplace_back(fd);
      }
    }
    if (n == 0) co_return Error{"", "closed"};
    if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) co_return Error{"", "takeover channel: message truncated"};
    m.type = char(packet[0]);
    m.body.assign(packet.begin() + 1, packet.begin() + n);
    co_return m;
  }
}

void Channel::close() {
  error_code ec;
  sd_.close(ec);
}

Result<OwnedFd> listen(const std::string& path) {
  sockaddr_un addr;
  if (!make_address(path, addr)) return Error{"", "takeover_socket: path too long: " + path};
  {
    // Something answers there: another pgrelay (start this one with --takeover to replace it).
    OwnedFd probe(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    if (probe.get() >= 0 && ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0)
      return Error{"", "takeover_socket: another pgrelay listens on " + path + " (use --takeover to replace it)"};
  }
  ::unlink(path.c_str());
  OwnedFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (fd.get() < 0) return sys_error("takeover_socket: " + path);
  const mode_t old_mask = ::umask(0177);   // 0600: the channel hands out client connections
  const int bound = ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  ::umask(old_mask);
  if (bound != 0) return sys_error("takeover_socket: cannot listen on " + path);
  if (::listen(fd.get(), 4) != 0) return sys_error("takeover_socket: cannot listen on " + path);
  return fd;
}

awaitable<Result<Channel>> accept(asio::posix::stream_descriptor& waiter) {
  for (;;) {
    int fd = ::accept4(waiter.native_handle(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED)) {
      error_code ec;
      co_await waiter.async_wait(asio::posix::stream_descriptor::wait_read, ec_awaitable(ec));
      if (ec) co_return Error{"", "takeover socket: " + ec.message()};
      continue;
    }
    if (fd < 0) co_return sys_error("takeover socket: accept");
    OwnedFd owned(fd);
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || (cred.uid != ::geteuid() && cred.uid != 0))
      continue;   // not ours: closed unanswered
    co_return Channel(waiter.get_executor(), owned.release());
  }
}

void put_u64(protocol::Buffer& out, uint64_t v) {
  protocol::Writer w(out);
  w.i32(int32_t(uint32_t(v >> 32)));
  w.i32(int32_t(uint32_t(v)));
}

bool get_u64(protocol::Reader& r, uint64_t& v) {
  int32_t hi = 0, lo = 0;
  if (!r.i32(hi) || !r.i32(lo)) return false;
  v = (uint64_t(uint32_t(hi)) << 32) | uint32_t(lo);
  return true;
}

}  // namespace pgrelay::proxy::takeover
