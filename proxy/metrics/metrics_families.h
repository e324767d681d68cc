// pgrelay's numbers as Prometheus metrics: prometheus-cpp families on an injected Registry.
//
// The data path never touches prometheus-cpp: it bumps the plain atomics of stats.h, and
// update() copies them into the families just before a scrape is serialized (counters by the
// increase since the last update, histograms by their bucket increases). Labels are bounded by
// configuration: (database, user) per pool, a fixed set of reasons; never a client or a query.
// Every metric, with its type, labels and meaning, is listed in docs/metrics.md.
//
// Not thread-safe: one caller at a time (the exporter's thread).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "proxy/session/services.h"
#include "proxy/base/stats.h"

namespace pgrelay::proxy {

// A counter fed from a monotonic source: increments by the increase since the last look (a
// source that went back, such as a replaced pool's own count or a RESET QUERIES, counts from
// zero again), times `scale` (1e-6 for a source in microseconds and a counter in seconds).
struct FedCounter {
  prometheus::Counter* counter = nullptr;
  uint64_t last = 0;
  double scale = 1;
  void feed(uint64_t now);
};

// A histogram fed from a LatencyHistogram: its bucket increases since the last look.
struct FedHistogram {
  prometheus::Histogram* histogram = nullptr;
  LatencyHistogram::Snapshot last;
  void feed(const LatencyHistogram::Snapshot& now);
};

// A family of gauges or counters registered in `r` (the series are added per label set).
prometheus::Family<prometheus::Gauge>& gauge_family(prometheus::Registry& r, const char* name, const char* help);
prometheus::Family<prometheus::Counter>& counter_family(prometheus::Registry& r, const char* name, const char* help);

// prometheus-cpp bucket boundaries equal to `bounds` (one static copy per bounds array).
const prometheus::Histogram::BucketBoundaries& bucket_bounds(const LatencyHistogram::Bounds& bounds);

class MetricsFamilies {
 public:
  explicit MetricsFamilies(prometheus::Registry& registry);

  // Brings every series up to date with `services`.
  void update(Services& services);

 private:
  struct PoolSeries {
    prometheus::Gauge *clients_active, *clients_waiting, *servers_active, *servers_idle, *servers_used,
        *servers_login, *servers_pinned, *target_size, *configured_size, *max_wait, *paused;
    FedCounter queries, transactions, received, sent, opened, closed, failed, scale_ups, scale_downs, refusals;
    std::map<std::string, FedCounter> pins;   // by reason
    FedHistogram query_seconds, transaction_seconds, wait_seconds;
  };
  PoolSeries& series_for(const std::string& database, const std::string& user);

  prometheus::Family<prometheus::Gauge>& gauge(const char* name, const char* help);
  prometheus::Family<prometheus::Counter>& counter(const char* name, const char* help);
  prometheus::Family<prometheus::Histogram>& histogram(const char* name, const char* help);

  prometheus::Registry& registry_;
  // Per pool.
  prometheus::Family<prometheus::Gauge> &clients_active_, &clients_waiting_, &servers_active_, &servers_idle_,
      &servers_used_, &servers_login_, &servers_pinned_, &target_size_, &configured_size_, &max_wait_, &paused_;
  prometheus::Family<prometheus::Counter> &queries_, &transactions_, &received_, &sent_, &opened_, &closed_,
      &failed_, &scale_ups_, &scale_downs_, &pins_, &refusals_;
  prometheus::Family<prometheus::Histogram> &query_seconds_, &transaction_seconds_, &wait_seconds_;
  std::map<std::pair<std::string, std::string>, PoolSeries> pools_;
  // The whole process.
  prometheus::Gauge& clients_connected_;
  prometheus::Gauge& info_;
  prometheus::Gauge& start_time_;
  FedCounter accepted_, auth_successes_, auth_failures_, auth_rejected_, console_sessions_, cancel_requests_;
  FedCounter pipelined_, pipeline_retries_, pipeline_cancels_;
  std::array<FedCounter, size_t(RejectReason::kCount)> rejected_;
};

}  // namespace pgrelay::proxy
