// The query cache's replication listeners as Prometheus series (docs/metrics.md): per database,
// whether its stream is up, the WAL its slot holds back, and the lag of applied commits.
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

class ReplicationMetrics {
 public:
  explicit ReplicationMetrics(prometheus::Registry& registry);
  void update(Services& services);

 private:
  struct Series {
    prometheus::Gauge* up = nullptr;
    prometheus::Gauge* lag_bytes = nullptr;
    FedCounter commits, table_bumps, truncates, stream_losses, connect_failures;
    FedHistogram apply_lag;
  };
  prometheus::Family<prometheus::Gauge> &up_, &lag_bytes_;
  prometheus::Family<prometheus::Counter> &commits_, &table_bumps_, &truncates_, &stream_losses_, &connect_failures_;
  prometheus::Family<prometheus::Histogram>& apply_lag_;
  std::map<std::string, Series> databases_;
};

}  // namespace pgrelay::proxy
