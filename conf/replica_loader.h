// Internal to conf/: the read-replica keys of [databases.NAME], a multi-host primary, and the
// [users.NAME] tables.
#pragma once

#include <toml++/toml.h>

#include "conf/config.h"
#include "conf/table_reader.h"

namespace pgrelay::conf {

// replicas, read_routing, max_replica_lag, primary_reads, replica_check_interval of one
// [databases.NAME] table, into entry.replicas.
void read_database_replicas(TableReader& r, DatabaseEntry& entry);

// A multi-host primary: `host` "a,b" and `ports` (empty: the entry's port for all, or "p1,p2" /
// "p" as libpq takes them) into entry.host, entry.port and entry.primary_hosts.
void read_primary_hosts(TableReader& r, const std::string& host, const std::string& ports, DatabaseEntry& entry);

// [users.NAME] tables (read_routing), into cfg.users.
void read_users(const toml::table& users, Diagnostics& diag, Config& cfg);

}  // namespace pgrelay::conf
