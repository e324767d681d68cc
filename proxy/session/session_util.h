// Small helpers shared by client_session.cc and client_forward.cc.
#pragma once

#include <string>

#include "protocol/error_fields.h"
#include "protocol/messages.h"

namespace pgrelay::proxy {

inline protocol::ErrorSpec fatal(std::string sqlstate, std::string message) {
  return {"FATAL", std::move(sqlstate), std::move(message), "", ""};
}

// Message types a client may send after startup.
inline bool is_frontend_type(char t) {
  namespace fe = protocol::frontend;
  switch (t) {
    case fe::kQuery: case fe::kParse: case fe::kBind: case fe::kDescribe: case fe::kExecute:
    case fe::kSync: case fe::kFlush: case fe::kClose: case fe::kTerminate: case fe::kCopyData:
    case fe::kCopyDone: case fe::kCopyFail: case fe::kFunctionCall:
      return true;
    default:
      return false;
  }
}

}  // namespace pgrelay::proxy
