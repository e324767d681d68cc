// Internal to conf/: the TLS part of the schema (client_tls_* and server_tls_* keys).
#pragma once

#include "conf/config.h"
#include "conf/table_reader.h"

namespace pgrelay::conf {

// client_tls_* and server_tls_* of [pgrelay] into cfg.client_tls / cfg.server_tls. File paths
// are resolved against the directory of cfg.source and must be readable; the pairings (a
// certificate needs its key, verify-* modes need a CA file) are checked on the result.
void read_tls_settings(TableReader& r, Config& cfg);

// server_tls_sslmode of a [databases.NAME] table: overrides the [pgrelay] one for this entry.
void read_database_tls(TableReader& r, const Config& cfg, DatabaseEntry& entry);

}  // namespace pgrelay::conf
