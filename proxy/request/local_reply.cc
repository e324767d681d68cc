// Replies written without a server.
#include "proxy/request/local_reply.h"

#include "protocol/messages.h"

namespace pgrelay::proxy {
namespace {

namespace fe = protocol::frontend;
namespace be = protocol::backend;

void append_empty(char type, protocol::Buffer& out) {
  protocol::Writer w(out);
  w.end(w.begin(type));
}

}  // namespace

bool encode_command_reply(std::span<const char> types, std::string_view tag, char tx_status, protocol::Buffer& out) {
  for (char t : types) {
    switch (t) {
      case fe::kQuery: case fe::kParse: case fe::kBind: case fe::kDescribe: case fe::kExecute: case fe::kSync:
      case fe::kFlush:
        break;
      default:
        return false;
    }
  }
  for (char t : types) {
    switch (t) {
      case fe::kParse: append_empty(be::kParseComplete, out); break;
      case fe::kBind: append_empty(be::kBindComplete, out); break;
      case fe::kDescribe: append_empty(be::kNoData, out); break;
      case fe::kQuery:
        protocol::encode(protocol::CommandComplete{tag}, out);
        protocol::encode(protocol::ReadyForQuery{tx_status}, out);
        break;
      case fe::kExecute: protocol::encode(protocol::CommandComplete{tag}, out); break;
      case fe::kSync: protocol::encode(protocol::ReadyForQuery{tx_status}, out); break;
      default: break;   // Flush
    }
  }
  return true;
}

bool encode_error_reply(std::span<const char> types, size_t error_at, const protocol::ErrorSpec& error, char tx_status,
                        protocol::Buffer& out) {
  if (error_at >= types.size()) return false;
  for (size_t i = 0; i < error_at; ++i) {
    switch (types[i]) {
      case fe::kParse: case fe::kBind: case fe::kClose: case fe::kFlush: break;
      default: return false;
    }
  }
  for (size_t i = 0; i < error_at; ++i) {
    switch (types[i]) {
      case fe::kParse: append_empty(be::kParseComplete, out); break;
      case fe::kBind: append_empty(be::kBindComplete, out); break;
      case fe::kClose: append_empty(be::kCloseComplete, out); break;
      default: break;   // Flush
    }
  }
  protocol::encode_error_response(error, out);
  if (error.severity == "FATAL" || error.severity == "PANIC") return true;
  const char after = status_after_error(tx_status);
  if (types[error_at] == fe::kQuery || types[error_at] == fe::kFunctionCall) {
    protocol::encode(protocol::ReadyForQuery{after}, out);
    return true;
  }
  // Extended: skipped up to the Sync, which is answered (also when it is the failing message);
  // a batch without one yet gets nothing more.
  for (size_t i = error_at; i < types.size(); ++i) {
    if (types[i] != fe::kSync) continue;
    protocol::encode(protocol::ReadyForQuery{after}, out);
    return true;
  }
  return true;
}

}  // namespace pgrelay::proxy
