// What SHOW CLIENTS and SHOW SERVERS list, copied from a session or a server connection on its own thread.
#include "proxy/session/client_info.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <tuple>

#include "proxy/pool/pool.h"
#include "proxy/session/client_session.h"

namespace pgrelay::proxy {

std::pair<std::string, int> local_of(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return {"", 0};
  return endpoint_text(reinterpret_cast<sockaddr*>(&ss), len);
}

std::pair<std::string, int> peer_of(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return {"", 0};
  return endpoint_text(reinterpret_cast<sockaddr*>(&ss), len);
}

std::pair<std::string, int> endpoint_text(const sockaddr* sa, size_t len) {
  char text[INET6_ADDRSTRLEN] = {};
  if (sa->sa_family == AF_INET && len >= sizeof(sockaddr_in)) {
    // Dotted quad by hand: glibc's inet_ntop formats IPv4 through sprintf, 1.7k instructions
    // of every login.
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    const auto* octet = reinterpret_cast<const uint8_t*>(&in->sin_addr);
    char* end = text;
    for (int i = 0; i < 4; ++i) {
      if (i > 0) *end++ = '.';
      end = std::to_chars(end, text + sizeof text, octet[i]).ptr;
    }
    return {std::string(text, end), ntohs(in->sin_port)};
  }
  if (sa->sa_family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
    return {text, ntohs(in6->sin6_port)};
  }
  if (sa->sa_family == AF_UNIX) {
    const auto* un = reinterpret_cast<const sockaddr_un*>(sa);
    const size_t max = len > offsetof(sockaddr_un, sun_path) ? len - offsetof(sockaddr_un, sun_path) : 0;
    return {std::string(un->sun_path, strnlen(un->sun_path, std::min(max, sizeof un->sun_path))), 0};
  }
  return {"", 0};
}

std::chrono::system_clock::time_point to_system(std::chrono::steady_clock::time_point t) {
  const auto age = std::chrono::steady_clock::now() - t;
  return std::chrono::system_clock::now() - std::chrono::duration_cast<std::chrono::system_clock::duration>(age);
}

ServerInfo describe_server(const ServerConnection& conn, const Pool& pool, std::string state, uint64_t link,
                           bool close_needed) {
  ServerInfo s;
  s.database = pool.key().database;
  s.user = pool.key().user;
  s.state = std::move(state);
  s.addr = conn.target().host;
  s.port = conn.target().port;
  // socket() has no const overload; reading the local address changes nothing.
  std::tie(s.local_addr, s.local_port) = local_of(const_cast<ServerConnection&>(conn).socket().native_handle());
  s.connect_time = to_system(conn.created_at);
  s.request_time = to_system(conn.idle_since);
  s.remote_pid = conn.backend_key().pid;
  s.link = link;
  s.close_needed = close_needed;
  if (auto it = conn.parameters().find("application_name"); it != conn.parameters().end()) s.application_name = it->second;
  if (TlsStream* tls = conn.transport().tls()) s.tls = tls_connection_info(tls->ssl());
  return s;
}

ClientInfo ClientSession::info() const {
  ClientInfo i;
  i.id = id_;
  i.user = user_;
  i.database = database_;
  const bool console = !user_.empty() && config_->is_admin_database(database_);
  i.state = meter_.is_waiting() ? "waiting" : (pool_ || console) ? "active" : "login";
  std::tie(i.addr, i.port) = peer_of(const_cast<StreamSocket&>(client_.socket()).native_handle());
  std::tie(i.local_addr, i.local_port) = local_of(const_cast<StreamSocket&>(client_.socket()).native_handle());
  if (client_.tls()) i.tls = tls_connection_info(client_.tls()->ssl());
  i.connect_time = meter_.connect_time();
  i.request_time = meter_.request_time();
  if (meter_.is_waiting()) i.wait = std::chrono::steady_clock::now() - meter_.waiting_since();
  if (client_params_) {
    if (auto it = client_params_->find("application_name"); it != client_params_->end()) i.application_name = it->second;
  }
  if (server_ && pool_) i.server = describe_server(*server_, *pool_, "active", id_, pool_->close_needed(*server_));
  return i;
}

}  // namespace pgrelay::proxy
