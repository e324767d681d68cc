// Read replicas as Prometheus series (docs/metrics.md, docs/replicas.md): per database and
// replica, whether it takes reads, its lag, and the reads each server took; per database with a
// multi-host primary, how often the primary moved.
//
// Not thread-safe: the exporter's thread only, as MetricsFamilies.
#pragma once

#include <map>
#include <string>
#include <utility>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include "proxy/metrics/metrics_families.h"
#include "proxy/session/services.h"

namespace pgrelay::proxy {

class ReplicaMetrics {
 public:
  explicit ReplicaMetrics(prometheus::Registry& registry);
  void update(Services& services);

 private:
  struct Series {
    prometheus::Gauge *in_rotation = nullptr, *lagging = nullptr, *lag_bytes = nullptr, *lag_seconds = nullptr,
                      *outstanding = nullptr;
    FedCounter reads, rotation_exits, check_failures, reads_moved;
  };
  Series& series_for(const std::string& database, const std::string& replica);

  prometheus::Family<prometheus::Gauge> &in_rotation_, &lagging_, &lag_bytes_, &lag_seconds_, &outstanding_;
  prometheus::Family<prometheus::Counter> &reads_, &rotation_exits_, &check_failures_, &reads_moved_, &primary_moves_;
  std::map<std::pair<std::string, std::string>, Series> series_;   // by (database, replica)
  std::map<std::string, FedCounter> primary_moves_series_;         // by database
};

}  // namespace pgrelay::proxy
