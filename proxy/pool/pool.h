// A pool of server connections for one (database, user): hand-out, hand-back, waiting clients.
//
// Thread-safe: sessions on any worker call acquire()/release(); a short mutex guards the idle
// list and the queue of waiting clients. Connections are opened and closed outside the lock.
// A waiting client is woken on its own executor (asio::post), never from the releaser's thread.
//
// Sizing: a client that finds no idle connection opens one, up to pool_size; when a hand-out
// leaves active/open at or above scale_up_threshold, one spare is opened in the background.
// Clients that waited reserve_pool_timeout may grow the pool to max_pool_size (overflow, kept
// while used) and on to max_pool_size + reserve_pool_size (closed as soon as no one waits).
// scale_down() closes idle connections once peak utilization has stayed below
// scale_down_threshold for scale_down_delay. ConnectionLimits caps all of it across pools.
#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "conf/config.h"
#include "protocol/result.h"
#include "proxy/net/asio.h"
#include "proxy/net/flight.h"
#include "proxy/pool/connection_limits.h"
#include "proxy/server/server_connection.h"
#include "proxy/base/startup_params.h"
#include "proxy/base/stats.h"
#include "proxy/net/tls_context.h"

namespace pgrelay::proxy {

class PrimaryFinder;

struct PoolSettings {
  ServerTarget target;
  // A multi-host primary (primary_finder.h): new connections go to its current host instead of
  // target's. Null: target.
  std::shared_ptr<const PrimaryFinder> primary;
  int pool_size = 20;
  int min_pool_size = 0;
  int max_pool_size = 20;                     // >= pool_size
  double scale_up_threshold = 0.8;
  double scale_down_threshold = 0.3;
  conf::Duration scale_down_delay{30'000};
  ConnectionLimits::Caps caps;                // max_db_connections, max_user_connections
  int max_prepared_statements = 200;
  conf::Duration server_lifetime{0};   // 0: no limit
  conf::Duration server_login_retry{5'000};   // how long a client waits out an unreachable server
  int reserve_pool_size = 0;                  // extra connections for clients waiting too long
  conf::Duration server_check_delay{30'000};  // idle longer than this: run server_check_query first
  std::string server_check_query = "select 1";   // "" = no check
  conf::Duration reserve_pool_timeout{5'000};   // fixed for a connection's life: a change replaces the pool
  conf::PoolMode mode = conf::PoolMode::kSession;
  conf::SessionStatePolicy session_state = conf::SessionStatePolicy::kPin;
  std::string reset_query = "DISCARD ALL";
  conf::ServerTlsMode tls_mode = conf::ServerTlsMode::kDisable;   // server_tls_sslmode of the entry
  conf::Duration connect_timeout{15'000};
  uint32_t max_message_size = 256u << 20;
  conf::TcpSettings tcp;                      // tcp_keepalive and friends, for new connections

  bool operator==(const PoolSettings&) const = default;
};

// The last time a pool changed its size on purpose, and why (for logs and the admin console).
struct ScaleDecision {
  ServerConnection::Clock::time_point at{};
  int from = 0, to = 0;
  std::string reason;
};

struct PoolStats {
  int open = 0;        // connected or connecting
  int idle = 0;
  int waiting = 0;     // clients waiting for a connection
  int pinned = 0;      // connections held by clients pinned by session state (not in `open`)
  uint64_t pins = 0;   // clients pinned so far
  std::map<std::string, uint64_t> pins_by_reason;   // "SET ROLE", "LISTEN", ... (a handful of keys)
  uint64_t refusals = 0;   // statements refused under session_state = "reject"
  uint64_t scale_ups = 0;     // spare connections opened ahead of demand
  uint64_t scale_downs = 0;   // shrink steps
  ScaleDecision last_scale;
};

class Pool : public std::enable_shared_from_this<Pool> {
 public:
  // `limits` (may be null: no cross-pool limits) counts this pool's connections under `key`;
  // `counters` (null: a fresh set) is where its numbers go. `tls` (may be null: no TLS to
  // servers) gives the current server TLS context for each new connection, so a reload's
  // certificates apply without replacing the pool; it outlives the pool.
  Pool(std::string name, PoolSettings settings, std::shared_ptr<ConnectionLimits> limits = nullptr,
       ConnectionLimits::Key key = {}, std::shared_ptr<PoolCounters> counters = nullptr,
       const TlsContexts* tls = nullptr);
  ~Pool();

  const std::string& name() const { return name_; }     // "database/user"
  const PoolSettings& settings() const { return settings_; }
  const ConnectionLimits::Key& key() const { return key_; }
  PoolCounters& counters() const { return *counters_; }
  const std::shared_ptr<PoolCounters>& shared_counters() const { return counters_; }

  // A connection for a session running on `ex` (awaited there): an idle one that is still
  // alive (preferring one already on this worker), a new one while under pool_size, or the
  // next one released, waiting up to `wait_timeout` (0: forever). A server that cannot be
  // reached (or is starting up) is retried with backoff for up to server_login_retry within
  // that wait, so clients ride out a PostgreSQL restart. Errors: the login failure (08006
  // when unreachable), 53300 when the wait times out.
  awaitable<Result<std::unique_ptr<ServerConnection>>> acquire(asio::any_io_executor ex, conf::Duration wait_timeout);

  // A connection with this pool's login and TLS, outside its slots and pool_size (ListenHub's
  // listening connection, one per database). Errors as acquire()'s login failures.
  awaitable<Result<std::unique_ptr<ServerConnection>>> open_unpooled(asio::any_io_executor ex);

  // Hints for pipelining (session/lane.h), true when asked; either may change at once:
  // acquire() would hand out a connection without waiting (an idle one, or room to open one),
  // and clients are waiting for one.
  bool has_idle_or_room() const;
  bool has_waiters() const;

  // Takes a connection back. One that is not at_rest() (or any, once retired) is closed and
  // its slot given to a waiting client. The caller has already run the reset query.
  void release(std::unique_ptr<ServerConnection> conn);

  // Closes idle connections idle since before `cutoff` (server_idle_timeout), keeping
  // min_pool_size open.
  void close_idle_before(ServerConnection::Clock::time_point cutoff);

  // Called about once a second: the utilization rule that shrinks a quiet pool (see the top).
  void scale_down(ServerConnection::Clock::time_point now);

  // Closes one idle connection to make room for a pool starved by ConnectionLimits. False
  // when none is idle.
  bool evict_one_idle();

  // Room was made under ConnectionLimits: waiting clients that can now open a connection do.
  void serve_waiters();

  // A client left session state on its connection (transaction/statement mode) and keeps it:
  // it stops counting against pool_size, so other clients are served; ConnectionLimits still
  // count it. pin_in() when the state is gone (or before release()) counts it back.
  void pin_out(const std::string& reason);
  void pin_in();
  void count_refusal();

  // Opens connections until min_pool_size are open (awaited on `ex`; they move to the
  // worker that takes them). Stops at the first failure; the next call tries again.
  awaitable<void> keep_minimum(asio::any_io_executor ex);

  // The configuration behind this pool changed: close idle connections now and every
  // connection as it comes back.
  void retire();

  PoolStats stats() const;

  // --- pool_admin.cc: for the admin console and the metrics exporter ---
  struct Gauges {
    int open = 0, idle = 0, login = 0, waiting = 0;
    int used = 0;       // idle longer than server_check_delay: checked before the next hand-out
    int active = 0;     // handed out to clients, pinned ones included
    int pinned = 0;     // held by clients pinned by session state (not in `open`)
    int target = 0;     // the size the sizing rules aim at now (see pool_admin.cc)
    ServerConnection::Clock::duration max_wait{};   // the longest-waiting client so far
    bool retired = false;
  };
  Gauges gauges() const;
  // Calls `f` for each idle connection, under the pool's lock (keep it short; no calls back
  // into the pool), with whether it will be closed instead of handed out (close_needed()).
  void visit_idle(const std::function<void(const ServerConnection&, bool close_needed)>& f) const;
  // RECONNECT (and PAUSE, KILL): idle connections close now, busy ones when they come back.
  // `why` names the command in the log.
  void reconnect(std::string_view why);
  // Whether `c` (of this pool) will be closed when it comes back: RECONNECT, reload, lifetime.
  bool close_needed(const ServerConnection& c) const;

  // The ParameterStatus set to greet a transaction-mode client with, without taking a
  // connection: what a fresh server connection of this pool reported (remembered from the
  // first login), with the client's startup settings applied. Clients with the same startup
  // settings share one map (most connections of an application look alike); nullptr until a
  // connection has been opened.
  std::shared_ptr<const ParamMap> greeting_for(const std::vector<Setting>& startup);
  // A server accepted `startup` and, with it applied, reports `params`. Until then a client
  // with startup settings gets no greeting_for() (it logs in on a connection, so a bad
  // setting fails its login with PostgreSQL's own error, as it would without pgrelay).
  void remember_greeting(const std::vector<Setting>& startup, const ParamMap& params);
  // A login found no greeting_for(`startup`). False: it is the first, and asks a server itself
  // (then calls greeting_asked(), remembered or not). True: another login is asking already,
  // and `done` is notified on `ex` when that one has finished: a burst of logins with new
  // settings opens one connection for them, not one each.
  bool greeting_pending(const std::vector<Setting>& startup, const asio::any_io_executor& ex,
                        std::shared_ptr<Event> done);
  void greeting_asked(const std::vector<Setting>& startup);
  void remember_server_parameters(const ParamMap& params);

 private:
  struct Waiter;
  // Under mu_: lets the first waiting client open a connection, if one may be opened. False
  // when none waits or none may.
  bool give_slot_to_waiter_locked();
  // Under mu_, with waiters_ not empty: takes the waiter a connection released on the worker
  // of `here` goes to (FIFO, but one waiting on that worker may go first, kMaxPassOver times).
  std::shared_ptr<Waiter> next_waiter_locked(const asio::any_io_executor& here);
  ServerConnection::Clock::time_point oldest_waiter_locked() const;   // now when none waits
  // Under mu_: counts one more connection if open_ is under `ceiling` and the limits allow;
  // a refusal by the limits is remembered (refused_) and the pool marked starved.
  bool take_slot_locked(int ceiling);
  // Under mu_: one connection is gone (`was_open`: it had logged in). Call slots_freed() once
  // mu_ is released.
  void drop_slot_locked(bool was_open = true);
  void slots_freed();
  // Closes idle connections from the front (oldest) while open_ > target; under mu_.
  void close_oldest_idle_locked(int target, std::vector<std::unique_ptr<ServerConnection>>& out);
  // A hand-out left the pool busy: maybe open a spare connection in the background on `ex`.
  void scale_up_after_handout(asio::any_io_executor ex);
  std::string wait_timeout_message(conf::Duration wait_timeout) const;
  bool past_lifetime(const ServerConnection& c) const;
  // An idle connection about to be handed out on `ex`: still open and quiet, moved to `ex`'s
  // worker, and, when idle longer than server_check_delay, answering server_check_query.
  awaitable<bool> ready_for_use(ServerConnection& conn, asio::any_io_executor ex);
  // Opens a connection in a slot already counted in open_; on failure gives the slot back
  // (to a waiting client if any) and logs why.
  awaitable<Result<std::unique_ptr<ServerConnection>>> open_in_slot(asio::any_io_executor ex);

  const std::string name_;
  const PoolSettings settings_;
  const std::shared_ptr<ConnectionLimits> limits_;
  const ConnectionLimits::Key key_;
  const std::shared_ptr<PoolCounters> counters_;
  const TlsContexts* const tls_;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<ServerConnection>> idle_;   // back = most recently used
  std::deque<std::shared_ptr<Waiter>> waiters_;
  std::atomic<size_t> waiting_{0};                       // waiters_.size(), read without mu_ (has_waiters)
  void note_waiters_locked() { waiting_.store(waiters_.size(), std::memory_order_relaxed); }
  int open_ = 0;
  bool retired_ = false;
  bool prewarming_ = false;                              // a spare connection is being opened
  ConnectionLimits::Refusal refused_ = ConnectionLimits::Refusal::kNone;   // the last refusal
  int peak_active_ = 0;                                  // since the last scale_down() call
  int quiet_peak_ = 0;                                   // peak over the current quiet stretch
  std::optional<ServerConnection::Clock::time_point> quiet_since_;
  uint64_t scale_ups_ = 0, scale_downs_ = 0;
  int logging_in_ = 0;                                   // being opened (counted in open_)
  ServerConnection::Clock::time_point reconnect_before_{};   // RECONNECT: older ones close when back
  int pinned_ = 0;
  uint64_t pins_ = 0, refusals_ = 0;
  std::map<std::string, uint64_t> pins_by_reason_;
  ScaleDecision last_scale_;
  std::optional<ParamMap> server_parameters_;
  std::unordered_map<std::string, std::shared_ptr<const ParamMap>> greetings_;   // by startup settings
  // Greetings a login is asking a server for; the logins waiting for them wait on its flight.
  std::unordered_map<std::string, std::shared_ptr<Flight>> greeting_flights_;
};

}  // namespace pgrelay::proxy
