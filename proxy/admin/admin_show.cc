// SHOW in the admin console: pools, stats, databases, users, config, lists, mem, version, state,
// and pgrelay's own SIZING and WAITS. Column names and order follow PgBouncer 1.18 where it has
// the command (docs/admin.md lists them).
#include <algorithm>
#include <map>
#include <set>

#include "conf/runtime_settings.h"
#include "protocol/sqlstate.h"
#include "proxy/admin/admin_console.h"
#include "proxy/base/buffer_pool.h"

namespace pgrelay::proxy {
namespace {

using T = ResultSet::Type;
using Clock = std::chrono::steady_clock;

int64_t micros(Clock::duration d) { return std::chrono::duration_cast<std::chrono::microseconds>(d).count(); }

int64_t unix_seconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

// The longest a client of `pool` has waited, at the PAUSE gate or in the pool itself.
Clock::duration max_wait(const Pool& pool, const Pool::Gauges& g, const DatabaseGate& gate) {
  const auto at_gate = gate.waiting(pool.key().database, pool.key().user);
  const Clock::duration gated = at_gate.clients > 0 ? Clock::now() - at_gate.oldest : Clock::duration{};
  return std::max(g.max_wait, gated);
}

}  // namespace

awaitable<Result<ResultSet>> AdminConsole::show(const std::string& subject) {
  if (subject == "CLIENTS") {
    auto rs = co_await show_clients();
    co_return rs;
  }
  if (subject == "SERVERS") {
    auto rs = co_await show_servers();
    co_return rs;
  }
  if (subject == "HELP") co_return show_help();
  if (subject == "POOLS") co_return show_pools();
  if (subject == "STATS") co_return show_stats(true, true);
  if (subject == "STATS_TOTALS") co_return show_stats(true, false);
  if (subject == "STATS_AVERAGES") co_return show_stats(false, true);
  if (subject == "DATABASES") co_return show_databases();
  if (subject == "USERS") co_return show_users();
  if (subject == "CONFIG") co_return show_config();
  if (subject == "LISTS") co_return show_lists();
  if (subject == "MEM") co_return show_mem();
  if (subject == "STATE") co_return show_state();
  if (subject == "SIZING") co_return show_sizing();
  if (subject == "WAITS") co_return show_waits();
  if (subject == "LISTENERS") co_return show_listeners();
  if (subject == "QUERIES") co_return show_queries();
  if (subject == "SLOW") co_return show_slow();
  if (subject == "N_PLUS_ONE") co_return show_n_plus_one();
  if (subject == "CACHE") co_return show_cache();
  if (subject == "CACHES") co_return show_caches();
  if (subject == "REPLICATION") co_return show_replication();
  if (subject == "REPLICAS") co_return show_replicas();
  if (subject == "VERSION") {
    ResultSet rs({{"version", T::kText}});
    rs.row().text(std::string("pgrelay ") + PGRELAY_VERSION);
    co_return rs;
  }
  co_return Error{sqlstate::kSyntaxError, "unknown SHOW subject \"" + subject + "\""};
}

ResultSet AdminConsole::show_help() const {
  ResultSet rs({{"command", T::kText}, {"description", T::kText}});
  for (const auto& c : command_help()) rs.row().text(std::string(c.syntax)).text(std::string(c.help));
  for (const auto& s : show_subjects()) rs.row().text("SHOW " + std::string(s.name)).text(std::string(s.help));
  return rs;
}

ResultSet AdminConsole::show_pools() const {
  ResultSet rs({{"database", T::kText}, {"user", T::kText}, {"cl_active", T::kInt}, {"cl_waiting", T::kInt},
                {"cl_active_cancel_req", T::kInt}, {"cl_waiting_cancel_req", T::kInt}, {"sv_active", T::kInt},
                {"sv_active_cancel", T::kInt}, {"sv_being_canceled", T::kInt}, {"sv_idle", T::kInt},
                {"sv_used", T::kInt}, {"sv_tested", T::kInt}, {"sv_login", T::kInt}, {"maxwait", T::kInt},
                {"maxwait_us", T::kInt}, {"pool_mode", T::kText}});
  for (const auto& pool : services_.pools.pools()) {
    const Pool::Gauges g = pool->gauges();
    const int waiting = g.waiting + services_.gate.waiting(pool->key().database, pool->key().user).clients;
    const int64_t clients = pool->counters().clients.load(std::memory_order_relaxed);
    const int64_t wait_us = micros(max_wait(*pool, g, services_.gate));
    rs.row()
        .text(pool->key().database).text(pool->key().user)
        .num(std::max<int64_t>(0, clients - waiting)).num(int64_t(waiting)).num(int64_t(0)).num(int64_t(0))
        .num(int64_t(g.active)).num(int64_t(0)).num(int64_t(0))
        .num(int64_t(g.idle - g.used)).num(int64_t(g.used)).num(int64_t(0)).num(int64_t(g.login))
        .num(wait_us / 1'000'000).num(wait_us % 1'000'000)
        .text(conf::to_string(pool->settings().mode));
  }
  return rs;
}

// PgBouncer's per-database statistics: totals since start (times in µs) and the averages of
// the last complete 60 s period (per second; times per transaction, query or wait).
ResultSet AdminConsole::show_stats(bool totals, bool averages) const {
  std::vector<ResultSet::Column> cols{{"database", T::kText}};
  const char* names[] = {"xact_count", "query_count", "bytes_received", "bytes_sent", "xact_time", "query_time",
                         "wait_time"};
  const char* stats_names[] = {"xact_count", "query_count", "received", "sent", "xact_time", "query_time", "wait_time"};
  const char* avg_names[] = {"xact_count", "query_count", "recv", "sent", "xact_time", "query_time", "wait_time"};
  const bool both = totals && averages;   // SHOW STATS: total_* then avg_*
  if (totals)
    for (int i = 0; i < 7; ++i) cols.push_back({both ? std::string("total_") + stats_names[i] : names[i], T::kInt});
  if (averages)
    for (int i = 0; i < 7; ++i) cols.push_back({both ? std::string("avg_") + avg_names[i] : names[i], T::kInt});
  ResultSet rs(std::move(cols));

  struct Sums { PoolTotals total, start, end; double seconds = 0; };
  std::map<std::string, Sums> by_database;
  auto add = [](PoolTotals& to, const PoolTotals& t) {
    to.transactions += t.transactions; to.queries += t.queries; to.received += t.received; to.sent += t.sent;
    to.xact_us += t.xact_us; to.query_us += t.query_us; to.wait_us += t.wait_us; to.waits += t.waits;
  };
  auto& registry = services_.pools.counters();
  for (const auto& c : registry.all()) {
    Sums& s = by_database[c->database];
    add(s.total, c->totals());
    const auto period = registry.last_period(*c);
    add(s.start, period.start);
    add(s.end, period.end);
    s.seconds = period.seconds;
  }
  for (const auto& [database, s] : by_database) {
    auto& row = rs.row().text(database);
    if (totals) {
      const PoolTotals& t = s.total;
      row.num(int64_t(t.transactions)).num(int64_t(t.queries)).num(int64_t(t.received)).num(int64_t(t.sent))
          .num(int64_t(t.xact_us)).num(int64_t(t.query_us)).num(int64_t(t.wait_us));
    }
    if (averages) {
      auto delta = [](uint64_t a, uint64_t b) { return b >= a ? b - a : 0; };
      const double secs = s.seconds > 0 ? s.seconds : 1;
      const uint64_t xacts = delta(s.start.transactions, s.end.transactions);
      const uint64_t queries = delta(s.start.queries, s.end.queries);
      const uint64_t waits = delta(s.start.waits, s.end.waits);
      auto per = [](uint64_t total, uint64_t n) { return int64_t(n == 0 ? 0 : total / n); };
      row.num(int64_t(s.seconds > 0 ? double(xacts) / secs : 0))
          .num(int64_t(s.seconds > 0 ? double(queries) / secs : 0))
          .num(int64_t(s.seconds > 0 ? double(delta(s.start.received, s.end.received)) / secs : 0))
          .num(int64_t(s.seconds > 0 ? double(delta(s.start.sent, s.end.sent)) / secs : 0))
          .num(per(delta(s.start.xact_us, s.end.xact_us), xacts))
          .num(per(delta(s.start.query_us, s.end.query_us), queries))
          .num(per(delta(s.start.wait_us, s.end.wait_us), waits));
    }
  }
  return rs;
}

ResultSet AdminConsole::show_databases() const {
  auto config = services_.config.get();
  ResultSet rs({{"name", T::kText}, {"host", T::kText}, {"port", T::kInt}, {"database", T::kText},
                {"force_user", T::kText}, {"pool_size", T::kInt}, {"min_pool_size", T::kInt},
                {"reserve_pool", T::kInt}, {"pool_mode", T::kText}, {"max_connections", T::kInt},
                {"current_connections", T::kInt}, {"paused", T::kInt}, {"disabled", T::kInt}});
  std::map<std::string, int64_t> open;   // by database, every pool of it
  for (const auto& pool : services_.pools.pools()) open[pool->key().database] += pool->gauges().open;
  auto add = [&](const std::string& name, const conf::DatabaseEntry& e) {
    auto& row = rs.row().text(name).text(e.host).num(int64_t(e.port)).text(e.dbname.empty() ? name : e.dbname);
    if (e.user.empty()) row.null();
    else row.text(e.user);
    row.num(int64_t(e.pool.pool_size)).num(int64_t(e.pool.min_pool_size)).num(int64_t(e.pool.reserve_pool_size))
        .text(conf::to_string(e.pool.pool_mode)).num(int64_t(e.pool.max_db_connections))
        .num(open.count(name) ? open[name] : 0).num(int64_t(services_.gate.paused(name)))
        .num(int64_t(services_.gate.disabled(name)));
  };
  std::set<std::string> listed;
  for (const auto& [name, entry] : config->databases) {
    if (name == "*") continue;
    add(name, entry);
    listed.insert(name);
  }
  // Databases reached through the "*" fallback, as PgBouncer lists its auto-databases.
  if (const conf::DatabaseEntry* fallback = config->find_database("*")) {
    for (const auto& [name, n] : open)
      if (!listed.count(name) && name.find(" (auth_query)") == std::string::npos) {
        add(name, *fallback);
        listed.insert(name);
      }
  }
  for (const std::string& name : config->admin_databases) {
    rs.row().null().null().num(int64_t(config->listen_port)).text(name).null().num(int64_t(0)).num(int64_t(0))
        .num(int64_t(0)).text("statement").num(int64_t(0)).num(int64_t(0)).num(int64_t(0)).num(int64_t(0));
  }
  return rs;
}

ResultSet AdminConsole::show_users() const {
  auto config = services_.config.get();
  std::set<std::string> users;
  for (const auto& [name, secret] : config->auth_users) users.insert(name);
  for (const auto& u : config->admin_users) users.insert(u);
  for (const auto& u : config->stats_users) users.insert(u);
  for (const auto& [name, entry] : config->databases)
    if (!entry.user.empty()) users.insert(entry.user);
  for (const auto& c : services_.pools.counters().all()) users.insert(c->user);
  ResultSet rs({{"name", T::kText}, {"pool_mode", T::kText}});
  for (const auto& u : users) rs.row().text(u).null();   // no per-user pool_mode in pgrelay
  return rs;
}

ResultSet AdminConsole::show_config() const {
  ResultSet rs({{"key", T::kText}, {"value", T::kText}, {"default", T::kText}, {"changeable", T::kText}});
  for (const auto& s : conf::setting_rows(*services_.config.get()))
    rs.row().text(s.key).text(s.value).text(s.default_value).text(s.changeable ? "yes" : "no");
  return rs;
}

ResultSet AdminConsole::show_lists() const {
  auto config = services_.config.get();
  int64_t open = 0, idle = 0, bound = 0;
  const auto pools = services_.pools.pools();
  for (const auto& pool : pools) {
    const auto g = pool->gauges();
    open += g.open;
    idle += g.idle;
    bound += pool->counters().clients.load(std::memory_order_relaxed);
  }
  const int64_t clients = services_.clients.load();
  ResultSet rs({{"list", T::kText}, {"items", T::kInt}});
  rs.row().text("databases").num(int64_t(show_databases().rows().size()));
  rs.row().text("users").num(int64_t(show_users().rows().size()));
  rs.row().text("pools").num(int64_t(pools.size()));
  rs.row().text("free_clients").num(int64_t(0));
  rs.row().text("used_clients").num(clients);
  rs.row().text("login_clients").num(std::max<int64_t>(0, clients - bound));
  rs.row().text("free_servers").num(idle);
  rs.row().text("used_servers").num(open - idle);
  for (const char* dns : {"dns_names", "dns_zones", "dns_queries", "dns_pending"}) rs.row().text(dns).num(int64_t(0));
  return rs;
}

// Bytes held, by kind: fixed-size objects times how many there are, and the read buffers
// sessions borrow. Heap overhead and per-message allocations are not counted.
ResultSet AdminConsole::show_mem() const {
  int64_t servers = 0;
  const auto pools = services_.pools.pools();
  for (const auto& pool : pools) servers += pool->gauges().open;
  const int64_t clients = services_.clients.load();
  const int64_t lent = BufferPool::lent_total.load(std::memory_order_relaxed);
  const int64_t kept = BufferPool::free_total.load(std::memory_order_relaxed);
  ResultSet rs({{"name", T::kText}, {"size", T::kInt}, {"used", T::kInt}, {"free", T::kInt}, {"memtotal", T::kInt}});
  auto add = [&](const char* name, int64_t size, int64_t used, int64_t free) {
    rs.row().text(name).num(size).num(used).num(free).num(size * (used + free));
  };
  add("client_sessions", int64_t(services_.control ? services_.control->client_session_size() : 0), clients, 0);
  add("server_connections", int64_t(sizeof(ServerConnection) + 64 * 1024), servers, 0);   // + its read buffer
  add("pools", int64_t(sizeof(Pool)), int64_t(pools.size()), 0);
  add("read_buffers", int64_t(BufferPool::kBufferSize), lent, kept);
  add("cache", 0, 0, 0);   // the query cache, once there is one
  return rs;
}

ResultSet AdminConsole::show_state() const {
  const bool paused = services_.gate.globally_paused();
  const bool suspended = services_.gate.suspended();
  const bool accepting = services_.control ? services_.control->accepting() : true;
  ResultSet rs({{"key", T::kText}, {"value", T::kText}});
  rs.row().text("active").text(!paused && !suspended && accepting ? "yes" : "no");
  rs.row().text("paused").text(paused ? "yes" : "no");
  rs.row().text("suspended").text(suspended ? "yes" : "no");
  return rs;
}

ResultSet AdminConsole::show_sizing() const {
  ResultSet rs({{"database", T::kText}, {"user", T::kText}, {"pool_mode", T::kText}, {"min_pool_size", T::kInt},
                {"pool_size", T::kInt}, {"max_pool_size", T::kInt}, {"reserve_pool_size", T::kInt},
                {"target", T::kInt}, {"open", T::kInt}, {"active", T::kInt}, {"idle", T::kInt}, {"login", T::kInt},
                {"pinned", T::kInt},
                {"waiting", T::kInt}, {"scale_ups", T::kInt}, {"scale_downs", T::kInt}, {"last_scale_at", T::kText},
                {"last_scale_from", T::kInt}, {"last_scale_to", T::kInt}, {"last_scale_reason", T::kText}});
  for (const auto& pool : services_.pools.pools()) {
    const auto g = pool->gauges();
    const auto st = pool->stats();
    const auto& s = pool->settings();
    auto& row = rs.row().text(pool->key().database).text(pool->key().user).text(conf::to_string(s.mode))
        .num(int64_t(s.min_pool_size)).num(int64_t(s.pool_size)).num(int64_t(s.max_pool_size))
        .num(int64_t(s.reserve_pool_size)).num(int64_t(g.target)).num(int64_t(g.open)).num(int64_t(g.active))
        .num(int64_t(g.idle)).num(int64_t(g.login)).num(int64_t(g.pinned)).num(int64_t(g.waiting)).num(int64_t(st.scale_ups))
        .num(int64_t(st.scale_downs));
    if (st.last_scale.reason.empty()) {
      row.null().null().null().null();
    } else {
      row.text(format_utc(unix_seconds(to_system(st.last_scale.at)))).num(int64_t(st.last_scale.from))
          .num(int64_t(st.last_scale.to)).text(st.last_scale.reason);
    }
  }
  return rs;
}

ResultSet AdminConsole::show_waits() const {
  ResultSet rs({{"database", T::kText}, {"user", T::kText}, {"waits", T::kInt}, {"wait_avg_us", T::kInt},
                {"wait_p50_us", T::kInt}, {"wait_p95_us", T::kInt}, {"wait_p99_us", T::kInt},
                {"queries", T::kInt}, {"query_p50_us", T::kInt}, {"query_p95_us", T::kInt},
                {"query_p99_us", T::kInt}});
  auto us = [](double seconds) { return int64_t(seconds * 1e6); };
  for (const auto& c : services_.pools.counters().all()) {
    const auto w = c->wait_seconds.snapshot();
    const auto q = c->query_seconds.snapshot();
    rs.row().text(c->database).text(c->user).num(int64_t(w.count))
        .num(int64_t(w.count == 0 ? 0 : w.sum_ns / 1000 / w.count))
        .num(us(w.quantile(0.5))).num(us(w.quantile(0.95))).num(us(w.quantile(0.99)))
        .num(int64_t(q.count)).num(us(q.quantile(0.5))).num(us(q.quantile(0.95))).num(us(q.quantile(0.99)));
  }
  return rs;
}

ResultSet AdminConsole::show_listeners() const {
  ResultSet rs({{"database", T::kText}, {"channel", T::kText}, {"clients", T::kInt}});
  for (const auto& hub : services_.listen_hubs.hubs())
    for (const auto& [channel, clients] : hub->channels()) rs.row().text(hub->database()).text(channel).num(int64_t(clients));
  return rs;
}

}  // namespace pgrelay::proxy
