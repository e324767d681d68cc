// Small helpers shared by the client session's files.
#pragma once

#include <string>

#include "protocol/error_fields.h"
#include "protocol/messages.h"

namespace pgrelay::proxy {

inline protocol::ErrorSpec fatal(std::string sqlstate, std::string message) {
  return {"FATAL", std::move(sqlstate), std::move(message), "", ""};
}

}  // namespace pgrelay::proxy
