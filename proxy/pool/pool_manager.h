// The pools, one per (database, user), created on first use and replaced when their config changes.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "conf/config.h"
#include "proxy/pool/pool.h"
#include "proxy/pool/primary_finder.h"
#include "proxy/pool/replica_set.h"
#include "proxy/base/stats.h"

namespace pgrelay::proxy {

class PoolManager {
 public:
  // `tls` (may be null) outlives the manager and its pools: new server connections take their
  // TLS context from it.
  explicit PoolManager(const TlsContexts* tls = nullptr) : tls_(tls) {}

  // The pool for clients of `database` (the name they asked for) logging in to the server as
  // `server_user`, under `config`/`entry`. Thread-safe. When the entry's settings differ from
  // the pool's (a reload changed them), the old pool is retired and a new one takes its place.
  std::shared_ptr<Pool> pool_for(const conf::Config& config, const conf::DatabaseEntry& entry,
                                 const std::string& database, const std::string& server_user);

  // The pools of `entry`'s replicas for `server_user`, one per replica in order: sized and
  // limited like the primary's (pool_for), each server counted apart under ConnectionLimits
  // ("database@host:port"). Thread-safe; replaced with the primary's on a settings change.
  std::vector<std::shared_ptr<Pool>> replica_pools_for(const conf::Config& config, const conf::DatabaseEntry& entry,
                                                       const std::string& database, const std::string& server_user);
  // The ReplicaSet of `database` under `entry`'s replica settings: one per database, replaced
  // (the old one's poller stopped) when a reload changes them. Null when it has no replicas.
  std::shared_ptr<ReplicaSet> replica_set_for(const conf::DatabaseEntry& entry, const std::string& database);
  std::vector<std::shared_ptr<ReplicaSet>> replica_sets() const;
  // The PrimaryFinder of `database` when `entry` has a multi-host primary (null otherwise): one
  // per database, replaced (the old one stopped) when a reload changes the hosts or the interval.
  std::shared_ptr<PrimaryFinder> primary_finder_for(const conf::DatabaseEntry& entry, const std::string& database);
  std::vector<std::shared_ptr<PrimaryFinder>> primary_finders() const;
  // Where the primary checks and the replicas' lag pollers run (the control thread's executor):
  // both start with a database's first pool (pool_for). Before it is set (unit tests) a
  // multi-host primary stays on its first host and a poller starts with the first routing client.
  void run_checks_on(asio::any_io_executor ex);

  // Once a second: closes connections idle for longer than `idle_timeout` (0: keep them) and
  // idle ones past server_lifetime, and lets each pool scale down.
  void housekeep(conf::Duration idle_timeout);
  // Shutdown: close every idle connection, and every busy one as it is released; replica
  // pollers stop.
  void retire_all();
  std::vector<std::shared_ptr<Pool>> pools() const;
  // Pools replaced by a reload (or RECONNECT's caller) that still have connections open.
  std::vector<std::shared_ptr<Pool>> retired_pools() const;
  // The counters of every (database, user) pool, kept across pool replacements.
  PoolCountersRegistry& counters() { return counters_; }

 private:
  const TlsContexts* const tls_;
  mutable std::mutex mu_;
  const std::shared_ptr<ConnectionLimits> limits_ = std::make_shared<ConnectionLimits>();
  // A pool for `target` under the pool key (`database`, `user`): pool_for's body. A `replica`'s
  // pool does not wait out an unreachable server (server_login_retry 0): its reads go elsewhere.
  // `primary`: the finder a multi-host primary's pool opens its connections through (null: `target`).
  std::shared_ptr<Pool> pool_at(const conf::Config& config, const conf::DatabaseEntry& entry, ServerTarget target,
                                const std::string& database, const std::string& user, bool replica,
                                std::shared_ptr<const PrimaryFinder> primary = nullptr);
  // The primary of `database` moved: its pools' connections close now or as they come back.
  void primary_moved(const std::string& database, const std::string& now);
  std::map<std::pair<std::string, std::string>, std::shared_ptr<Pool>> pools_;
  std::map<std::string, std::shared_ptr<ReplicaSet>> replica_sets_;   // by client-visible database
  std::map<std::string, std::shared_ptr<PrimaryFinder>> primaries_;   // by client-visible database
  std::optional<asio::any_io_executor> checks_ex_;
  std::vector<std::weak_ptr<Pool>> retired_;
  PoolCountersRegistry counters_;
};

}  // namespace pgrelay::proxy
