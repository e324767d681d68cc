// The query-result cache as Prometheus series (docs/metrics.md).
#include "proxy/metrics/cache_metrics.h"

#include <algorithm>

#include "proxy/request/warm_list.h"

namespace pgrelay::proxy {
namespace {

prometheus::Gauge& gauge(prometheus::Registry& r, const char* name, const char* help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(r).Add({});
}

}  // namespace

CacheMetrics::CacheMetrics(prometheus::Registry& registry)
    : entries_(gauge(registry, "pgrelay_cache_entries", "Answers held by the query cache's memory tier")),
      bytes_(gauge(registry, "pgrelay_cache_bytes", "Bytes the held answers are charged against memory_budget")),
      raw_bytes_(gauge(registry, "pgrelay_cache_raw_bytes", "The held answers' messages, uncompressed")),
      budget_bytes_(gauge(registry, "pgrelay_cache_budget_bytes", "memory_budget")),
      redis_breakers_open_(gauge(registry, "pgrelay_cache_redis_breakers_open",
                                 "Workers whose Redis-tier breaker is open now (Redis failed: lookups miss, bumps are owed)")),
      redis_channel_up_(gauge(registry, "pgrelay_cache_redis_channel_up",
                              "1 while subscribed to the Redis tier's invalidation channel, else 0")),
      redis_lease_up_(gauge(registry, "pgrelay_cache_redis_lease_up",
                            "1 while this instance holds a lease on the invalidation channel (memory hits need no Redis round trip), else 0")),
      redis_master_(prometheus::BuildGauge()
                        .Name("pgrelay_cache_redis_master")
                        .Help("With Redis Sentinel: 1, labelled with the address of the Redis master pgrelay follows now")
                        .Register(registry)),
      database_lookups_(prometheus::BuildCounter()
                            .Name("pgrelay_cache_database_lookups_total")
                            .Help("Lookups of cacheable reads by database, tier and result: hit, or miss (a fill follows)")
                            .Register(registry)),
      lookup_seconds_(prometheus::BuildHistogram()
                          .Name("pgrelay_cache_lookup_seconds")
                          .Help("Time of a query-cache lookup (key in, answer or verdict out), by database and tier")
                          .Register(registry)),
      fill_seconds_(prometheus::BuildHistogram()
                        .Name("pgrelay_cache_fill_seconds")
                        .Help("From a miss's lookup to its answer stored (the server's time, mostly), by database")
                        .Register(registry)),
      redis_seconds_(prometheus::BuildHistogram()
                         .Name("pgrelay_cache_redis_seconds")
                         .Help("A lookup's round trip to the Redis tier (versions, and the answer when memory had none), by database")
                         .Register(registry)) {
  auto& lookups = prometheus::BuildCounter()
                      .Name("pgrelay_cache_lookups_total")
                      .Help("Query-cache lookups by result: hit, miss (absent, expired, stale), not_cacheable, pending (catalog facts not fetched yet)")
                      .Register(registry);
  hits_.counter = &lookups.Add({{"result", "hit"}});
  misses_absent_.counter = &lookups.Add({{"result", "miss_absent"}});
  misses_expired_.counter = &lookups.Add({{"result", "miss_expired"}});
  misses_stale_.counter = &lookups.Add({{"result", "miss_stale"}});
  not_cacheable_.counter = &lookups.Add({{"result", "not_cacheable"}});
  pending_.counter = &lookups.Add({{"result", "pending"}});
  auto& fills = prometheus::BuildCounter()
                    .Name("pgrelay_cache_fills_total")
                    .Help("Query-cache fills by outcome: stored, raced (a write committed while it ran), too_large, abandoned")
                    .Register(registry);
  insertions_.counter = &fills.Add({{"outcome", "stored"}});
  rejected_raced_.counter = &fills.Add({{"outcome", "raced"}});
  rejected_too_large_.counter = &fills.Add({{"outcome", "too_large"}});
  fills_abandoned_.counter = &fills.Add({{"outcome", "abandoned"}});
  auto& removals = prometheus::BuildCounter()
                       .Name("pgrelay_cache_removals_total")
                       .Help("Answers removed from the query cache by reason: evicted, invalidated (a write), expired (TTL), flushed")
                       .Register(registry);
  evictions_.counter = &removals.Add({{"reason", "evicted"}});
  invalidated_generation_.counter = &removals.Add({{"reason", "invalidated"}});
  invalidated_ttl_.counter = &removals.Add({{"reason", "expired"}});
  invalidated_flush_.counter = &removals.Add({{"reason", "flushed"}});
  auto& invalidations = prometheus::BuildCounter()
                            .Name("pgrelay_cache_invalidations_total")
                            .Help("Commits through pgrelay that invalidated cached answers: tables bumped, or whole databases")
                            .Register(registry);
  table_bumps_.counter = &invalidations.Add({{"scope", "table"}});
  database_invalidations_.counter = &invalidations.Add({{"scope", "database"}});
  auto& fetches = prometheus::BuildCounter()
                      .Name("pgrelay_cache_catalog_fetches_total")
                      .Help("Catalog-fact fetches for the query cache, by result")
                      .Register(registry);
  catalog_fetches_.counter = &fetches.Add({{"result", "all"}});
  catalog_fetch_failures_.counter = &fetches.Add({{"result", "failed"}});
  auto& redis = prometheus::BuildCounter()
                    .Name("pgrelay_cache_redis_events_total")
                    .Help("The Redis tier by event: hit (an answer from Redis), stale (an answer refused: newer versions), "
                          "stored, store_failed, bump (a version bumped), bump_owed (a commit Redis did not confirm), "
                          "failure (a call failed or timed out), breaker_open, invalidation_sent, "
                          "invalidation_received (another instance's bump, applied to memory), ask (a lookup that "
                          "asked Redis), round_trip (the batches the asks went in), lease_renewal (a lease ping heard "
                          "back), lease_hit (a memory hit served under the lease), confirmed_hit (a memory hit "
                          "confirmed by Redis), ack_sent, bump_wait (a bump that waited for the other instances), "
                          "bump_wait_timeout (one that waited the whole lease length)")
                    .Register(registry);
  redis_hits_.counter = &redis.Add({{"event", "hit"}});
  redis_stale_.counter = &redis.Add({{"event", "stale"}});
  redis_stores_.counter = &redis.Add({{"event", "stored"}});
  redis_store_failures_.counter = &redis.Add({{"event", "store_failed"}});
  redis_bumps_.counter = &redis.Add({{"event", "bump"}});
  redis_bumps_owed_.counter = &redis.Add({{"event", "bump_owed"}});
  redis_failures_.counter = &redis.Add({{"event", "failure"}});
  redis_breaker_opens_.counter = &redis.Add({{"event", "breaker_open"}});
  invalidations_sent_.counter = &redis.Add({{"event", "invalidation_sent"}});
  invalidations_received_.counter = &redis.Add({{"event", "invalidation_received"}});
  redis_asks_.counter = &redis.Add({{"event", "ask"}});
  redis_round_trips_.counter = &redis.Add({{"event", "round_trip"}});
  lease_renewals_.counter = &redis.Add({{"event", "lease_renewal"}});
  lease_hits_.counter = &redis.Add({{"event", "lease_hit"}});
  confirmed_hits_.counter = &redis.Add({{"event", "confirmed_hit"}});
  acks_sent_.counter = &redis.Add({{"event", "ack_sent"}});
  bump_waits_.counter = &redis.Add({{"event", "bump_wait"}});
  bump_wait_timeouts_.counter = &redis.Add({{"event", "bump_wait_timeout"}});
  redis_failovers_.counter = &redis.Add({{"event", "failover"}});
  bump_wait_.histogram = &prometheus::BuildHistogram()
                              .Name("pgrelay_cache_redis_bump_wait_seconds")
                              .Help("A commit's wait, after Redis took its bump, for every instance under a lease to apply it (at most the lease length)")
                              .Register(registry)
                              .Add({}, bucket_bounds(LatencyHistogram::kBounds));
  auto& warm = prometheus::BuildCounter()
                   .Name("pgrelay_cache_warm_statements_total")
                   .Help("Statements cache warming replayed (at start, CACHE WARM), by outcome: filled (its answer stored), "
                         "cached (already held), not_filled (answered, not stored), failed, skipped (its user's server "
                         "login needs a client's own credential)")
                   .Register(registry);
  warm_filled_.counter = &warm.Add({{"outcome", "filled"}});
  warm_cached_.counter = &warm.Add({{"outcome", "cached"}});
  warm_not_filled_.counter = &warm.Add({{"outcome", "not_filled"}});
  warm_failed_.counter = &warm.Add({{"outcome", "failed"}});
  warm_skipped_.counter = &warm.Add({{"outcome", "skipped"}});
  invalidation_lag_.histogram = &prometheus::BuildHistogram()
                                     .Name("pgrelay_cache_redis_invalidation_lag_seconds")
                                     .Help("From another instance's bump (its clock) to this one applying it to memory")
                                     .Register(registry)
                                     .Add({}, bucket_bounds(LatencyHistogram::kBounds));
}

void CacheMetrics::update(Services& services) {
  if (!services.cache) return;
  const cache::MemoryStats s = services.cache->store().stats();
  const QueryCacheCounters& c = services.cache->counters();
  auto load = [](const std::atomic<uint64_t>& v) { return v.load(std::memory_order_relaxed); };
  hits_.feed(s.hits);
  misses_absent_.feed(s.misses_absent);
  misses_expired_.feed(s.misses_expired);
  misses_stale_.feed(s.misses_stale);
  not_cacheable_.feed(load(c.not_cacheable));
  pending_.feed(load(c.pending));
  insertions_.feed(s.insertions);
  rejected_raced_.feed(s.rejected_raced);
  rejected_too_large_.feed(s.rejected_too_large);
  fills_abandoned_.feed(load(c.fills_abandoned));
  evictions_.feed(s.evictions);
  invalidated_generation_.feed(s.invalidated_generation);
  invalidated_ttl_.feed(s.invalidated_ttl);
  invalidated_flush_.feed(s.invalidated_flush);
  table_bumps_.feed(load(c.table_bumps));
  database_invalidations_.feed(load(c.database_invalidations));
  catalog_fetches_.feed(load(c.catalog_fetches));
  catalog_fetch_failures_.feed(load(c.catalog_fetch_failures));
  redis_hits_.feed(load(c.shared_hits));
  redis_stale_.feed(load(c.shared_stale));
  redis_stores_.feed(load(c.shared_stores));
  redis_store_failures_.feed(load(c.shared_store_failures));
  redis_bumps_.feed(load(c.shared_bumps));
  redis_bumps_owed_.feed(load(c.shared_bumps_owed));
  redis_failures_.feed(load(c.shared_failures));
  redis_breaker_opens_.feed(load(c.shared_breaker_opens));
  redis_breakers_open_.Set(double(c.shared_breakers_open.load(std::memory_order_relaxed)));
  invalidations_sent_.feed(load(c.shared_invalidations_sent));
  invalidations_received_.feed(load(c.shared_invalidations_received));
  redis_asks_.feed(load(c.shared_asks));
  redis_round_trips_.feed(load(c.shared_round_trips));
  const WarmCounters& w = services.cache->warm_list().counters();
  const uint64_t filled = load(w.filled), cached = load(w.cached);
  warm_filled_.feed(filled);
  warm_cached_.feed(cached);
  warm_not_filled_.feed(load(w.replayed) - std::min(load(w.replayed), filled + cached));
  warm_failed_.feed(load(w.failed));
  warm_skipped_.feed(load(w.skipped));
  invalidation_lag_.feed(c.shared_invalidation_lag.snapshot());
  redis_channel_up_.Set(double(c.shared_channel_up.load(std::memory_order_relaxed)));
  lease_hits_.feed(load(c.shared_lease_hits));
  confirmed_hits_.feed(load(c.shared_confirmed_hits));
  acks_sent_.feed(load(c.shared_acks_sent));
  bump_waits_.feed(load(c.shared_bump_waits));
  bump_wait_timeouts_.feed(load(c.shared_bump_wait_timeouts));
  bump_wait_.feed(c.shared_bump_wait.snapshot());
  if (const auto& shared = services.cache->shared(); shared && shared->sentinel) {
    redis_failovers_.feed(shared->sentinel->failovers());
    const std::string address = shared->sentinel->master();
    if (address != redis_master_address_) {
      if (redis_master_series_) redis_master_.Remove(redis_master_series_);
      redis_master_series_ = address.empty() ? nullptr : &redis_master_.Add({{"address", address}});
      if (redis_master_series_) redis_master_series_->Set(1);
      redis_master_address_ = address;
    }
  }
  if (const SharedLease* lease = services.cache->lease()) {
    lease_renewals_.feed(lease->book().renewals());
    const auto now = std::chrono::steady_clock::now();
    redis_lease_up_.Set(now < lease->book().lease().until ? 1.0 : 0.0);
  }
  entries_.Set(double(s.entries));
  bytes_.Set(double(s.bytes));
  raw_bytes_.Set(double(s.raw_bytes));
  budget_bytes_.Set(double(s.budget_bytes));
  for (const CacheDatabaseStats* d : services.cache->all_database_stats()) {
    auto [it, added] = databases_.try_emplace(d->database);
    DatabaseSeries& series = it->second;
    if (added) {
      const prometheus::Labels db{{"database", d->database}};
      auto with = [&](const char* tier, const char* result) {
        prometheus::Labels l = db;
        l.emplace("tier", tier);
        l.emplace("result", result);
        return l;
      };
      series.memory_hits.counter = &database_lookups_.Add(with("memory", "hit"));
      series.misses.counter = &database_lookups_.Add(with("memory", "miss"));
      if (services.cache->shared()) {
        series.redis_hits.counter = &database_lookups_.Add(with("redis", "hit"));
        series.redis_seconds.histogram = &redis_seconds_.Add(db, bucket_bounds(LatencyHistogram::kFastBounds));
      }
      prometheus::Labels memory = db;
      memory.emplace("tier", "memory");
      series.lookup_seconds.histogram = &lookup_seconds_.Add(memory, bucket_bounds(LatencyHistogram::kFastBounds));
      series.fill_seconds.histogram = &fill_seconds_.Add(db, bucket_bounds(LatencyHistogram::kBounds));
    }
    // A hit is counted once, by the tier that had the answer. The two totals are read apart
    // (a Redis hit counts redis_hits before hits): never let the difference step back.
    const uint64_t redis_hits = load(d->redis_hits);
    const uint64_t hits = load(d->hits);
    series.memory_hits.feed(std::max(series.memory_hits.last, hits - std::min(hits, redis_hits)));
    series.misses.feed(load(d->misses));
    series.lookup_seconds.feed(d->lookup_seconds.snapshot());
    series.fill_seconds.feed(d->fill_seconds.snapshot());
    if (series.redis_hits.counter) {
      series.redis_hits.feed(redis_hits);
      series.redis_seconds.feed(d->redis_seconds.snapshot());
    }
  }
}

}  // namespace pgrelay::proxy
