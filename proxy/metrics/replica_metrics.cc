// Read replicas as Prometheus series (docs/metrics.md).
#include "proxy/metrics/replica_metrics.h"

namespace pgrelay::proxy {
ReplicaMetrics::ReplicaMetrics(prometheus::Registry& registry)
    : in_rotation_(gauge_family(registry, "pgrelay_replica_in_rotation", "1 while the replica takes reads (healthy, within max_replica_lag)")),
      lagging_(gauge_family(registry, "pgrelay_replica_lagging", "1 while the replica answers its checks but is behind by more than max_replica_lag")),
      lag_bytes_(gauge_family(registry, "pgrelay_replica_lag_bytes", "WAL bytes the replica's replay is behind the primary, as of the last check")),
      lag_seconds_(gauge_family(registry, "pgrelay_replica_lag_seconds", "How long ago the primary was where the replica's replay is now")),
      outstanding_(gauge_family(registry, "pgrelay_replica_outstanding_reads", "Reads running on the server now (replica=\"primary\": routed reads the primary took)")),
      reads_(counter_family(registry, "pgrelay_replica_reads_total", "Reads routed to each server (replica=\"primary\": reads no replica took)")),
      rotation_exits_(counter_family(registry, "pgrelay_replica_rotation_exits_total", "Times the replica left rotation (down or lagging)")),
      check_failures_(counter_family(registry, "pgrelay_replica_check_failures_total", "Health checks the replica failed")),
      reads_moved_(counter_family(registry, "pgrelay_replica_reads_moved_total", "Reads that failed on the replica (it died, a recovery conflict) before any reply reached the client, sent to the primary")),
      primary_moves_(counter_family(registry, "pgrelay_primary_moves_total", "Times a multi-host primary was found on another host (a failover)")) {}

ReplicaMetrics::Series& ReplicaMetrics::series_for(const std::string& database, const std::string& replica) {
  auto [it, added] = series_.try_emplace({database, replica});
  Series& s = it->second;
  if (added) {
    const prometheus::Labels labels{{"database", database}, {"replica", replica}};
    s.in_rotation = &in_rotation_.Add(labels);
    s.lagging = &lagging_.Add(labels);
    s.lag_bytes = &lag_bytes_.Add(labels);
    s.lag_seconds = &lag_seconds_.Add(labels);
    s.outstanding = &outstanding_.Add(labels);
    s.reads.counter = &reads_.Add(labels);
    s.rotation_exits.counter = &rotation_exits_.Add(labels);
    s.check_failures.counter = &check_failures_.Add(labels);
    s.reads_moved.counter = &reads_moved_.Add(labels);
  }
  return s;
}

void ReplicaMetrics::update(Services& services) {
  auto load = [](const auto& v) { return v.load(std::memory_order_relaxed); };
  for (const auto& set : services.pools.replica_sets()) {
    for (size_t i = 0; i < set->size(); ++i) {
      const ReplicaState& r = set->replica(i);
      Series& s = series_for(set->database(), r.endpoint.host + ":" + std::to_string(r.endpoint.port));
      s.in_rotation->Set(load(r.in_rotation) ? 1 : 0);
      s.lagging->Set(load(r.healthy) && !load(r.in_rotation) ? 1 : 0);
      s.lag_bytes->Set(double(load(r.lag_bytes)));
      s.lag_seconds->Set(double(load(r.lag_ms)) / 1000.0);
      s.outstanding->Set(double(load(r.outstanding)));
      s.reads.feed(load(r.reads));
      s.rotation_exits.feed(load(r.rotation_exits));
      s.check_failures.feed(load(r.check_failures));
      s.reads_moved.feed(load(r.reads_moved));
    }
    Series& p = series_for(set->database(), "primary");
    p.in_rotation->Set(1);
    p.outstanding->Set(double(load(set->primary_outstanding())));
    p.reads.feed(load(set->primary_reads()));
  }
  for (const auto& finder : services.pools.primary_finders()) {
    auto [it, added] = primary_moves_series_.try_emplace(finder->database());
    if (added) it->second.counter = &primary_moves_.Add({{"database", finder->database()}});
    it->second.feed(finder->moves());
  }
}

}  // namespace pgrelay::proxy
