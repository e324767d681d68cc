// Internal to conf/: how the conf room builds an Error (one SQLSTATE for every config problem).
#pragma once

#include <string>
#include <utility>

#include "protocol/result.h"

namespace pgrelay::conf {

// PostgreSQL's config_file_error class; the proxy never sends these to clients, but an Error
// needs a code and this one says what happened.
inline constexpr const char* kConfigFileError = "F0000";

inline pgrelay::Error config_error(std::string message) {
  return pgrelay::Error{kConfigFileError, std::move(message)};
}

}  // namespace pgrelay::conf
