// Internal to conf/: the pool part of the schema, read in [pgrelay] and in each [databases.NAME].
#pragma once

#include <string_view>

#include "conf/config.h"
#include "conf/table_reader.h"

namespace pgrelay::conf {

// Reads the pool keys of a [pgrelay] or [databases.NAME] table over `pool` (the inherited
// values) and checks the orderings min_pool_size <= pool_size <= max_pool_size and
// scale_down_threshold < scale_up_threshold on the result, blaming a key this table set;
// `inherited_from` names where inherited values came from ("" for [pgrelay] itself).
void read_pool(TableReader& r, PoolSettings& pool, std::string_view inherited_from);

}  // namespace pgrelay::conf
