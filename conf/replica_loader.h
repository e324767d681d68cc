// Internal to conf/: the read-replica keys of [databases.NAME] and the [users.NAME] tables.
#pragma once

#include <toml++/toml.h>

#include "conf/config.h"
#include "conf/table_reader.h"

namespace pgrelay::conf {

// replicas, read_routing, max_replica_lag, primary_reads, replica_check_interval of one
// [databases.NAME] table, into entry.replicas.
void read_database_replicas(TableReader& r, DatabaseEntry& entry);

// [users.NAME] tables (read_routing), into cfg.users.
void read_users(const toml::table& users, Diagnostics& diag, Config& cfg);

}  // namespace pgrelay::conf
