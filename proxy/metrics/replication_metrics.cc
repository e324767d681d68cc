// The cache's replication listeners as Prometheus series (docs/metrics.md).
#include "proxy/metrics/replication_metrics.h"

#include "proxy/session/replication_listener.h"

namespace pgrelay::proxy {
namespace {

prometheus::Family<prometheus::Counter>& counter(prometheus::Registry& r, const char* name, const char* help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(r);
}

prometheus::Family<prometheus::Gauge>& gauge(prometheus::Registry& r, const char* name, const char* help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(r);
}

}  // namespace

ReplicationMetrics::ReplicationMetrics(prometheus::Registry& registry)
    : up_(gauge(registry, "pgrelay_cache_replication_up",
                "1 while the database's replication stream is up (its cached answers are served), else 0")),
      lag_bytes_(gauge(registry, "pgrelay_cache_replication_lag_bytes",
                       "WAL the listener's slot holds back: the server's end of WAL less what the listener confirmed")),
      commits_(counter(registry, "pgrelay_cache_replication_commits_total", "Transactions read from the replication stream and applied")),
      table_bumps_(counter(registry, "pgrelay_cache_replication_table_bumps_total",
                           "Table generations bumped by commits read from the replication stream (ancestors included)")),
      truncates_(counter(registry, "pgrelay_cache_replication_truncates_total", "TRUNCATE messages read from the replication stream")),
      stream_losses_(counter(registry, "pgrelay_cache_replication_stream_losses_total",
                             "Replication streams that ended or broke (each invalidates the database's cached answers)")),
      connect_failures_(counter(registry, "pgrelay_cache_replication_connect_failures_total",
                                "Attempts to start a replication stream that failed (see the log or SHOW REPLICATION)")),
      apply_lag_(prometheus::BuildHistogram()
                     .Name("pgrelay_cache_replication_apply_lag_seconds")
                     .Help("From a transaction's commit on the server to its tables bumped in pgrelay's cache")
                     .Register(registry)) {}

void ReplicationMetrics::update(Services& services) {
  if (!services.replication) return;
  auto load = [](const std::atomic<uint64_t>& v) { return v.load(std::memory_order_relaxed); };
  for (const auto& status : services.replication->statuses()) {
    auto [it, added] = databases_.try_emplace(status->database);
    Series& s = it->second;
    if (added) {
      const prometheus::Labels labels{{"database", status->database}, {"slot", status->slot}};
      s.up = &up_.Add(labels);
      s.lag_bytes = &lag_bytes_.Add(labels);
      s.commits.counter = &commits_.Add(labels);
      s.table_bumps.counter = &table_bumps_.Add(labels);
      s.truncates.counter = &truncates_.Add(labels);
      s.stream_losses.counter = &stream_losses_.Add(labels);
      s.connect_failures.counter = &connect_failures_.Add(labels);
      s.apply_lag.histogram = &apply_lag_.Add(labels, bucket_bounds(LatencyHistogram::kBounds));
    }
    s.up->Set(status->streaming.load() ? 1 : 0);
    s.lag_bytes->Set(double(status->lag_bytes()));
    s.commits.feed(load(status->commits));
    s.table_bumps.feed(load(status->table_bumps));
    s.truncates.feed(load(status->truncates));
    s.stream_losses.feed(load(status->stream_losses));
    s.connect_failures.feed(load(status->connect_failures));
    s.apply_lag.feed(status->apply_lag_seconds.snapshot());
  }
}

}  // namespace pgrelay::proxy
