// SHOW CLIENTS and SHOW SERVERS: copying each connection's state on the thread that owns it.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <functional>
#include <mutex>

#include "proxy/admin_console.h"
#include "proxy/client_session.h"

namespace pgrelay::proxy {
namespace {

using T = ResultSet::Type;

int64_t unix_seconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

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

// The columns SHOW CLIENTS and SHOW SERVERS share (PgBouncer 1.18).
ResultSet connection_columns() {
  return ResultSet({{"type", T::kText}, {"user", T::kText}, {"database", T::kText}, {"state", T::kText},
                    {"addr", T::kText}, {"port", T::kInt}, {"local_addr", T::kText}, {"local_port", T::kInt},
                    {"connect_time", T::kText}, {"request_time", T::kText}, {"wait", T::kInt},
                    {"wait_us", T::kInt}, {"close_needed", T::kInt}, {"ptr", T::kText}, {"link", T::kText},
                    {"remote_pid", T::kInt}, {"tls", T::kText}, {"application_name", T::kText}});
}

}  // namespace

std::pair<std::string, int> endpoint_text(const sockaddr* sa, size_t len) {
  char text[INET6_ADDRSTRLEN] = {};
  if (sa->sa_family == AF_INET && len >= sizeof(sockaddr_in)) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    ::inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
    return {text, ntohs(in->sin_port)};
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
  std::tie(i.addr, i.port) = peer_of(const_cast<tcp::socket&>(client_.socket()).native_handle());
  std::tie(i.local_addr, i.local_port) = local_of(const_cast<tcp::socket&>(client_.socket()).native_handle());
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

awaitable<ConnectionsSnapshot> snapshot_connections(Services& services) {
  struct Shared {
    std::mutex mu;
    ConnectionsSnapshot snap;
  };
  auto shared = std::make_shared<Shared>();
  if (services.control) {
    // A named visitor: GCC 12 mishandles temporaries in a co_await'ed call's arguments.
    std::function<void(ClientSession&)> visit = [shared](ClientSession& s) {
      ClientInfo info = s.info();
      std::lock_guard lock(shared->mu);
      if (info.server) shared->snap.servers.push_back(*info.server);
      shared->snap.clients.push_back(std::move(info));
    };
    co_await services.control->for_each_session(visit);
  }
  std::lock_guard lock(shared->mu);   // a worker that answered late may still be adding
  ConnectionsSnapshot snap = shared->snap;
  auto add_idle = [&](const std::shared_ptr<Pool>& pool) {
    const auto check_delay = pool->settings().server_check_delay;
    const auto now = std::chrono::steady_clock::now();
    pool->visit_idle([&](const ServerConnection& c, bool close_needed) {
      snap.servers.push_back(describe_server(c, *pool, now - c.idle_since > check_delay ? "used" : "idle", 0, close_needed));
    });
  };
  for (const auto& pool : services.pools.pools()) add_idle(pool);
  for (const auto& pool : services.pools.retired_pools()) add_idle(pool);
  std::sort(snap.clients.begin(), snap.clients.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  co_return snap;
}

awaitable<ResultSet> AdminConsole::show_clients() {
  auto snap = co_await snapshot_connections(services_);
  ResultSet rs = connection_columns();
  for (const ClientInfo& c : snap.clients) {
    const int64_t wait_us = std::chrono::duration_cast<std::chrono::microseconds>(c.wait).count();
    auto& row = rs.row().text("C").text(c.user).text(c.database).text(c.state).text(c.addr).num(int64_t(c.port))
        .text(c.local_addr).num(int64_t(c.local_port)).text(format_utc(unix_seconds(c.connect_time)))
        .text(format_utc(unix_seconds(c.request_time))).num(wait_us / 1'000'000).num(wait_us % 1'000'000)
        .num(int64_t(0)).text(std::to_string(c.id));
    if (c.server) row.text(std::to_string(c.server->remote_pid));
    else row.null();
    row.num(int64_t(0));
    if (c.tls.empty()) row.null();
    else row.text(c.tls);
    row.text(c.application_name);
  }
  co_return rs;
}

awaitable<ResultSet> AdminConsole::show_servers() {
  auto snap = co_await snapshot_connections(services_);
  ResultSet rs = connection_columns();
  for (const ServerInfo& s : snap.servers) {
    auto& row = rs.row().text("S").text(s.user).text(s.database).text(s.state).text(s.addr).num(int64_t(s.port))
        .text(s.local_addr).num(int64_t(s.local_port)).text(format_utc(unix_seconds(s.connect_time)))
        .text(format_utc(unix_seconds(s.request_time))).num(int64_t(0)).num(int64_t(0))
        .num(int64_t(s.close_needed)).text(std::to_string(s.remote_pid));
    if (s.link != 0) row.text(std::to_string(s.link));
    else row.null();
    row.num(int64_t(s.remote_pid));
    if (s.tls.empty()) row.null();
    else row.text(s.tls);
    row.text(s.application_name);
  }
  co_return rs;
}

}  // namespace pgrelay::proxy
