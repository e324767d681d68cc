// SHOW CLIENTS and SHOW SERVERS: copying each connection's state on the thread that owns it.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <functional>
#include <mutex>

#include "proxy/admin/admin_console.h"

namespace pgrelay::proxy {
namespace {

using T = ResultSet::Type;

int64_t unix_seconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
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

awaitable<ConnectionsSnapshot> snapshot_connections(Services& services) {
  struct Shared {
    std::mutex mu;
    ConnectionsSnapshot snap;
  };
  auto shared = std::make_shared<Shared>();
  if (services.control) {
    ConnectionsSnapshot live = co_await services.control->connections();
    std::lock_guard lock(shared->mu);
    for (ClientInfo& info : live.clients) {
      if (info.server) shared->snap.servers.push_back(*info.server);
      shared->snap.clients.push_back(std::move(info));
    }
    for (ServerInfo& s : live.servers) shared->snap.servers.push_back(std::move(s));   // lanes'
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
