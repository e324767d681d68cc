// The process's query-result cache (docs/cache.md): the memory tier, the table generations, and
// the catalog facts the sessions fetched, per (database, user, search_path).
//
// One per process, owned by Services and shared by every worker: every method is thread-safe.
// The sessions drive it (session/cache_observer.h); it never does I/O itself.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "cache/access_analysis.h"
#include "cache/catalog_queries.h"
#include "cache/generations.h"
#include "cache/memory_store.h"
#include "conf/config.h"
#include "proxy/base/stats.h"
#include "proxy/net/asio.h"
#include "proxy/net/flight.h"
#include "proxy/session/cache_policy.h"
#include "proxy/session/shared_lease.h"
#include "proxy/session/shared_tier.h"

namespace pgrelay::proxy {

class WarmList;   // request/warm_list.h

// Whose catalog view facts belong to: names resolve per server database, role and search_path.
struct CatalogKey {
  std::string database;      // the server's identity (QueryCache::server_database)
  std::string user;          // the role the server connection runs as
  std::string search_path;   // as the session set it; "" = the role's default
  auto operator<=>(const CatalogKey&) const = default;
};

// What the proxy side counts (the store counts hits, misses, fills and evictions itself).
struct QueryCacheCounters {
  std::atomic<uint64_t> not_cacheable{0};          // lookups of texts or catalog facts that forbid caching
  std::atomic<uint64_t> pending{0};                // lookups whose catalog facts were not fetched yet
  std::atomic<uint64_t> fills_abandoned{0};        // a notice in the answer, over max_entry_size, or an error
  std::atomic<uint64_t> table_bumps{0};            // tables invalidated by commits through pgrelay
  std::atomic<uint64_t> database_invalidations{0}; // commits that invalidated a whole database
  std::atomic<uint64_t> catalog_fetches{0};
  std::atomic<uint64_t> catalog_fetch_failures{0};
  // The Redis tier (shared_tier.h).
  std::atomic<uint64_t> shared_hits{0};            // answers taken from Redis (not from memory)
  std::atomic<uint64_t> shared_stale{0};           // answers in memory or Redis whose shared versions moved
  std::atomic<uint64_t> shared_stores{0};          // answers written to Redis
  std::atomic<uint64_t> shared_store_failures{0};
  std::atomic<uint64_t> shared_bumps{0};           // versions bumped in Redis
  std::atomic<uint64_t> shared_bumps_owed{0};      // commits whose bump Redis did not confirm
  std::atomic<uint64_t> shared_asks{0};            // lookups that asked Redis (hits to confirm, misses to look up)
  std::atomic<uint64_t> shared_round_trips{0};     // the batches those asks went in (shared_tier_check.cc)
  std::atomic<uint64_t> shared_failures{0};        // calls that failed or timed out
  std::atomic<uint64_t> shared_breaker_opens{0};   // a worker stopped asking Redis for a while
  std::atomic<int64_t> shared_breakers_open{0};    // workers not asking Redis now
  // The invalidation channel (shared_channel.h).
  std::atomic<uint64_t> shared_invalidations_sent{0};
  std::atomic<uint64_t> shared_invalidations_received{0};   // from other instances, applied to memory
  std::atomic<int64_t> shared_channel_up{0};                // 1 while subscribed
  std::atomic<uint64_t> shared_window_ends_received{0};     // other instances' CALL/DO windows heard to end
  LatencyHistogram shared_invalidation_lag;                 // sent (the sender's clock) .. applied here
  // Leases (shared_lease.h).
  std::atomic<uint64_t> shared_lease_hits{0};        // memory hits served under the lease, no Redis round trip
  std::atomic<uint64_t> shared_confirmed_hits{0};    // memory hits served after Redis confirmed them
  std::atomic<uint64_t> shared_acks_sent{0};         // acknowledgement messages published (each may name many bumps)
  std::atomic<uint64_t> shared_bump_waits{0};        // bumps that waited for the other instances' acknowledgements
  std::atomic<uint64_t> shared_bump_wait_timeouts{0};   // of those, the ones that waited the whole lease length
  LatencyHistogram shared_bump_wait;   // PUBLISH answered .. acknowledged (or timed out)
};

// One client-visible database's cache counters and latencies (docs/metrics.md). Thread-safe.
struct CacheDatabaseStats {
  explicit CacheDatabaseStats(std::string name) : database(std::move(name)) {}
  const std::string database;   // as clients name it
  std::atomic<uint64_t> hits{0};
  std::atomic<uint64_t> misses{0};   // of cacheable reads: each arms a fill
  LatencyHistogram lookup_seconds{LatencyHistogram::kFastBounds};   // the lookup itself, hit or not
  LatencyHistogram fill_seconds;   // a miss's lookup .. its answer stored (the server's time, mostly)
  LatencyHistogram redis_seconds{LatencyHistogram::kFastBounds};   // asking the Redis tier (versions, value)
  std::atomic<uint64_t> redis_hits{0};   // of `hits`: answers that came from Redis
};

// Single flight (proxy/net/flight.h): the one fill in progress for a key, which concurrent
// misses of that key wait for instead of sending the same query. Landed (its waiters woken) when
// the leader's fill ends, stored or not: by the Ticket the leader holds, whatever ends it.

// The wall clock in unix milliseconds: fill times shared with other instances through Redis.
uint64_t unix_ms_now();

class QueryCache {
 public:
  // Sizes come from [cache] once, at start; a reload changes what databases cache, not the sizes.
  explicit QueryCache(const conf::CacheSettings& settings);
  ~QueryCache();

  // The Redis tier's settings; nullopt without one.
  const std::optional<SharedTierSettings>& shared() const { return shared_; }
  // The Redis tier's lease (shared_lease.h); null without the tier.
  SharedLease* lease() { return lease_.get(); }

  cache::MemoryStore& store() { return store_; }
  cache::Generations& generations() { return generations_; }
  QueryCacheCounters& counters() { return counters_; }
  const QueryCacheCounters& counters() const { return counters_; }
  const cache::MemoryStore& store() const { return store_; }
  // The counters of the database clients name `database` (made on first use, kept for the
  // process's life; past kMaxDatabaseStats names, one shared "(other)" entry counts for the rest).
  CacheDatabaseStats& database_stats(const std::string& database);
  std::vector<const CacheDatabaseStats*> all_database_stats();
  // Per fingerprint: SHOW CACHES' counters, CACHE ENABLE/DISABLE.
  CacheFingerprints& fingerprints() { return fingerprints_; }
  // Warming (docs/cache.md): the hottest statements, and what the warm runs did.
  WarmList& warm_list() { return *warm_; }
  const WarmList& warm_list() const { return *warm_; }
  // The counters of warm replays' own lookups and fills, kept apart from their database's so
  // that warming does not count as its clients' misses (the warmer reads what each one did).
  CacheDatabaseStats& warm_stats() { return warm_stats_; }

  // "host:port/dbname": two client-visible names for one server database share generations.
  static std::string server_database(const std::string& host, int port, const std::string& dbname);
  static cache::DatabaseId database_id(std::string_view server_database);
  static cache::TableId table_id(cache::DatabaseId database, cache::Oid oid);

  // The facts fetched for `key`, or null. Facts older than `max_age` are dropped (DDL made
  // outside pgrelay is seen within that long).
  std::shared_ptr<const cache::FetchedCatalog> catalog(const CatalogKey& key, std::chrono::steady_clock::duration max_age);
  // Adds facts for `key` (copy on write: readers keep the view they hold).
  void add_facts(const CatalogKey& key, const std::vector<std::pair<cache::RelationName, cache::RelationInfo>>& relations,
                 const std::vector<std::pair<cache::RoutineName, cache::RoutineInfo>>& routines);
  // The (server database, OID) of every relation the fetched facts resolve `name` to (under any
  // search_path when unqualified): what CACHE FLUSH TABLE drops.
  std::vector<std::pair<std::string, cache::Oid>> tables_named(const cache::RelationName& name);
  // A miss of `key`: null when this caller leads (it holds the returned ticket while it fills;
  // dropping the ticket lands the flight), else the flight already in progress to wait for.
  struct Ticket;
  std::shared_ptr<Flight> join_flight(const std::vector<std::byte>& key, std::shared_ptr<Ticket>& ticket);
  // A write pgrelay cannot name committed on `database`: its epoch moves; with `drop_facts`
  // (the schema may have changed: DDL, CALL, DO, ...) its catalog facts go too. Facts stay for
  // row changes (a volatile function, a trigger, facts pending): dropping them would make the
  // next statements pending and the next writes whole-database again.
  void invalidate_database(const std::string& server_database, bool drop_facts);
  // Another instance changed `database`'s schema (the Redis tier's channel): its catalog facts
  // go, for every role and search_path.
  void drop_facts(cache::DatabaseId database);
  // A CALL or DO (which may COMMIT and run on) is running on `database`: until it ends, no
  // session of the database is answered from the cache or fills it (what it committed so far
  // is visible to the server's other sessions, and no generation names it yet). Both invalidate.
  void open_window(const std::string& server_database);
  void close_window(const std::string& server_database);
  bool window_open(cache::DatabaseId database) const {
    return windows_[static_cast<uint64_t>(database) % kWindowStripes].load(std::memory_order_acquire) != 0;
  }
  // Moves whenever any facts are added or dropped: a session holding a view may keep using it
  // while this has not moved (and the view is younger than its max age).
  uint64_t catalogs_version() const { return catalogs_version_.load(std::memory_order_acquire); }

 private:
  struct Facts {
    std::shared_ptr<const cache::FetchedCatalog> view;
    std::chrono::steady_clock::time_point fetched;
  };
  std::optional<SharedTierSettings> shared_;
  std::unique_ptr<SharedLease> lease_;
  cache::MemoryStore store_;
  cache::Generations generations_;
  QueryCacheCounters counters_;
  CacheFingerprints fingerprints_;
  std::unique_ptr<WarmList> warm_;
  CacheDatabaseStats warm_stats_{"(warming)"};
  std::mutex catalogs_mu_;
  std::map<CatalogKey, Facts> catalogs_;
  std::atomic<uint64_t> catalogs_version_{1};
  std::mutex flights_mu_;
  std::map<std::vector<std::byte>, std::weak_ptr<Flight>> flights_;
  // Open windows by database, striped (two databases sharing a stripe only cost each other hits).
  static constexpr size_t kWindowStripes = 64;
  static constexpr size_t kMaxDatabaseStats = 1000;
  std::mutex database_stats_mu_;
  std::map<std::string, std::unique_ptr<CacheDatabaseStats>> database_stats_;
  std::array<std::atomic<int>, kWindowStripes> windows_{};
};

// The leader's hold on a flight: landing it and forgetting its key when dropped.
struct QueryCache::Ticket {
  QueryCache* cache = nullptr;
  std::vector<std::byte> key;
  std::shared_ptr<Flight> flight;
  ~Ticket();
};

// A worker's access analyses by statement text (libpg_query parses once per distinct text), and
// the last read and write judgements of each, with the catalog view they were made under. Worker thread only.
class AccessMemo {
 public:
  struct Entry {
    std::shared_ptr<const cache::AccessAnalysis> access;
    std::shared_ptr<const cache::FetchedCatalog> judged_under;   // null: not judged yet
    cache::ReadJudgement judgement;
    CacheTextPolicy policy;   // its hint, fingerprint and the rules' verdict (cache_policy.h)
    std::shared_ptr<const cache::FetchedCatalog> write_judged_under;   // the same for judge_write
    cache::WriteJudgement write_judgement;
  };
  // The entry for `text` (made on first sight); valid until the next get().
  Entry& get(std::string_view text);

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  static constexpr size_t kMaxTexts = 4096;   // then it starts over: one-off texts do not pile up
  std::unordered_map<std::string, Entry, Hash, std::equal_to<>> by_text_;
};

}  // namespace pgrelay::proxy
