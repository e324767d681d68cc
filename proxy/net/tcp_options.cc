// The TCP options pgrelay sets on every client and server socket over TCP.
#include "proxy/net/tcp_options.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string_view>

#include "proxy/base/log.h"

namespace pgrelay::proxy {
namespace {

bool set(int fd, int level, int name, int value) {
  return ::setsockopt(fd, level, name, &value, sizeof value) == 0;
}

// Keepalive times are whole seconds: a value under one second rounds up to one.
int seconds(conf::Duration d) {
  const auto s = std::chrono::ceil<std::chrono::seconds>(d).count();
  return s > 32767 ? 32767 : int(s);   // Linux's limit for TCP_KEEPIDLE and TCP_KEEPINTVL
}

}  // namespace

void set_tcp_nodelay(int fd) { (void)set(fd, IPPROTO_TCP, TCP_NODELAY, 1); }

const char* set_tcp_keepalive(int fd, const conf::TcpSettings& tcp) {
  if (!set(fd, SOL_SOCKET, SO_KEEPALIVE, tcp.keepalive ? 1 : 0)) return "SO_KEEPALIVE";
  if (tcp.keepalive) {
    if (tcp.keepidle.count() > 0 && !set(fd, IPPROTO_TCP, TCP_KEEPIDLE, seconds(tcp.keepidle))) return "TCP_KEEPIDLE";
    if (tcp.keepintvl.count() > 0 && !set(fd, IPPROTO_TCP, TCP_KEEPINTVL, seconds(tcp.keepintvl))) return "TCP_KEEPINTVL";
    if (tcp.keepcnt > 0 && !set(fd, IPPROTO_TCP, TCP_KEEPCNT, tcp.keepcnt)) return "TCP_KEEPCNT";
  }
  if (tcp.user_timeout.count() > 0 &&
      !set(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, int(std::min<int64_t>(tcp.user_timeout.count(), INT32_MAX))))
    return "TCP_USER_TIMEOUT";
  return nullptr;
}

void warn_tcp_option_refused(const char* option, const char* side) {
  static std::atomic<bool> client_warned{false}, server_warned{false};
  auto& warned = std::string_view(side) == "client" ? client_warned : server_warned;
  if (warned.exchange(true)) return;
  log_warning("the kernel refused ", option, " on a ", side, " socket (", std::strerror(errno),
              "): tcp_keepalive settings do not all apply; said once");
}

}  // namespace pgrelay::proxy
