// Loading a Config: TOML file (toml++) + environment overrides, validated.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "conf/config.h"
#include "protocol/result.h"

namespace pgrelay::conf {

// The environment variables that change a loaded config (passed in so tests need no setenv).
struct Environment {
  std::optional<std::string> database_url;     // DATABASE_URL
  std::optional<std::string> listen;           // PGRELAY_LISTEN, "host:port" or ":port" or "port"
  std::optional<std::string> config_path;      // PGRELAY_CONFIG
  std::optional<std::string> redis_url;        // REDIS_URL: [cache] redis_url when the file has none

  static Environment from_process();           // reads getenv()
};

// Parses TOML text. `source` names it in errors ("pgrelay.toml"). Every error message has the
// form "<source>:<line>: <key>: <what was expected>, got <what was found>"; unknown keys are
// errors too (a typo must not be silently ignored).
pgrelay::Result<Config> parse_config(const std::string& toml_text, const std::string& source);

// Reads and parses a file. A missing or unreadable file is an error naming the path.
pgrelay::Result<Config> load_config_file(const std::string& path);

// Applies DATABASE_URL and PGRELAY_LISTEN on top of `base`:
//  - DATABASE_URL=postgresql://user:pass@host:port/dbname adds (or replaces) databases[dbname]
//    with that host/port/dbname/user/password, and adds a "*" fallback to the same host/port
//    (no forced user, same password) unless the config has one.
//  - PGRELAY_LISTEN overrides listen_addr/listen_port.
//  - REDIS_URL is [cache] redis_url when the file does not set it.
pgrelay::Result<Config> apply_environment(Config base, const Environment& env);

// The whole start-up path: file from `path` (else env.config_path, else defaults), then env.
pgrelay::Result<Config> load_config(const std::optional<std::string>& path, const Environment& env);

}  // namespace pgrelay::conf
