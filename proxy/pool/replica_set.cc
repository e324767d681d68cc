// A database's read replicas: the lag and health poller, and the choice of a replica for a read.
#include "proxy/pool/replica_set.h"

#include "proxy/base/log.h"

namespace pgrelay::proxy {

std::string ReplicaState::state() const {
  if (in_rotation.load(std::memory_order_relaxed)) return "active";
  return healthy.load(std::memory_order_relaxed) ? "lagging" : "down";
}

std::string ReplicaState::last_error() const {
  std::lock_guard lock(mu_);
  return last_error_;
}

void ReplicaState::set_last_error(std::string e) {
  std::lock_guard lock(mu_);
  last_error_ = std::move(e);
}

// What the poller holds between checks: its pools and its own connections.
struct ReplicaSet::Poller {
  asio::any_io_executor ex;
  std::shared_ptr<Pool> primary_pool;
  std::vector<std::shared_ptr<Pool>> replica_pools;
  std::unique_ptr<ServerConnection> primary;
  std::vector<std::unique_ptr<ServerConnection>> replicas;
  std::string primary_error;
};

ReplicaSet::ReplicaSet(std::string database, conf::ReplicaSettings settings)
    : database_(std::move(database)), settings_(std::move(settings)) {
  for (const auto& e : settings_.replicas) {
    replicas_.push_back(std::make_unique<ReplicaState>());
    replicas_.back()->endpoint = e;
  }
}

ReplicaSet::~ReplicaSet() = default;

std::optional<size_t> ReplicaSet::choose(Lsn min_lsn) const {
  std::optional<size_t> best;
  int best_load = 0;
  // Ties go round: one client reading at a time still spreads its reads.
  const size_t n = replicas_.size();
  const size_t start = n ? size_t(next_.fetch_add(1, std::memory_order_relaxed) % n) : 0;
  for (size_t k = 0; k < n; ++k) {
    const size_t i = (start + k) % n;
    const ReplicaState& r = *replicas_[i];
    if (!r.in_rotation.load(std::memory_order_acquire)) continue;
    if (min_lsn != 0 && r.replay_lsn.load(std::memory_order_acquire) < min_lsn) continue;
    const int load = r.outstanding.load(std::memory_order_relaxed);
    if (!best || load < best_load) {
      best = i;
      best_load = load;
    }
  }
  if (best && settings_.primary_reads && primary_outstanding_.load(std::memory_order_relaxed) < best_load) return std::nullopt;
  return best;
}

void ReplicaSet::start(const asio::any_io_executor& ex, std::shared_ptr<Pool> primary,
                       std::vector<std::shared_ptr<Pool>> replicas) {
  if (started_.exchange(true)) return;
  auto p = std::make_shared<Poller>();
  p->ex = ex;
  p->primary_pool = std::move(primary);
  p->replica_pools = std::move(replicas);
  p->replicas.resize(p->replica_pools.size());
  auto self = shared_from_this();
  asio::co_spawn(ex, poll(self, p), [db = database_](std::exception_ptr e) {
    log_exception(e, "replicas of " + db + ": the lag poller failed");
  });
}

void ReplicaSet::stop() {
  stopped_.store(true);
  // Nobody measures their lag any more: sessions still holding this set read from the primary.
  for (auto& r : replicas_) r->in_rotation.store(false, std::memory_order_release);
}

awaitable<void> ReplicaSet::poll(std::shared_ptr<ReplicaSet> self, std::shared_ptr<Poller> p) {
  asio::steady_timer timer(p->ex);
  // A check that takes longer than this (a stalled server) fails: its connection is closed.
  const auto deadline = std::max<std::chrono::steady_clock::duration>(std::chrono::seconds(1), 4 * settings_.check_interval);
  while (!stopped_.load()) {
    const auto began = std::chrono::steady_clock::now();
    std::optional<Lsn> primary_lsn;
    if (!p->primary) {
      auto opened = co_await p->primary_pool->open_unpooled(p->ex);
      if (opened.ok()) {
        p->primary = std::move(*opened);
      } else if (p->primary_error != opened.error().message) {
        p->primary_error = opened.error().message;
        log_warning("replicas of ", database_, ": cannot reach the primary for lag checks: ", p->primary_error);
      }
    }
    if (p->primary) {
      const uint64_t seq = positions_.begin_sample();
      ServerConnection* conn = p->primary.get();
      Watchdog watchdog(p->ex, deadline, [conn] { conn->close(); });
      auto rows = co_await conn->query_rows("select pg_current_wal_insert_lsn()::text", {});
      std::optional<Lsn> lsn;
      if (rows.ok() && rows->size() == 1 && !rows->front().empty() && rows->front()[0]) lsn = parse_lsn(*rows->front()[0]);
      if (lsn) {
        positions_.record(seq, *lsn, std::chrono::steady_clock::now());
        primary_lsn = lsn;
        p->primary_error.clear();
      } else {
        // A primary that became a standby (failover) refuses pg_current_wal_insert_lsn().
        const std::string why = rows.ok() ? "unexpected answer to pg_current_wal_insert_lsn()" : rows.error().message;
        if (p->primary_error != why) log_warning("replicas of ", database_, ": primary position check failed: ", why);
        p->primary_error = why;
        p->primary.reset();
      }
    }
    for (size_t i = 0; i < replicas_.size() && !stopped_.load(); ++i) co_await check_replica(*p, i, primary_lsn);
    timer.expires_at(began + settings_.check_interval);
    error_code ec;
    co_await timer.async_wait(ec_awaitable(ec));
  }
}

awaitable<void> ReplicaSet::check_replica(Poller& p, size_t i, std::optional<Lsn> primary) {
  ReplicaState& r = *replicas_[i];
  auto& conn = p.replicas[i];
  if (!conn) {
    auto opened = co_await p.replica_pools[i]->open_unpooled(p.ex);
    if (!opened.ok()) {
      mark(i, false, false, opened.error().message);
      co_return;
    }
    conn = std::move(*opened);
  }
  const auto deadline = std::max<std::chrono::steady_clock::duration>(std::chrono::seconds(1), 4 * settings_.check_interval);
  ServerConnection* c = conn.get();
  Watchdog watchdog(p.ex, deadline, [c] { c->close(); });
  auto rows = co_await c->query_rows("select pg_is_in_recovery()::text, pg_last_wal_replay_lsn()::text", {});
  watchdog.disarm();
  if (!rows.ok() || rows->size() != 1 || rows->front().size() != 2) {
    conn.reset();
    mark(i, false, false, rows.ok() ? "unexpected answer to the replica check" : rows.error().message);
    co_return;
  }
  const auto& row = rows->front();
  if (!row[0] || *row[0] != "true") {
    mark(i, false, false, "not in recovery (promoted?): it takes no reads");
    co_return;
  }
  const std::optional<Lsn> replay = row[1] ? parse_lsn(*row[1]) : std::nullopt;
  if (!replay) {
    mark(i, false, false, "no replay position (pg_last_wal_replay_lsn() is NULL)");
    co_return;
  }
  r.replay_lsn.store(*replay, std::memory_order_release);
  if (!primary) {
    // Without the primary's position no lag is known: keep the replica as it was judged last.
    mark(i, true, r.in_rotation.load(), {});
    co_return;
  }
  const uint64_t bytes = *primary > *replay ? *primary - *replay : 0;
  const auto behind = positions_.time_behind(*replay, std::chrono::steady_clock::now());
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(behind);
  r.lag_bytes.store(bytes, std::memory_order_relaxed);
  r.lag_ms.store(ms.count(), std::memory_order_relaxed);
  const bool within = settings_.max_lag_time.count() > 0 ? ms <= settings_.max_lag_time : bytes <= settings_.max_lag_bytes;
  mark(i, true, within, within ? std::string() : "replay lag over max_replica_lag");
}

void ReplicaSet::mark(size_t i, bool healthy, bool within, std::string error) {
  ReplicaState& r = *replicas_[i];
  const bool in = healthy && within && !stopped_.load();
  const bool was = r.in_rotation.exchange(in, std::memory_order_acq_rel);
  r.healthy.store(healthy, std::memory_order_relaxed);
  if (!healthy) r.check_failures.fetch_add(1, std::memory_order_relaxed);
  const std::string where = r.endpoint.host + ":" + std::to_string(r.endpoint.port);
  if (was && !in) {
    r.rotation_exits.fetch_add(1, std::memory_order_relaxed);
    log_warning("replica ", where, " of ", database_, " leaves rotation: ", error);
  } else if (!was && in) {
    log_info("replica ", where, " of ", database_, " is in rotation");
  }
  if (!error.empty()) r.set_last_error(std::move(error));
}

}  // namespace pgrelay::proxy
