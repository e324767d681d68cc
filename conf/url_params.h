// The libpq parameters a postgresql:// URL may carry (url = "...?sslmode=require",
// DATABASE_URL), as pgrelay takes them for a database entry.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "conf/tls_settings.h"
#include "protocol/result.h"

namespace pgrelay::conf {

struct UrlParams {
  std::optional<ServerTlsMode> sslmode;   // ?sslmode=: the entry's server_tls_sslmode
};

// sslmode as libpq names it (disable, prefer, require, verify-ca, verify-full; not "allow",
// which pgrelay has no equivalent of). Any other parameter is an error that names it and says
// which pgrelay setting does its job, so nothing a pasted URL asks for is silently dropped.
pgrelay::Result<UrlParams> read_url_params(const std::map<std::string, std::string>& params);

}  // namespace pgrelay::conf
