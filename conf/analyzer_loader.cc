// The query analyzer's keys of [pgrelay]: statistics per fingerprint, the slow-query log, N+1.
#include "conf/analyzer_loader.h"

namespace pgrelay::conf {

void read_analyzer_settings(TableReader& r, Config& cfg) {
  r.read_bool("query_stats", cfg.query_stats);
  r.read_int("max_fingerprints", 1, 1'000'000, cfg.max_fingerprints);
  r.read_int("query_text_length", 16, 1 << 20, cfg.query_text_length);
  r.read_duration("slow_query_threshold", true, cfg.slow_query_threshold);
  r.read_string("slow_query_log", cfg.slow_query_log);
  r.read_bool("log_parameters", cfg.log_parameters);
  r.read_int("slow_query_log_rate", 1, 1'000'000, cfg.slow_query_log_rate);
  r.read_int("metrics_top_fingerprints", 0, 1000, cfg.metrics_top_fingerprints);
  if (r.read_int("n_plus_one_threshold", 0, 1000, cfg.n_plus_one_threshold) && cfg.n_plus_one_threshold == 1)
    r.error("n_plus_one_threshold", "expected 0 (off) or an integer 2..1000, got 1");
  r.read_duration("n_plus_one_window", false, cfg.n_plus_one_window);
  r.read_duration("n_plus_one_log_interval", true, cfg.n_plus_one_log_interval);
}

}  // namespace pgrelay::conf
