// A database whose primary is one of several hosts (host = "a,b", docs/replicas.md): which host
// is the primary now, found by asking each pg_is_in_recovery(), so pgrelay follows a promotion
// done by the operator's HA tool without a restart. pgrelay never promotes anything itself.
//
// One PrimaryFinder per client-visible database with a multi-host primary, made by PoolManager
// and shared by that database's primary pools: a pool opens each new connection to target()
// (pool.h, PoolSettings::primary). The check runs on one executor (PoolManager's), every
// replica_check_interval, on connections of its own outside the pools: it asks the current host
// pg_is_in_recovery(); when that fails or says true, it asks the others in order and moves to the
// first that answers false, then calls `moved` (PoolManager closes the connections to the old
// host as they come back: Pool::reconnect). Sessions read current() through an atomic.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "conf/config.h"
#include "proxy/net/asio.h"
#include "proxy/net/tls_context.h"
#include "proxy/server/server_connection.h"

namespace pgrelay::proxy {

class PrimaryFinder : public std::enable_shared_from_this<PrimaryFinder> {
 public:
  // How the check logs in: the primary pool's target (its host is replaced per host), timeouts
  // and TLS.
  struct Login {
    ServerTarget base;
    conf::Duration connect_timeout{15'000};
    uint32_t max_message_size = 256u << 20;
    conf::ServerTlsMode tls_mode = conf::ServerTlsMode::kDisable;
    const TlsContexts* tls = nullptr;   // outlives the finder; null: no TLS
    conf::TcpSettings tcp;              // keepalives, as the pool's connections
  };

  PrimaryFinder(std::string database, std::vector<conf::ReplicaEndpoint> hosts, conf::Duration interval);
  ~PrimaryFinder();

  const std::string& database() const { return database_; }
  const std::vector<conf::ReplicaEndpoint>& hosts() const { return hosts_; }
  conf::Duration interval() const { return interval_; }
  // The host taken as the primary now (an index into hosts()): the first until a check says
  // otherwise. Any thread.
  size_t current() const { return current_.load(std::memory_order_acquire); }
  std::string current_name() const;   // "host:port"
  // `base` aimed at the current primary. Any thread.
  ServerTarget target(const ServerTarget& base) const;
  uint64_t moves() const { return moves_.load(std::memory_order_relaxed); }   // times the primary moved
  uint64_t failed_checks() const { return failed_checks_.load(std::memory_order_relaxed); }

  // Starts the check on `ex` (once; later calls do nothing). `moved` runs on `ex` after each move.
  void start(const asio::any_io_executor& ex, Login login, std::function<void(const std::string& now)> moved);
  // A reload replaced it, or shutdown: the check ends at its next wake-up.
  void stop();

 private:
  struct Checker;
  awaitable<void> run(std::shared_ptr<PrimaryFinder> self, std::shared_ptr<Checker> c);
  // Host `i`'s answer to pg_is_in_recovery(); nullopt when it cannot be asked (its connection
  // is dropped and opened again next time).
  awaitable<std::optional<bool>> in_recovery(Checker& c, size_t i);

  const std::string database_;
  const std::vector<conf::ReplicaEndpoint> hosts_;
  const conf::Duration interval_;
  std::atomic<size_t> current_{0};
  std::atomic<uint64_t> moves_{0};
  std::atomic<uint64_t> failed_checks_{0};
  std::atomic<bool> started_{false};
  std::atomic<bool> stopped_{false};
};

}  // namespace pgrelay::proxy
