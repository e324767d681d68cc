// A pool of server connections for one (database, user): hand-out, hand-back, waiting clients.
//
// Thread-safe: sessions on any worker call acquire()/release(); a short mutex guards the idle
// list and the queue of waiting clients. Connections are opened and closed outside the lock.
// A waiting client is woken on its own executor (asio::post), never from the releaser's thread.
#pragma once

#include <deque>
#include <map>
#include <optional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "conf/config.h"
#include "protocol/result.h"
#include "proxy/asio.h"
#include "proxy/server_connection.h"
#include "proxy/startup_params.h"

namespace pgrelay::proxy {

struct PoolSettings {
  ServerTarget target;
  int pool_size = 20;
  int min_pool_size = 0;
  int max_prepared_statements = 200;
  conf::Duration server_lifetime{0};   // 0: no limit
  conf::Duration server_login_retry{5'000};   // how long a client waits out an unreachable server
  int reserve_pool_size = 0;                  // extra connections for clients waiting too long
  conf::Duration server_check_delay{30'000};  // idle longer than this: run server_check_query first
  std::string server_check_query = "select 1";   // "" = no check
  conf::Duration reserve_pool_timeout{5'000};   // fixed for a connection's life: a change replaces the pool
  conf::PoolMode mode = conf::PoolMode::kSession;
  std::string reset_query = "DISCARD ALL";
  conf::Duration connect_timeout{15'000};
  uint32_t max_message_size = 256u << 20;

  bool operator==(const PoolSettings&) const = default;
};

struct PoolStats {
  int open = 0;        // connected or connecting
  int idle = 0;
  int waiting = 0;     // clients waiting for a connection
};

class Pool {
 public:
  Pool(std::string name, PoolSettings settings);
  ~Pool();

  const std::string& name() const { return name_; }     // "database/user"
  const PoolSettings& settings() const { return settings_; }

  // A connection for a session running on `ex` (awaited there): an idle one that is still
  // alive (preferring one already on this worker), a new one while under pool_size, or the
  // next one released, waiting up to `wait_timeout` (0: forever). A server that cannot be
  // reached (or is starting up) is retried with backoff for up to server_login_retry within
  // that wait, so clients ride out a PostgreSQL restart. Errors: the login failure (08006
  // when unreachable), 53300 when the wait times out.
  awaitable<Result<std::unique_ptr<ServerConnection>>> acquire(asio::any_io_executor ex, conf::Duration wait_timeout);

  // Takes a connection back. One that is not at_rest() (or any, once retired) is closed and
  // its slot given to a waiting client. The caller has already run the reset query.
  void release(std::unique_ptr<ServerConnection> conn);

  // Closes idle connections idle since before `cutoff` (server_idle_timeout), keeping
  // min_pool_size open.
  void close_idle_before(ServerConnection::Clock::time_point cutoff);

  // Opens connections until min_pool_size are open (awaited on `ex`; they move to the
  // worker that takes them). Stops at the first failure; the next call tries again.
  awaitable<void> keep_minimum(asio::any_io_executor ex);

  // The configuration behind this pool changed: close idle connections now and every
  // connection as it comes back.
  void retire();

  PoolStats stats() const;

  // The ParameterStatus set to greet a transaction-mode client with, without taking a
  // connection: what a fresh server connection of this pool reported (remembered from the
  // first login), with the client's startup settings applied. Clients with the same startup
  // settings share one map (most connections of an application look alike); nullptr until a
  // connection has been opened.
  std::shared_ptr<const ParamMap> greeting_for(const std::vector<Setting>& startup);
  void remember_server_parameters(const ParamMap& params);

 private:
  struct Waiter;
  void give_slot_to_waiter_locked();
  bool past_lifetime(const ServerConnection& c) const;
  // An idle connection about to be handed out on `ex`: still open and quiet, moved to `ex`'s
  // worker, and, when idle longer than server_check_delay, answering server_check_query.
  awaitable<bool> ready_for_use(ServerConnection& conn, asio::any_io_executor ex);
  // Opens a connection in a slot already counted in open_; on failure gives the slot back
  // (to a waiting client if any) and logs why.
  awaitable<Result<std::unique_ptr<ServerConnection>>> open_in_slot(asio::any_io_executor ex);

  const std::string name_;
  const PoolSettings settings_;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<ServerConnection>> idle_;   // back = most recently used
  std::deque<std::shared_ptr<Waiter>> waiters_;
  int open_ = 0;
  bool retired_ = false;
  std::optional<ParamMap> server_parameters_;
  std::unordered_map<std::string, std::shared_ptr<const ParamMap>> greetings_;   // by startup settings
};

}  // namespace pgrelay::proxy
