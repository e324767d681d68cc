// pgrelay's stats structs mapped onto prometheus-cpp families (names and help: docs/metrics.md).
#include "proxy/metrics/metrics_families.h"

#include <chrono>
#include <vector>

namespace pgrelay::proxy {
const prometheus::Histogram::BucketBoundaries& bucket_bounds(const LatencyHistogram::Bounds& bounds) {
  static const prometheus::Histogram::BucketBoundaries request(LatencyHistogram::kBounds.begin(), LatencyHistogram::kBounds.end());
  static const prometheus::Histogram::BucketBoundaries fast(LatencyHistogram::kFastBounds.begin(),
                                                            LatencyHistogram::kFastBounds.end());
  return &bounds == &LatencyHistogram::kFastBounds ? fast : request;
}

prometheus::Family<prometheus::Gauge>& gauge_family(prometheus::Registry& r, const char* name, const char* help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(r);
}

prometheus::Family<prometheus::Counter>& counter_family(prometheus::Registry& r, const char* name, const char* help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(r);
}

void FedCounter::feed(uint64_t now) {
  const uint64_t increase = now >= last ? now - last : now;
  if (increase > 0) counter->Increment(double(increase) * scale);
  last = now;
}

void FedHistogram::feed(const LatencyHistogram::Snapshot& now) {
  if (now.count < last.count) last = {};   // cannot happen with shared counters; be safe
  if (now.count == last.count) return;
  std::vector<double> increments(LatencyHistogram::kBuckets);
  for (size_t i = 0; i < LatencyHistogram::kBuckets; ++i)
    increments[i] = now.counts[i] >= last.counts[i] ? double(now.counts[i] - last.counts[i]) : 0;
  const double sum = now.sum_ns >= last.sum_ns ? double(now.sum_ns - last.sum_ns) / 1e9 : 0;
  histogram->ObserveMultiple(increments, sum);
  last = now;
}

prometheus::Family<prometheus::Gauge>& MetricsFamilies::gauge(const char* name, const char* help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(registry_);
}
prometheus::Family<prometheus::Counter>& MetricsFamilies::counter(const char* name, const char* help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(registry_);
}
prometheus::Family<prometheus::Histogram>& MetricsFamilies::histogram(const char* name, const char* help) {
  return prometheus::BuildHistogram().Name(name).Help(help).Register(registry_);
}

MetricsFamilies::MetricsFamilies(prometheus::Registry& registry)
    : registry_(registry),
      clients_active_(gauge("pgrelay_pool_clients_active", "Clients logged in to the pool and not waiting for a server connection")),
      clients_waiting_(gauge("pgrelay_pool_clients_waiting", "Clients waiting for a server connection (pool full or paused)")),
      servers_active_(gauge("pgrelay_pool_servers_active", "Server connections handed out to clients (pinned ones not included)")),
      servers_idle_(gauge("pgrelay_pool_servers_idle", "Idle server connections ready for use")),
      servers_used_(gauge("pgrelay_pool_servers_used", "Idle server connections due a server_check_query before reuse")),
      servers_login_(gauge("pgrelay_pool_servers_login", "Server connections being opened (connecting or logging in)")),
      servers_pinned_(gauge("pgrelay_pool_servers_pinned", "Server connections pinned to one client by session state (outside pool_size)")),
      target_size_(gauge("pgrelay_pool_target_size", "Server connections the pool's sizing rules aim at now")),
      configured_size_(gauge("pgrelay_pool_configured_size", "The pool's pool_size: its normal ceiling")),
      max_wait_(gauge("pgrelay_pool_max_wait_seconds", "How long the longest-waiting client has been waiting")),
      paused_(gauge("pgrelay_pool_paused", "1 while the pool's database is paused (PAUSE, KILL, SUSPEND)")),
      queries_(counter("pgrelay_queries_total", "Requests answered by a ReadyForQuery (simple queries and Syncs)")),
      transactions_(counter("pgrelay_transactions_total", "Transactions completed (ReadyForQuery back to idle)")),
      received_(counter("pgrelay_client_bytes_received_total", "Bytes received from clients and passed to servers")),
      sent_(counter("pgrelay_client_bytes_sent_total", "Bytes received from servers and passed to clients")),
      opened_(counter("pgrelay_server_connections_opened_total", "Server connections opened and logged in")),
      closed_(counter("pgrelay_server_connections_closed_total", "Server connections closed after they had opened")),
      failed_(counter("pgrelay_server_connections_failed_total", "Server connection attempts that failed to connect or log in")),
      scale_ups_(counter("pgrelay_pool_scale_ups_total", "Spare server connections opened ahead of demand")),
      scale_downs_(counter("pgrelay_pool_scale_downs_total", "Steps in which a quiet pool closed idle connections")),
      pins_(counter("pgrelay_session_pins_total", "Clients pinned to their server connection by session state, by the statement that did it")),
      refusals_(counter("pgrelay_session_state_refusals_total", "Statements refused under session_state = \"reject\"")),
      query_seconds_(histogram("pgrelay_query_duration_seconds", "Time from sending a request to its ReadyForQuery")),
      transaction_seconds_(histogram("pgrelay_transaction_duration_seconds", "Time from a transaction's first request to ReadyForQuery idle")),
      wait_seconds_(histogram("pgrelay_client_wait_seconds", "Time a client waited for a server connection, PAUSE included")),
      clients_connected_(gauge("pgrelay_client_connections", "Client connections open now").Add({})),
      info_(gauge("pgrelay_info", "Always 1; the version label says which pgrelay").Add({{"version", PGRELAY_VERSION}})),
      start_time_(gauge("pgrelay_start_time_seconds", "When this pgrelay started, in seconds since the Unix epoch").Add({})) {
  auto& accepted = counter("pgrelay_client_connections_accepted_total", "Client connections accepted by the listeners");
  accepted_.counter = &accepted.Add({});
  auto& rejected = counter("pgrelay_client_connections_rejected_total",
                           "Client connections refused before or during login, by reason");
  for (size_t i = 0; i < rejected_.size(); ++i) rejected_[i].counter = &rejected.Add({{"reason", to_string(RejectReason(i))}});
  auth_successes_.counter = &counter("pgrelay_client_auth_successes_total", "Clients that authenticated (trust included)").Add({});
  auth_failures_.counter = &counter("pgrelay_client_auth_failures_total",
                                    "Client authentications that failed: wrong password, unknown user, bad exchange").Add({});
  auth_rejected_.counter = &counter("pgrelay_client_auth_rejected_total",
                                    "Clients turned away by an hba rule, a reject method or a missing TLS").Add({});
  console_sessions_.counter = &counter("pgrelay_admin_console_sessions_total", "Admin console logins").Add({});
  cancel_requests_.counter = &counter("pgrelay_cancel_requests_total", "CancelRequest packets received from clients").Add({});
  pipelined_.counter = &counter("pgrelay_pipelined_statements_total", "Statements carried by pipelining's shared lanes").Add({});
  pipeline_retries_.counter = &counter("pgrelay_pipeline_retries_total",
                                       "Pipelined statements sent again: their lane connection failed before they answered").Add({});
  pipeline_cancels_.counter = &counter("pgrelay_pipeline_cancels_total", "Pipelined statements cancelled by their client").Add({});
  info_.Set(1);
}

MetricsFamilies::PoolSeries& MetricsFamilies::series_for(const std::string& database, const std::string& user) {
  auto [it, added] = pools_.try_emplace({database, user});
  PoolSeries& s = it->second;
  if (!added) return s;
  const prometheus::Labels labels{{"database", database}, {"user", user}};
  s.clients_active = &clients_active_.Add(labels);
  s.clients_waiting = &clients_waiting_.Add(labels);
  s.servers_active = &servers_active_.Add(labels);
  s.servers_idle = &servers_idle_.Add(labels);
  s.servers_used = &servers_used_.Add(labels);
  s.servers_login = &servers_login_.Add(labels);
  s.servers_pinned = &servers_pinned_.Add(labels);
  s.refusals.counter = &refusals_.Add(labels);
  s.target_size = &target_size_.Add(labels);
  s.configured_size = &configured_size_.Add(labels);
  s.max_wait = &max_wait_.Add(labels);
  s.paused = &paused_.Add(labels);
  s.queries.counter = &queries_.Add(labels);
  s.transactions.counter = &transactions_.Add(labels);
  s.received.counter = &received_.Add(labels);
  s.sent.counter = &sent_.Add(labels);
  s.opened.counter = &opened_.Add(labels);
  s.closed.counter = &closed_.Add(labels);
  s.failed.counter = &failed_.Add(labels);
  s.scale_ups.counter = &scale_ups_.Add(labels);
  s.scale_downs.counter = &scale_downs_.Add(labels);
  s.query_seconds.histogram = &query_seconds_.Add(labels, bucket_bounds(LatencyHistogram::kBounds));
  s.transaction_seconds.histogram = &transaction_seconds_.Add(labels, bucket_bounds(LatencyHistogram::kBounds));
  s.wait_seconds.histogram = &wait_seconds_.Add(labels, bucket_bounds(LatencyHistogram::kBounds));
  return s;
}

void MetricsFamilies::update(Services& services) {
  using Clock = std::chrono::steady_clock;
  std::map<std::pair<std::string, std::string>, std::shared_ptr<Pool>> live;
  for (auto& pool : services.pools.pools()) live[{pool->key().database, pool->key().user}] = pool;

  for (const auto& c : services.pools.counters().all()) {
    PoolSeries& s = series_for(c->database, c->user);
    const auto query = c->query_seconds.snapshot();
    const auto xact = c->transaction_seconds.snapshot();
    s.queries.feed(query.count);
    s.transactions.feed(xact.count);
    s.received.feed(c->bytes_received.load(std::memory_order_relaxed));
    s.sent.feed(c->bytes_sent.load(std::memory_order_relaxed));
    s.opened.feed(c->servers_opened.load(std::memory_order_relaxed));
    s.closed.feed(c->servers_closed.load(std::memory_order_relaxed));
    s.failed.feed(c->servers_failed.load(std::memory_order_relaxed));
    s.query_seconds.feed(query);
    s.transaction_seconds.feed(xact);
    s.wait_seconds.feed(c->wait_seconds.snapshot());

    auto it = live.find({c->database, c->user});
    if (it == live.end()) {
      for (auto* g : {s.clients_active, s.clients_waiting, s.servers_active, s.servers_idle, s.servers_used,
                      s.servers_login, s.servers_pinned, s.target_size, s.max_wait})
        g->Set(0);
      continue;
    }
    const Pool& pool = *it->second;
    const Pool::Gauges g = pool.gauges();
    const auto at_gate = services.gate.waiting(c->database, c->user);
    const int waiting = g.waiting + at_gate.clients;
    auto longest = g.max_wait;
    if (at_gate.clients > 0) longest = std::max(longest, Clock::now() - at_gate.oldest);
    const int64_t clients = c->clients.load(std::memory_order_relaxed);
    s.clients_active->Set(double(std::max<int64_t>(0, clients - waiting)));
    s.clients_waiting->Set(waiting);
    s.servers_active->Set(g.active - g.pinned);   // within pool_size; pinned ones have their own gauge
    s.servers_idle->Set(g.idle - g.used);
    s.servers_used->Set(g.used);
    s.servers_login->Set(g.login);
    s.servers_pinned->Set(g.pinned);
    s.target_size->Set(g.target);
    s.configured_size->Set(pool.settings().pool_size);
    s.max_wait->Set(std::chrono::duration<double>(longest).count());
    s.paused->Set(services.gate.paused(c->database) ? 1 : 0);
    const PoolStats st = pool.stats();
    s.scale_ups.feed(st.scale_ups);
    s.scale_downs.feed(st.scale_downs);
    s.refusals.feed(st.refusals);
    for (const auto& [reason, n] : st.pins_by_reason) {
      auto [pin, added] = s.pins.try_emplace(reason);
      if (added) pin->second.counter = &pins_.Add({{"database", c->database}, {"user", c->user}, {"reason", reason}});
      pin->second.feed(n);
    }
  }

  clients_connected_.Set(services.clients.load());
  start_time_.Set(double(std::chrono::duration_cast<std::chrono::seconds>(
                             services.stats.started.time_since_epoch()).count()));
  const ProxyStats& p = services.stats;
  accepted_.feed(p.clients_accepted.load(std::memory_order_relaxed));
  for (size_t i = 0; i < rejected_.size(); ++i) rejected_[i].feed(p.clients_rejected[i].load(std::memory_order_relaxed));
  console_sessions_.feed(p.console_sessions.load(std::memory_order_relaxed));
  cancel_requests_.feed(p.cancel_requests.load(std::memory_order_relaxed));
  pipelined_.feed(p.pipelined.load(std::memory_order_relaxed));
  pipeline_retries_.feed(p.pipeline_retries.load(std::memory_order_relaxed));
  pipeline_cancels_.feed(p.pipeline_cancels.load(std::memory_order_relaxed));
  ClientAuthStats& auth = services.auth.stats();
  auth_successes_.feed(auth.successes.load(std::memory_order_relaxed));
  auth_failures_.feed(auth.failures.load(std::memory_order_relaxed));
  auth_rejected_.feed(auth.rejected.load(std::memory_order_relaxed));
}

}  // namespace pgrelay::proxy
