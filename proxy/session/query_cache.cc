// The process's query-result cache: store, generations, and the catalog facts sessions fetched.
#include "proxy/session/query_cache.h"

#include "proxy/request/warm_list.h"

#include "cache/lease_messages.h"

#include <xxhash.h>

namespace pgrelay::proxy {
namespace {

cache::MemoryStoreOptions store_options(const conf::CacheSettings& s) {
  cache::MemoryStoreOptions o;
  o.budget_bytes = s.memory_budget;
  o.max_entry_bytes = s.max_entry_size;
  o.compress_threshold = s.compress_threshold;
  return o;
}

std::optional<SharedTierSettings> shared_settings(const conf::CacheSettings& s) {
  if (!s.redis && s.redis_sentinels.empty()) return std::nullopt;
  // With sentinels and no redis_url (nor REDIS_URL): plain redis://, no AUTH, db 0.
  std::shared_ptr<RedisSentinel> sentinel;
  if (!s.redis_sentinels.empty()) {
    sentinel = std::make_shared<RedisSentinel>(SentinelSettings{.sentinels = s.redis_sentinels,
                                                                .master_name = s.redis_master_name,
                                                                .password = s.redis_sentinel_password});
  }
  const auto lease = std::chrono::duration_cast<std::chrono::milliseconds>(s.redis_lease);
  return SharedTierSettings{.endpoint = s.redis.value_or(conf::RedisEndpoint{}),
                            .timeout = std::chrono::duration_cast<std::chrono::milliseconds>(s.redis_timeout),
                            .prefix = s.redis_key_prefix,
                            .lease = lease,
                            .instance = cache::lease_instance_id(random_hex_id(), lease),
                            .sentinel = std::move(sentinel)};
}

}  // namespace

uint64_t unix_ms_now() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

QueryCache::QueryCache(const conf::CacheSettings& settings)
    : shared_(shared_settings(settings)),
      lease_(shared_ ? std::make_unique<SharedLease>(shared_->lease) : nullptr),
      store_(store_options(settings)),
      warm_(std::make_unique<WarmList>(settings.warm_statements)) {}

QueryCache::~QueryCache() = default;

std::string QueryCache::server_database(const std::string& host, int port, const std::string& dbname) {
  return host + ":" + std::to_string(port) + "/" + dbname;
}

cache::DatabaseId QueryCache::database_id(std::string_view server_database) {
  return cache::DatabaseId{XXH3_64bits(server_database.data(), server_database.size())};
}

cache::TableId QueryCache::table_id(cache::DatabaseId database, cache::Oid oid) {
  return cache::TableId{XXH3_64bits_withSeed(&oid, sizeof oid, static_cast<uint64_t>(database))};
}

std::shared_ptr<const cache::FetchedCatalog> QueryCache::catalog(const CatalogKey& key,
                                                                 std::chrono::steady_clock::duration max_age) {
  std::lock_guard lock(catalogs_mu_);
  auto it = catalogs_.find(key);
  if (it == catalogs_.end()) return nullptr;
  if (std::chrono::steady_clock::now() - it->second.fetched > max_age) {
    catalogs_.erase(it);
    catalogs_version_.fetch_add(1, std::memory_order_acq_rel);
    return nullptr;
  }
  return it->second.view;
}

void QueryCache::add_facts(const CatalogKey& key,
                           const std::vector<std::pair<cache::RelationName, cache::RelationInfo>>& relations,
                           const std::vector<std::pair<cache::RoutineName, cache::RoutineInfo>>& routines) {
  std::lock_guard lock(catalogs_mu_);
  Facts& facts = catalogs_[key];
  auto next = facts.view ? std::make_shared<cache::FetchedCatalog>(*facts.view) : std::make_shared<cache::FetchedCatalog>();
  for (const auto& [name, info] : relations) next->add(name, info);
  for (const auto& [name, info] : routines) next->add(name, info);
  if (!facts.view) facts.fetched = std::chrono::steady_clock::now();   // the oldest fact sets the age
  facts.view = std::move(next);
  catalogs_version_.fetch_add(1, std::memory_order_acq_rel);
}

std::shared_ptr<Flight> QueryCache::join_flight(const std::vector<std::byte>& key, std::shared_ptr<Ticket>& ticket) {
  std::lock_guard lock(flights_mu_);
  auto& slot = flights_[key];
  if (auto flight = slot.lock()) return flight;
  auto flight = std::make_shared<Flight>();
  slot = flight;
  ticket = std::make_shared<Ticket>();
  ticket->cache = this;
  ticket->key = key;
  ticket->flight = std::move(flight);
  return nullptr;
}

QueryCache::Ticket::~Ticket() {
  {
    std::lock_guard lock(cache->flights_mu_);
    if (auto it = cache->flights_.find(key); it != cache->flights_.end() && it->second.lock() == flight) cache->flights_.erase(it);
  }
  flight->land();
}

std::vector<std::pair<std::string, cache::Oid>> QueryCache::tables_named(const cache::RelationName& name) {
  std::vector<std::pair<std::string, cache::Oid>> out;
  std::lock_guard lock(catalogs_mu_);
  for (const auto& [key, facts] : catalogs_) {
    const cache::RelationInfo* info = facts.view->relation(name);
    if (!info && !name.schema.empty()) info = facts.view->relation({"", name.name});   // qualified here, not in the query
    if (info && info->found) out.emplace_back(key.database, info->oid);
  }
  return out;
}

void QueryCache::invalidate_database(const std::string& server_database, bool drop_facts) {
  counters_.database_invalidations.fetch_add(1, std::memory_order_relaxed);
  generations_.bump_database(database_id(server_database));
  if (!drop_facts) return;
  std::lock_guard lock(catalogs_mu_);
  std::erase_if(catalogs_, [&](const auto& kv) { return kv.first.database == server_database; });
  catalogs_version_.fetch_add(1, std::memory_order_acq_rel);
}

void QueryCache::drop_facts(cache::DatabaseId database) {
  std::lock_guard lock(catalogs_mu_);
  std::erase_if(catalogs_, [&](const auto& kv) { return database_id(kv.first.database) == database; });
  catalogs_version_.fetch_add(1, std::memory_order_acq_rel);
}

CacheDatabaseStats& QueryCache::database_stats(const std::string& database) {
  std::lock_guard lock(database_stats_mu_);
  auto it = database_stats_.find(database);
  if (it == database_stats_.end()) {
    const std::string& name = database_stats_.size() < kMaxDatabaseStats ? database : std::string("(other)");
    it = database_stats_.find(name);
    if (it == database_stats_.end()) it = database_stats_.emplace(name, std::make_unique<CacheDatabaseStats>(name)).first;
  }
  return *it->second;
}

std::vector<const CacheDatabaseStats*> QueryCache::all_database_stats() {
  std::lock_guard lock(database_stats_mu_);
  std::vector<const CacheDatabaseStats*> out;
  for (const auto& [name, stats] : database_stats_) out.push_back(stats.get());
  return out;
}

void QueryCache::open_window(const std::string& server_database) {
  // Open first: a fill armed before this captured the epoch the invalidation moves.
  windows_[static_cast<uint64_t>(database_id(server_database)) % kWindowStripes].fetch_add(1, std::memory_order_acq_rel);
  invalidate_database(server_database, true);
}

void QueryCache::close_window(const std::string& server_database) {
  // Invalidate first: what was filled meanwhile (started before the window) is dropped.
  invalidate_database(server_database, true);
  windows_[static_cast<uint64_t>(database_id(server_database)) % kWindowStripes].fetch_sub(1, std::memory_order_acq_rel);
}

AccessMemo::Entry& AccessMemo::get(std::string_view text) {
  if (auto it = by_text_.find(text); it != by_text_.end()) return it->second;
  if (by_text_.size() >= kMaxTexts) by_text_.clear();
  Entry entry;
  entry.access = std::make_shared<const cache::AccessAnalysis>(cache::analyze_access(text));
  return by_text_.emplace(std::string(text), std::move(entry)).first->second;
}

}  // namespace pgrelay::proxy
