// The query-result cache's metrics (docs/metrics.md, docs/cache.md): counters fed from the
// store's and the proxy's totals at each scrape, and gauges of what it holds.
//
// Not thread-safe: the exporter's thread only, as MetricsFamilies.
#pragma once

#include <map>
#include <string>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "proxy/metrics/metrics_families.h"
#include "proxy/session/services.h"

namespace pgrelay::proxy {

class CacheMetrics {
 public:
  explicit CacheMetrics(prometheus::Registry& registry);
  void update(Services& services);

 private:
  FedCounter hits_, misses_absent_, misses_expired_, misses_stale_, not_cacheable_, pending_;
  FedCounter insertions_, evictions_, invalidated_generation_, invalidated_ttl_, invalidated_flush_;
  FedCounter rejected_raced_, rejected_too_large_, fills_abandoned_, table_bumps_, database_invalidations_;
  FedCounter catalog_fetches_, catalog_fetch_failures_;
  // The Redis tier (docs/cache.md): what happened, by event.
  FedCounter redis_hits_, redis_stale_, redis_stores_, redis_store_failures_, redis_bumps_, redis_bumps_owed_;
  FedCounter redis_failures_, redis_breaker_opens_, invalidations_sent_, invalidations_received_;
  FedCounter redis_asks_, redis_round_trips_;
  FedCounter lease_renewals_, lease_hits_, confirmed_hits_, acks_sent_, bump_waits_, bump_wait_timeouts_;
  FedCounter redis_failovers_;   // Redis Sentinel: changes of the master followed
  FedHistogram invalidation_lag_, bump_wait_;
  // Warming (docs/cache.md): statements replayed, by outcome.
  FedCounter warm_filled_, warm_cached_, warm_not_filled_, warm_failed_, warm_skipped_;
  prometheus::Gauge &entries_, &bytes_, &raw_bytes_, &budget_bytes_, &redis_breakers_open_, &redis_channel_up_;
  prometheus::Gauge& redis_lease_up_;
  // Redis Sentinel: 1 for the master's address now (one series; the previous one removed).
  prometheus::Family<prometheus::Gauge>& redis_master_;
  prometheus::Gauge* redis_master_series_ = nullptr;
  std::string redis_master_address_;
  // By database (as clients name it); hits by tier (memory, redis).
  struct DatabaseSeries {
    FedCounter memory_hits, redis_hits, misses;
    FedHistogram lookup_seconds, fill_seconds, redis_seconds;
  };
  prometheus::Family<prometheus::Counter>& database_lookups_;
  prometheus::Family<prometheus::Histogram> &lookup_seconds_, &fill_seconds_, &redis_seconds_;
  std::map<std::string, DatabaseSeries> databases_;
};

}  // namespace pgrelay::proxy
