// The query cache's logical replication listener (docs/cache.md, "Writes that bypass pgrelay"):
// per database that sets replication = true, a pgoutput stream from PostgreSQL whose every
// committed transaction bumps the generations of the tables it changed (TRUNCATE included), in
// memory and, with the Redis tier, in Redis: so writes made on the server without pgrelay make
// cached answers stale within the replication lag.
//
// Two libpq connections per listener (net/pq_connection.h), as the database entry's user: the
// stream (replication=database: CREATE_REPLICATION_SLOT, START_REPLICATION, CopyBoth) and a
// plain one for the catalog (the publication; each relation's inheritance ancestors, since a
// write to a partition or child changes what reads of its parents return).
//
// While the stream is not up (before the first START_REPLICATION, and from a lost stream to the
// next), writes on the server go unseen: the database's cache window is open (QueryCache::
// open_window: no answer served, none stored) and it is invalidated as the stream resumes.
//
// All listeners run on one worker's event loop; ReplicationListeners (made and stopped by the
// App) owns them. Their ReplicationStatus is read from any thread (console, metrics).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cache/pgoutput.h"
#include "conf/config.h"
#include "proxy/base/stats.h"
#include "proxy/net/asio.h"
#include "proxy/net/pq_connection.h"
#include "proxy/net/tls_context.h"

namespace pgrelay::proxy {

class QueryCache;
class SharedTier;

// One listener's state and counters (docs/metrics.md). Thread-safe.
struct ReplicationStatus {
  ReplicationStatus(std::string database, std::string slot, std::string publication, bool persistent)
      : database(std::move(database)), slot(std::move(slot)), publication(std::move(publication)), persistent(persistent) {}
  const std::string database;      // as clients name it
  const std::string slot;
  const std::string publication;
  const bool persistent;
  std::atomic<bool> streaming{false};
  std::atomic<uint64_t> commits{0};          // transactions applied (each bumps its tables)
  std::atomic<uint64_t> table_bumps{0};      // tables bumped, ancestors included
  std::atomic<uint64_t> truncates{0};        // TRUNCATE messages among them
  std::atomic<uint64_t> stream_losses{0};    // streams that ended or broke (each invalidates the database)
  std::atomic<uint64_t> connect_failures{0}; // attempts that did not reach streaming
  std::atomic<uint64_t> confirmed_lsn{0};    // what the slot was told it may forget
  std::atomic<uint64_t> server_wal_end{0};   // the server's end of WAL, as last heard
  std::atomic<int64_t> last_apply_lag_us{0};
  LatencyHistogram apply_lag_seconds;        // a commit on the server .. its bump here
  // Bytes of WAL the slot holds back for this listener: the server's end of WAL less what was confirmed.
  uint64_t lag_bytes() const {
    const uint64_t end = server_wal_end.load(std::memory_order_relaxed), done = confirmed_lsn.load(std::memory_order_relaxed);
    return end > done ? end - done : 0;
  }
  std::string state() const;
  std::string last_error() const;
  void set_state(std::string state, std::string error);

 private:
  mutable std::mutex mu_;
  std::string state_ = "starting";
  std::string last_error_;
};

class ReplicationListener {
 public:
  // `entry` is the database's configuration as the process started; `shared` null without a Redis tier.
  ReplicationListener(asio::any_io_executor ex, const conf::Config& config, const conf::DatabaseEntry& entry, QueryCache& cache,
                      SharedTier* shared, std::shared_ptr<ReplicationStatus> status);
  ~ReplicationListener();

  // Streams, reconnecting with backoff, until stop(). On the listener's executor.
  awaitable<void> run();
  // Ends run() soon (its connections close: a temporary slot goes with them). On the executor.
  void stop();
  bool stopped() const { return stopped_.load(); }

  static std::string default_slot_name(const conf::DatabaseEntry& entry, int index);

 private:
  // One connection's life: setup, then stream until it breaks. Returns why it ended.
  awaitable<Error> stream_once();
  awaitable<Result<void>> ensure_publication();
  awaitable<Result<void>> create_slot();
  awaitable<Result<void>> handle(const std::vector<std::byte>& copy_data);
  awaitable<Result<void>> apply(const cache::PgoutputTransaction::Committed& committed);
  awaitable<Result<void>> learn_ancestors(cache::Oid relation);
  awaitable<Result<void>> send_status(bool reply_requested);
  std::vector<std::pair<std::string, std::string>> connect_params(bool replication) const;
  void lose_stream(const std::string& why);

  asio::any_io_executor ex_;
  const conf::DatabaseEntry entry_;
  const conf::ServerTlsSettings tls_;
  QueryCache& cache_;
  SharedTier* shared_;
  std::shared_ptr<ReplicationStatus> status_;
  const std::string server_database_;   // QueryCache::server_database(host, port, dbname)
  const uint64_t database_id_;
  PqConnection stream_;
  PqConnection catalog_;
  cache::PgoutputTransaction transaction_;
  std::map<cache::Oid, std::vector<cache::Oid>> ancestors_;   // itself and its inheritance ancestors
  cache::Lsn confirmed_ = 0;
  std::chrono::steady_clock::time_point next_status_{};
  std::string last_logged_;   // the last reconnect reason logged as a warning
  bool window_open_ = false;
  bool stopping_ = false;
  std::atomic<bool> stopped_{false};
  asio::steady_timer backoff_timer_;
};

// Every listener of the process, on one worker's loop. Made by the App at start.
class ReplicationListeners {
 public:
  // Starts a listener for each database of `config` with replication = true (none: empty).
  ReplicationListeners(asio::any_io_executor ex, const conf::Config& config, QueryCache& cache, SslCtxPtr server_tls);
  ~ReplicationListeners();
  bool empty() const { return listeners_.empty(); }
  const std::vector<std::shared_ptr<ReplicationStatus>>& statuses() const { return statuses_; }
  // Stops every listener and waits (on the caller's thread, up to `timeout`) until their
  // connections are closed.
  void stop(std::chrono::milliseconds timeout);
  // Every listener's run() has returned: they may be destroyed (their executor still exists).
  bool stopped() const;

 private:
  asio::any_io_executor ex_;
  std::unique_ptr<SharedTier> shared_;
  std::vector<std::unique_ptr<ReplicationListener>> listeners_;
  std::vector<std::shared_ptr<ReplicationStatus>> statuses_;
};

}  // namespace pgrelay::proxy
