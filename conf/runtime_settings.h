// The [pgrelay] keys (and [cache]'s Sentinel keys, as "cache.NAME") as the admin console sees them:
// SHOW CONFIG rows and SET key = value.
//
// SET validates a value exactly as the config file would (it parses "[pgrelay] key = value"
// with the same loader) and returns a new Config with that one key changed; the caller swaps it
// in like a reload. Only keys that take effect for new clients and pools without a restart may
// be SET; the others are refused with a message naming the ones that can. A later RELOAD
// re-reads the file and drops what SET changed (as PgBouncer does). Pure: no I/O.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "conf/config.h"
#include "protocol/result.h"

namespace pgrelay::conf {

struct SettingRow {
  std::string key;
  std::string value;        // as TOML would spell it, without quotes ("30s", "transaction", "6432")
  std::string default_value;
  bool changeable = false;  // SET may change it at run time
};

// Every [pgrelay] key and [cache]'s redis_lease (as "cache.redis_lease", never SET), in
// alphabetical order, with its value in `config` and its default.
std::vector<SettingRow> setting_rows(const Config& config);

// The keys SET accepts, alphabetical.
std::vector<std::string> changeable_keys();

// `current` with `key` (lower case) set to `toml_value` (a TOML literal: 5, "30s", "info").
// Errors: 42601 for an unknown key, 55P02 (cant_change_runtime_param) for one that needs a
// reload or restart, 22023 (invalid_parameter_value) with the loader's message for a bad value.
pgrelay::Result<Config> apply_setting(const Config& current, std::string_view key, std::string_view toml_value);

// A duration as a config file would write it: "250ms", "30s", "0".
std::string format_duration(Duration d);

}  // namespace pgrelay::conf
