// Internal to conf/: the query analyzer's part of the [pgrelay] schema.
#pragma once

#include "conf/config.h"
#include "conf/table_reader.h"

namespace pgrelay::conf {

// query_stats, max_fingerprints, query_text_length, slow_query_*, log_parameters,
// metrics_top_fingerprints and n_plus_one_* (docs/configuration.md).
void read_analyzer_settings(TableReader& r, Config& cfg);

}  // namespace pgrelay::conf
