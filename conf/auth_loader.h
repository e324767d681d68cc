// Internal to conf/: the client authentication part of the schema ([pgrelay] auth keys, [[hba]]).
#pragma once

#include <toml++/toml.h>

#include "conf/config.h"
#include "conf/table_reader.h"

namespace pgrelay::conf {

// auth_type, auth_file, auth_user, auth_query, auth_cache_ttl, admin_users and stats_users of
// [pgrelay]. auth_file is resolved against the directory of cfg.source and read into
// cfg.auth_users; a file that cannot be read or parsed is an error at the auth_file key that
// also names the file and its line.
void read_auth_settings(TableReader& r, Config& cfg);

// The top-level [[hba]] array of tables, in order, into cfg.hba.
void read_hba_rules(const toml::node& node, Diagnostics& diag, Config& cfg);

}  // namespace pgrelay::conf
