// The query analyzer's metrics: its totals, and the top metrics_top_fingerprints fingerprints.
//
// Per-fingerprint series carry (fingerprint, database, user) labels, so their number is bounded
// by metrics_top_fingerprints (default 20): the keys with the most total time at this scrape.
// A key that drops out of the top has its series removed (its counters restart if it comes
// back, which rate() reads as a counter reset). pgrelay_query_info maps a fingerprint to its
// normalized text (cut at kQueryLabelBytes). Names and meanings: docs/metrics.md.
//
// Not thread-safe: the exporter's thread only, as MetricsFamilies.
#pragma once

#include <cstddef>
#include <map>
#include <tuple>
#include <string>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include "proxy/metrics/metrics_families.h"
#include "proxy/session/services.h"

namespace pgrelay::proxy {

class AnalyzerMetrics {
 public:
  static constexpr size_t kQueryLabelBytes = 200;

  explicit AnalyzerMetrics(prometheus::Registry& registry);

  // Brings the totals and the top `top` fingerprints up to date with `services`.
  void update(Services& services, size_t top);

 private:
  using Key = std::tuple<std::string, std::string, std::string>;   // fingerprint (hex), database, user
  struct TopSeries {
    FedCounter calls, rows, errors, seconds, wait_seconds;
    prometheus::Gauge* info = nullptr;
  };
  TopSeries add_series(const Key& key, const std::string& query);
  void remove_series(TopSeries& s);

  prometheus::Family<prometheus::Counter> &calls_, &rows_, &errors_, &seconds_, &wait_seconds_;
  prometheus::Family<prometheus::Gauge>& info_;
  std::map<Key, TopSeries> top_;
  FedCounter statements_, statement_errors_, slow_, slow_dropped_, evicted_, n_plus_one_;
  prometheus::Gauge& fingerprints_;
  prometheus::Gauge& n_plus_one_patterns_;
};

}  // namespace pgrelay::proxy
