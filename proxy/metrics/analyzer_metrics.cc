// The query analyzer's totals and top fingerprints as Prometheus series (docs/metrics.md).
#include "proxy/metrics/analyzer_metrics.h"

#include <set>

#include "analyzer/fingerprint.h"
#include "proxy/session/slow_query_log.h"

namespace pgrelay::proxy {
AnalyzerMetrics::AnalyzerMetrics(prometheus::Registry& registry)
    : calls_(counter_family(registry, "pgrelay_query_calls_total", "Executions of a top fingerprint (metrics_top_fingerprints by total time)")),
      rows_(counter_family(registry, "pgrelay_query_rows_total", "Rows returned or affected by a top fingerprint's executions")),
      errors_(counter_family(registry, "pgrelay_query_errors_total", "Failed executions of a top fingerprint")),
      seconds_(counter_family(registry, "pgrelay_query_seconds_total", "Time spent in a top fingerprint's executions")),
      wait_seconds_(counter_family(registry, "pgrelay_query_wait_seconds_total",
                            "Time a top fingerprint's requests waited for a server connection")),
      info_(prometheus::BuildGauge()
                .Name("pgrelay_query_info")
                .Help("Always 1 for a top fingerprint; the query label is its normalized text (cut)")
                .Register(registry)),
      fingerprints_(prometheus::BuildGauge()
                        .Name("pgrelay_query_fingerprints")
                        .Help("(fingerprint, database, user) keys with statistics now (SHOW QUERIES)")
                        .Register(registry)
                        .Add({})),
      n_plus_one_patterns_(prometheus::BuildGauge()
                               .Name("pgrelay_n_plus_one_patterns")
                               .Help("N+1 patterns kept for SHOW N_PLUS_ONE")
                               .Register(registry)
                               .Add({})) {
  statements_.counter = &counter_family(registry, "pgrelay_statements_total", "Statements executed (completed or failed)").Add({});
  statement_errors_.counter = &counter_family(registry, "pgrelay_statement_errors_total", "Statements that failed").Add({});
  slow_.counter = &counter_family(registry, "pgrelay_slow_statements_total",
                           "Executions at or over slow_query_threshold").Add({});
  slow_dropped_.counter = &counter_family(registry, "pgrelay_slow_log_dropped_total",
                                   "Slow-log lines not written because of slow_query_log_rate").Add({});
  evicted_.counter = &counter_family(registry, "pgrelay_query_fingerprints_evicted_total",
                              "Fingerprint entries evicted to stay within max_fingerprints").Add({});
  n_plus_one_.counter = &counter_family(registry, "pgrelay_n_plus_one_detections_total",
                                 "Units of work (a transaction, or a burst of statements) in which an N+1 pattern was detected")
                             .Add({});
}

AnalyzerMetrics::TopSeries AnalyzerMetrics::add_series(const Key& key, const std::string& query) {
  const prometheus::Labels labels{{"fingerprint", std::get<0>(key)}, {"database", std::get<1>(key)}, {"user", std::get<2>(key)}};
  TopSeries s;
  s.calls.counter = &calls_.Add(labels);
  s.rows.counter = &rows_.Add(labels);
  s.errors.counter = &errors_.Add(labels);
  s.seconds.counter = &seconds_.Add(labels);
  s.seconds.scale = 1e-6;
  s.wait_seconds.counter = &wait_seconds_.Add(labels);
  s.wait_seconds.scale = 1e-6;
  prometheus::Labels info = labels;
  info["query"] = std::string(cut_utf8(query, kQueryLabelBytes));
  s.info = &info_.Add(info);
  s.info->Set(1);
  return s;
}

void AnalyzerMetrics::remove_series(TopSeries& s) {
  calls_.Remove(s.calls.counter);
  rows_.Remove(s.rows.counter);
  errors_.Remove(s.errors.counter);
  seconds_.Remove(s.seconds.counter);
  wait_seconds_.Remove(s.wait_seconds.counter);
  info_.Remove(s.info);
}

void AnalyzerMetrics::update(Services& services, size_t top) {
  const analyzer::QueryStatsSnapshot snapshot = services.query_stats.snapshot();
  statements_.feed(snapshot.statements);
  statement_errors_.feed(snapshot.errors);
  evicted_.feed(snapshot.evicted);
  fingerprints_.Set(double(snapshot.entries.size() + snapshot.not_shown));
  n_plus_one_.feed(services.n_plus_one.total_detections());
  n_plus_one_patterns_.Set(double(services.n_plus_one.size()));
  if (services.slow_queries) {
    slow_.feed(services.slow_queries->total());
    slow_dropped_.feed(services.slow_queries->dropped());
  }

  std::set<Key> current;
  for (size_t i = 0; i < snapshot.entries.size() && i < top; ++i) {
    const auto& [k, stats] = snapshot.entries[i];
    Key key{analyzer::fingerprint_hex(k.fingerprint), k.database, k.user};
    auto it = top_.find(key);
    if (it == top_.end()) it = top_.emplace(key, add_series(key, stats.normalized)).first;
    TopSeries& s = it->second;
    s.calls.feed(stats.calls);
    s.rows.feed(stats.rows);
    s.errors.feed(stats.errors);
    s.seconds.feed(stats.total_micros);
    s.wait_seconds.feed(stats.wait_micros);
    current.insert(std::move(key));
  }
  for (auto it = top_.begin(); it != top_.end();) {
    if (current.count(it->first)) {
      ++it;
      continue;
    }
    remove_series(it->second);
    it = top_.erase(it);
  }
}

}  // namespace pgrelay::proxy
