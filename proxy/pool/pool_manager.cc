// The pools, one per (database, user).
#include "proxy/pool/pool_manager.h"

#include "proxy/base/log.h"

namespace pgrelay::proxy {
namespace {

// The values of a map of shared pointers; the caller holds the manager's lock.
template <class Map>
std::vector<typename Map::mapped_type> values_of(const Map& m) {
  std::vector<typename Map::mapped_type> out;
  out.reserve(m.size());
  for (const auto& [key, value] : m) out.push_back(value);
  return out;
}

// The object in `slots[key]`: kept while `same(it)`, else made anew by `make()` and the old one
// stopped (a reload changed its settings; sessions holding it finish with it).
template <class T, class Same, class Make>
std::shared_ptr<T> kept_or_replaced(std::mutex& mu, std::map<std::string, std::shared_ptr<T>>& slots,
                                    const std::string& key, Same same, Make make) {
  std::shared_ptr<T> old;
  std::shared_ptr<T> current;
  {
    std::lock_guard lock(mu);
    auto& slot = slots[key];
    if (slot && !same(*slot)) old = std::exchange(slot, nullptr);
    if (!slot) slot = make();
    current = slot;
  }
  if (old) old->stop();
  return current;
}

}  // namespace

std::shared_ptr<Pool> PoolManager::pool_for(const conf::Config& config, const conf::DatabaseEntry& entry,
                                            const std::string& database, const std::string& server_user) {
  auto finder = primary_finder_for(entry, database);
  auto pool = pool_at(config, entry,
                      ServerTarget{entry.host, entry.port, entry.dbname.empty() ? database : entry.dbname, server_user,
                                   entry.password},
                      database, server_user, false, finder);
  std::optional<asio::any_io_executor> ex;
  {
    std::lock_guard lock(mu_);
    ex = checks_ex_;
  }
  if (finder && ex) {
    // The first pool's login is the check's (started once).
    const PoolSettings& s = pool->settings();
    finder->start(*ex,
                  PrimaryFinder::Login{.base = s.target,
                                       .connect_timeout = s.connect_timeout,
                                       .max_message_size = s.max_message_size,
                                       .tls_mode = s.tls_mode,
                                       .tls = tls_,
                                       .tcp = s.tcp},
                  [this, database](const std::string& now) { primary_moved(database, now); });
  }
  if (ex && !entry.replicas.replicas.empty() && entry.pool.pool_mode != conf::PoolMode::kSession) {
    // The lag poller starts with the database's first pool, whoever logs in: SHOW REPLICAS and
    // the metrics have the replicas' state before a client routes reads.
    auto set = replica_set_for(entry, database);
    if (!set->started()) set->start(*ex, pool, replica_pools_for(config, entry, database, server_user));
  }
  return pool;
}

std::shared_ptr<PrimaryFinder> PoolManager::primary_finder_for(const conf::DatabaseEntry& entry,
                                                               const std::string& database) {
  if (entry.primary_hosts.size() < 2) return nullptr;
  return kept_or_replaced(
      mu_, primaries_, database,
      [&](const PrimaryFinder& f) { return f.hosts() == entry.primary_hosts && f.interval() == entry.replicas.check_interval; },
      [&] { return std::make_shared<PrimaryFinder>(database, entry.primary_hosts, entry.replicas.check_interval); });
}

std::vector<std::shared_ptr<PrimaryFinder>> PoolManager::primary_finders() const {
  std::lock_guard lock(mu_);
  return values_of(primaries_);
}

void PoolManager::run_checks_on(asio::any_io_executor ex) {
  std::lock_guard lock(mu_);
  checks_ex_ = std::move(ex);
}

void PoolManager::primary_moved(const std::string& database, const std::string& now) {
  for (auto& p : pools())
    if (p->key().database == database) p->reconnect("the primary moved to " + now);
}

std::vector<std::shared_ptr<Pool>> PoolManager::replica_pools_for(const conf::Config& config,
                                                                  const conf::DatabaseEntry& entry,
                                                                  const std::string& database,
                                                                  const std::string& server_user) {
  std::vector<std::shared_ptr<Pool>> out;
  for (const auto& r : entry.replicas.replicas) {
    ServerTarget target{r.host, r.port, entry.dbname.empty() ? database : entry.dbname, server_user, entry.password};
    out.push_back(pool_at(config, entry, std::move(target), database + "@" + r.host + ":" + std::to_string(r.port),
                          server_user, true));
  }
  return out;
}

std::shared_ptr<ReplicaSet> PoolManager::replica_set_for(const conf::DatabaseEntry& entry, const std::string& database) {
  if (entry.replicas.replicas.empty()) return nullptr;
  return kept_or_replaced(
      mu_, replica_sets_, database, [&](const ReplicaSet& s) { return s.settings() == entry.replicas; },
      [&] { return std::make_shared<ReplicaSet>(database, entry.replicas); });
}

std::vector<std::shared_ptr<ReplicaSet>> PoolManager::replica_sets() const {
  std::lock_guard lock(mu_);
  return values_of(replica_sets_);
}

std::shared_ptr<Pool> PoolManager::pool_at(const conf::Config& config, const conf::DatabaseEntry& entry,
                                           ServerTarget target, const std::string& database,
                                           const std::string& server_user, bool replica,
                                           std::shared_ptr<const PrimaryFinder> primary) {
  PoolSettings settings;
  settings.target = std::move(target);
  settings.primary = std::move(primary);
  settings.pool_size = entry.pool.pool_size;
  settings.min_pool_size = entry.pool.min_pool_size;
  settings.max_pool_size = entry.pool.effective_max_pool_size();
  settings.scale_up_threshold = entry.pool.scale_up_threshold;
  settings.scale_down_threshold = entry.pool.scale_down_threshold;
  settings.scale_down_delay = entry.pool.scale_down_delay;
  settings.caps = {entry.pool.max_db_connections, config.max_user_connections};
  settings.reserve_pool_size = entry.pool.reserve_pool_size;
  settings.reserve_pool_timeout = config.reserve_pool_timeout;
  settings.max_prepared_statements = config.max_prepared_statements;
  settings.server_lifetime = config.server_lifetime;
  settings.server_login_retry = replica ? conf::Duration{0} : config.server_login_retry;
  settings.server_check_delay = config.server_check_delay;
  settings.server_check_query = config.server_check_query;
  settings.mode = entry.pool.pool_mode;
  settings.session_state = entry.pool.session_state;
  settings.reset_query = entry.pool.server_reset_query;
  settings.tls_mode = entry.server_tls_sslmode;
  settings.connect_timeout = config.server_connect_timeout;
  settings.max_message_size = config.max_message_size;
  settings.tcp = config.tcp;

  std::shared_ptr<Pool> retired;
  std::shared_ptr<Pool> pool;
  {
    std::lock_guard lock(mu_);
    auto& slot = pools_[{database, server_user}];
    if (slot && !(slot->settings() == settings)) {
      retired = std::move(slot);
      slot.reset();
      std::erase_if(retired_, [](const std::weak_ptr<Pool>& p) { return p.expired(); });
      retired_.push_back(retired);
    }
    if (!slot) {
      ConnectionLimits::Key key{database, server_user};
      slot = std::make_shared<Pool>(database + "/" + server_user, settings, limits_, key,
                                    counters_.get(database, server_user), tls_);
      limits_->add_pool(slot, key);
    }
    pool = slot;
  }
  if (retired) {
    log_info("pool ", retired->name(), ": configuration changed, replacing its server connections");
    retired->retire();
  }
  return pool;
}

void PoolManager::housekeep(conf::Duration idle_timeout) {
  const auto now = ServerConnection::Clock::now();
  auto cutoff = idle_timeout.count() > 0 ? now - idle_timeout : ServerConnection::Clock::time_point::min();
  for (auto& p : pools()) {
    p->close_idle_before(cutoff);
    p->scale_down(now);
  }
}

void PoolManager::retire_all() {
  for (auto& p : pools()) p->retire();
  for (auto& set : replica_sets()) set->stop();
  for (auto& finder : primary_finders()) finder->stop();
}

std::vector<std::shared_ptr<Pool>> PoolManager::retired_pools() const {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<Pool>> out;
  for (const auto& weak : retired_)
    if (auto p = weak.lock()) out.push_back(std::move(p));
  return out;
}

std::vector<std::shared_ptr<Pool>> PoolManager::pools() const {
  std::lock_guard lock(mu_);
  return values_of(pools_);
}

}  // namespace pgrelay::proxy
