// A database's read replicas (docs/replicas.md): their health and lag, polled on dedicated
// connections, and the choice of one for a read.
//
// One ReplicaSet per client-visible database with replicas, made by PoolManager and shared by
// every session of it (each (database, user) has its own pools per replica: PoolManager). The
// poller runs on the control thread, started with the database's first pool (PoolManager::
// pool_for; without that executor, by the first session that routes reads): every
// replica_check_interval it asks the primary for pg_current_wal_insert_lsn() and each replica for
// pg_is_in_recovery() and pg_last_wal_replay_lsn(). A replica is in rotation while it answers,
// is in recovery and is within max_replica_lag; out otherwise, and back when it qualifies again.
// Sessions read the state through atomics (no lock on the request path); choose() picks the
// replica in rotation with the fewest reads outstanding.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "conf/config.h"
#include "proxy/net/asio.h"
#include "proxy/pool/pool.h"
#include "proxy/pool/replica_lag.h"

namespace pgrelay::proxy {

// One replica's state: written by the poller, read by sessions, the console and /metrics.
struct ReplicaState {
  conf::ReplicaEndpoint endpoint;
  std::atomic<bool> healthy{false};        // answered the last check as a standby
  std::atomic<bool> in_rotation{false};    // healthy and within max_replica_lag: takes reads
  std::atomic<Lsn> replay_lsn{0};          // as of the last check
  std::atomic<uint64_t> lag_bytes{0};
  std::atomic<int64_t> lag_ms{0};
  std::atomic<int> outstanding{0};         // reads on it now (server connections attached)
  std::atomic<uint64_t> reads{0};          // reads sent to it (transactions or lone requests)
  std::atomic<uint64_t> rotation_exits{0}; // times it left rotation
  std::atomic<uint64_t> check_failures{0};
  std::atomic<uint64_t> reads_moved{0};    // reads it failed (died, recovery conflict) sent to the primary

  std::string state() const;               // "active", "lagging", "down" (SHOW REPLICAS)
  std::string last_error() const;
  void set_last_error(std::string e);

 private:
  mutable std::mutex mu_;
  std::string last_error_;
};

class ReplicaSet : public std::enable_shared_from_this<ReplicaSet> {
 public:
  ReplicaSet(std::string database, conf::ReplicaSettings settings);
  ~ReplicaSet();

  const std::string& database() const { return database_; }
  const conf::ReplicaSettings& settings() const { return settings_; }
  size_t size() const { return replicas_.size(); }
  ReplicaState& replica(size_t i) { return *replicas_[i]; }
  const ReplicaState& replica(size_t i) const { return *replicas_[i]; }
  PrimaryPositions& positions() { return positions_; }
  std::atomic<uint64_t>& primary_reads() { return primary_reads_; }   // reads the primary took with routing on
  std::atomic<int>& primary_outstanding() { return primary_outstanding_; }   // of them, running now

  // The replica for a read that must see everything up to `min_lsn` (0: anything): the one in
  // rotation, replayed to `min_lsn`, with the fewest reads outstanding; nullopt: the primary
  // (none qualifies, or primary_reads is on and the primary has fewer outstanding).
  std::optional<size_t> choose(Lsn min_lsn) const;

  // Starts the poller on `ex` (once; later calls do nothing). It logs in through `primary` and
  // `replicas` (one pool per replica, in order) on connections of its own outside their slots.
  void start(const asio::any_io_executor& ex, std::shared_ptr<Pool> primary, std::vector<std::shared_ptr<Pool>> replicas);
  bool started() const { return started_.load(); }
  // A reload replaced it (or shutdown): the poller ends at its next wake-up, and its replicas
  // leave rotation, so sessions that still hold it read from the primary.
  void stop();

 private:
  struct Poller;
  awaitable<void> poll(std::shared_ptr<ReplicaSet> self, std::shared_ptr<Poller> p);
  // One check of replica `i` against the primary's position `primary` (nullopt: unknown).
  awaitable<void> check_replica(Poller& p, size_t i, std::optional<Lsn> primary);
  void mark(size_t i, bool healthy, bool within, std::string error);

  const std::string database_;
  const conf::ReplicaSettings settings_;
  std::vector<std::unique_ptr<ReplicaState>> replicas_;
  PrimaryPositions positions_;
  std::atomic<uint64_t> primary_reads_{0};
  std::atomic<int> primary_outstanding_{0};
  mutable std::atomic<uint64_t> next_{0};   // choose()'s round for ties
  std::atomic<bool> started_{false};
  std::atomic<bool> stopped_{false};
};

}  // namespace pgrelay::proxy
