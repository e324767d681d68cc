// The numbers pgrelay keeps about itself: plain atomic counters and histograms the data path bumps.
//
// Each pool (database, user) has one PoolCounters, shared by every Pool object that ever served
// that pair (a reload that replaces a pool keeps counting on), and owned by PoolCountersRegistry.
// ProxyStats holds what is not per pool. The admin console (SHOW STATS...) and the metrics
// exporter only read them. Writers use relaxed atomics: a reader may see one counter a step
// ahead of another, never a torn value. No Asio, no Prometheus types here.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgrelay::proxy {

// A latency histogram with fixed bucket bounds in seconds, plus +Inf: by default 100 µs .. 10 s
// (requests to a server); kFastBounds, 1 µs .. 100 ms, for work done in memory.
class LatencyHistogram {
 public:
  using Bounds = std::array<double, 16>;
  static constexpr Bounds kBounds = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                     0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,     10};
  static constexpr Bounds kFastBounds = {0.000001, 0.0000025, 0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025,
                                         0.0005,   0.001,     0.0025,   0.005,   0.01,     0.025,    0.05,   0.1};
  static constexpr size_t kBuckets = kBounds.size() + 1;   // the last one is +Inf

  explicit LatencyHistogram(const Bounds& bounds = kBounds) : bounds_(&bounds) {}
  const Bounds& bounds() const { return *bounds_; }

  void observe(std::chrono::nanoseconds d);

  struct Snapshot {
    std::array<uint64_t, kBuckets> counts{};   // per bucket (not cumulative)
    uint64_t count = 0;
    uint64_t sum_ns = 0;
    const Bounds* bounds = &kBounds;
    double sum_seconds() const { return double(sum_ns) / 1e9; }
    // The q-quantile (0..1) in seconds, interpolated linearly inside its bucket as Prometheus'
    // histogram_quantile() does; 0 with no observations, the highest bound when it falls in +Inf.
    double quantile(double q) const;
  };
  Snapshot snapshot() const;

 private:
  const Bounds* bounds_;
  std::array<std::atomic<uint64_t>, kBuckets> counts_{};
  std::atomic<uint64_t> sum_ns_{0};
};

// Totals of one pool at one moment, for SHOW STATS and its per-second averages.
struct PoolTotals {
  uint64_t transactions = 0, queries = 0, received = 0, sent = 0;
  uint64_t xact_us = 0, query_us = 0, wait_us = 0, waits = 0;
};

// Everything counted for one (database, user) pool. Thread-safe (atomics).
struct PoolCounters {
  PoolCounters(std::string db, std::string u) : database(std::move(db)), user(std::move(u)) {}
  const std::string database;   // as clients name it
  const std::string user;       // the server user

  LatencyHistogram query_seconds;         // request sent .. its ReadyForQuery
  LatencyHistogram transaction_seconds;   // first request of a transaction .. ReadyForQuery 'I'
  LatencyHistogram wait_seconds;          // a client waiting for a server connection (every acquire)
  std::atomic<uint64_t> bytes_received{0};   // from clients, passed to servers
  std::atomic<uint64_t> bytes_sent{0};       // from servers, passed to clients
  std::atomic<uint64_t> servers_opened{0};   // logins that succeeded
  std::atomic<uint64_t> servers_failed{0};   // connection or login attempts that failed
  std::atomic<uint64_t> servers_closed{0};   // opened connections closed since
  std::atomic<int64_t> clients{0};           // client sessions logged in to the pool now

  PoolTotals totals() const;
};

// The PoolCounters of every pool ever created, by (database, user); never forgets one (pools are
// bounded by configuration). Thread-safe.
class PoolCountersRegistry {
 public:
  std::shared_ptr<PoolCounters> get(const std::string& database, const std::string& user);
  std::vector<std::shared_ptr<PoolCounters>> all() const;

  // Called about once a second: every `period` the current totals become the last period's
  // end, for SHOW STATS averages (PgBouncer's stats_period).
  void roll_period(std::chrono::steady_clock::time_point now, std::chrono::seconds period = std::chrono::seconds(60));
  // The last complete period of `pool`: its totals at the start and the end, and its length in
  // seconds (0 before one has completed).
  struct Period { PoolTotals start, end; double seconds = 0; };
  Period last_period(const PoolCounters& pool) const;

 private:
  struct Entry {
    std::shared_ptr<PoolCounters> counters;
    PoolTotals start, end;   // the last complete period
  };
  mutable std::mutex mu_;
  std::map<std::pair<std::string, std::string>, Entry> pools_;
  std::chrono::steady_clock::time_point period_start_ = std::chrono::steady_clock::now();
  double last_seconds_ = 0;
};

// Why a client was turned away before or during login (pgrelay_client_connections_rejected_total).
enum class RejectReason {
  kTooManyConnections, kUnknownDatabase, kAuthFailed, kAuthRejected, kNotAdmin, kDisabled, kProtocol,
  kUnsupported, kServerUnavailable, kOther, kCount
};
const char* to_string(RejectReason r);
// The reason behind a FATAL sent to a client that had not finished logging in.
RejectReason reject_reason_for(std::string_view sqlstate);

// Counters that are not per pool. Thread-safe.
struct ProxyStats {
  std::atomic<uint64_t> clients_accepted{0};
  std::array<std::atomic<uint64_t>, size_t(RejectReason::kCount)> clients_rejected{};
  std::atomic<uint64_t> console_sessions{0};   // admin console logins
  std::atomic<uint64_t> cancel_requests{0};    // CancelRequest packets received
  // Pipelining (session/lane.h): statements given to lanes, sent again after a lane connection
  // failed (or a stray cancel hit them), cancelled while in a lane.
  std::atomic<uint64_t> pipelined{0}, pipeline_retries{0}, pipeline_cancels{0};
  const std::chrono::system_clock::time_point started = std::chrono::system_clock::now();

  void on_login_refused(std::string_view sqlstate) { on_rejected(reject_reason_for(sqlstate)); }
  void on_rejected(RejectReason r) { clients_rejected[size_t(r)].fetch_add(1, std::memory_order_relaxed); }
};

// One client session's view of its pool's counters: timing of its requests and transactions.
// Used only on the session's thread; bind() once the pool is known (login).
class SessionMeter {
 public:
  using Clock = std::chrono::steady_clock;
  SessionMeter() = default;
  ~SessionMeter();
  SessionMeter(const SessionMeter&) = delete;
  SessionMeter& operator=(const SessionMeter&) = delete;

  void bind(std::shared_ptr<PoolCounters> pool);
  // `bytes` of client messages went to the server, carrying `requests` (Query, Sync,
  // FunctionCall) that will each be answered by one ReadyForQuery.
  void on_request(size_t bytes, int requests);
  // One request answered; `tx_status` from its ReadyForQuery.
  void on_ready_for_query(char tx_status);
  // `bytes` of server messages went to the client.
  void on_reply(size_t bytes);

  // While a session waits for a server connection (SHOW CLIENTS state "waiting").
  class Waiting {
   public:
    explicit Waiting(SessionMeter& m) : m_(m) { m_.waiting_since_ = Clock::now(); m_.waiting_ = true; }
    ~Waiting() { m_.waiting_ = false; }
    Waiting(const Waiting&) = delete;
    Waiting& operator=(const Waiting&) = delete;
   private:
    SessionMeter& m_;
  };
  Waiting waiting() { return Waiting(*this); }

  bool is_waiting() const { return waiting_; }
  Clock::time_point waiting_since() const { return waiting_since_; }
  std::chrono::system_clock::time_point connect_time() const { return connect_time_; }
  std::chrono::system_clock::time_point request_time() const { return request_time_; }

 private:
  std::shared_ptr<PoolCounters> pool_;
  int pending_ = 0;          // requests sent, ReadyForQuery not yet seen
  bool in_transaction_ = false;
  Clock::time_point query_start_{}, xact_start_{};
  bool waiting_ = false;
  Clock::time_point waiting_since_{};
  std::chrono::system_clock::time_point connect_time_ = std::chrono::system_clock::now();
  std::chrono::system_clock::time_point request_time_ = connect_time_;
};

}  // namespace pgrelay::proxy
