// The fault-injecting TCP relay: one poll() loop over the listener and every connection pair.
#include "fault_relay.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <list>
#include <stdexcept>
#include <string>
#include <vector>

namespace pgrelay::it {
namespace {

constexpr size_t kChunk = 64 * 1024;

void set_nonblocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

sockaddr_in loopback(int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

// One relayed connection. Each direction holds at most one chunk read but not yet written: a
// side is read only when the other can take it, so a slow reader slows its writer (no buffering).
struct Pair {
  int down = -1;                 // pgrelay's side
  int up = -1;                   // the server's side; -1 for a connection accepted while blackholed
  bool silent = false;           // blackholed: read and drop, forever
  std::string to_up, to_down;    // read, not yet written
  bool closed = false;
};

void close_pair(Pair& p, bool reset = false) {
  if (reset) {
    const linger abort{1, 0};   // close with RST, as a host that crashed answers
    if (p.down >= 0) ::setsockopt(p.down, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
  }
  if (p.down >= 0) ::close(p.down);
  if (p.up >= 0) ::close(p.up);
  p.down = p.up = -1;
  p.closed = true;
}

// Moves bytes from `from` into `pending` (when empty); false on EOF or an error.
bool pull(int from, std::string& pending, bool drop) {
  char buf[kChunk];
  ssize_t n = ::read(from, buf, sizeof buf);
  if (n == 0) return false;
  if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
  if (!drop) pending.assign(buf, size_t(n));
  return true;
}

// Writes what it can of `pending` to `to`; false on an error.
bool push(int to, std::string& pending) {
  ssize_t n = ::send(to, pending.data(), pending.size(), MSG_NOSIGNAL);
  if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
  pending.erase(0, size_t(n));
  return true;
}

}  // namespace

FaultRelay::FaultRelay(int target_port) : target_port_(target_port) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a = loopback(0);
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listen_fd_, 512) != 0) {
    ::close(listen_fd_);
    throw std::runtime_error("FaultRelay: cannot listen");
  }
  socklen_t len = sizeof a;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
  port_ = ntohs(a.sin_port);
  set_nonblocking(listen_fd_);
  if (::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) throw std::runtime_error("FaultRelay: pipe");
  thread_ = std::thread([this] { loop(); });
}

FaultRelay::~FaultRelay() {
  stopping_ = true;
  (void)!::write(wake_[1], "x", 1);
  thread_.join();
  ::close(listen_fd_);
  ::close(wake_[0]);
  ::close(wake_[1]);
}

void FaultRelay::arm(std::string marker, bool silence) {
  std::lock_guard lock(reset_mutex_);
  reset_marker_ = std::move(marker);
  silence_ = silence;
  reset_done_ = false;
}

void FaultRelay::loop() {
  std::list<Pair> pairs;
  while (!stopping_) {
    const bool black = blackholed_;
    std::vector<pollfd> fds{{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    std::vector<std::pair<Pair*, bool>> owners;   // fds[2 + i] is owners[i]: its pair, and whether it is the up side
    for (Pair& p : pairs) {
      if (black && !p.silent) p.silent = true;    // a partition takes the open connections too
      short down_ev = 0, up_ev = 0;
      if (p.silent) {
        down_ev = POLLIN;
        up_ev = POLLIN;
      } else {
        if (p.to_up.empty()) down_ev |= POLLIN; else up_ev |= POLLOUT;
        if (p.to_down.empty()) up_ev |= POLLIN; else down_ev |= POLLOUT;
      }
      fds.push_back({p.down, down_ev, 0});
      owners.emplace_back(&p, false);
      if (p.up >= 0) {
        fds.push_back({p.up, up_ev, 0});
        owners.emplace_back(&p, true);
      }
    }
    if (::poll(fds.data(), fds.size(), 100) < 0) continue;
    if (fds[0].revents & POLLIN) {
      for (;;) {
        int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (c < 0) break;
        Pair p;
        p.down = c;
        if (blackholed_) {
          p.silent = true;
        } else {
          p.up = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
          sockaddr_in a = loopback(target_port_);
          if (::connect(p.up, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
            close_pair(p);
            continue;
          }
          int one = 1;
          ::setsockopt(p.up, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          ::setsockopt(p.down, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          set_nonblocking(p.up);
        }
        pairs.push_back(std::move(p));
      }
    }
    for (size_t i = 0; i < owners.size(); ++i) {
      auto [p, is_up] = owners[i];
      const short re = fds[2 + i].revents;
      if (p->closed || re == 0) continue;
      int self = is_up ? p->up : p->down;
      int other = is_up ? p->down : p->up;
      std::string& inbound = is_up ? p->to_down : p->to_up;    // what this side sends
      std::string& outbound = is_up ? p->to_up : p->to_down;   // what waits to go to this side
      bool ok = true;
      if (re & POLLOUT && !p->silent) ok = push(self, outbound);
      if (ok && re & (POLLIN | POLLHUP | POLLERR)) {
        ok = pull(self, inbound, p->silent);
        if (ok && !is_up && !inbound.empty()) {
          std::lock_guard lock(reset_mutex_);
          if (!reset_marker_.empty() && inbound.find(reset_marker_) != std::string::npos) {
            reset_marker_.clear();
            reset_done_ = true;
            if (!silence_) {
              close_pair(*p, /*reset=*/true);
              continue;
            }
            p->silent = true;   // this one connection: read and drop from now on
            inbound.clear();
          }
        }
        if (ok && !inbound.empty() && other >= 0 && !p->silent) ok = push(other, inbound);
      }
      if (!ok && p->silent && is_up) {
        ::close(p->up);   // the server's side closing is not heard through a partition
        p->up = -1;
      } else if (!ok) {
        close_pair(*p);
      }
    }
    pairs.remove_if([](const Pair& p) { return p.closed; });
    connections_ = int(pairs.size());
  }
  for (Pair& p : pairs) close_pair(p);
}

}  // namespace pgrelay::it
