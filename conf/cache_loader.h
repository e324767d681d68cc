// Internal to conf/: the query-result cache's part of the schema, [cache] and [databases.NAME.cache].
#pragma once

#include "conf/config.h"
#include "conf/table_reader.h"

namespace pgrelay::conf {

// [cache]: enabled, default_ttl, memory_budget, max_entry_size, compress_threshold, [[cache.rules]].
void read_cache_section(TableReader& r, Config& cfg);

// [databases.NAME.cache] inside the database table `r` reads: enabled and default_ttl over the
// [cache] defaults already in `entry.cache`, and its rules appended to [cache]'s.
void read_database_cache(TableReader& r, DatabaseEntry& entry);

// Once the entry is whole (its user and dbname known): what replication = true needs of it.
void check_database_replication(TableReader& r, const DatabaseEntry& entry);

}  // namespace pgrelay::conf
