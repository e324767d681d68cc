// A request answered without a server (ClientSession::decide(), client_forward.cc).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "analyzer/session_state.h"
#include "protocol/error_fields.h"

namespace pgrelay::proxy {

// The reply fails the request at message `at` with `error`, or (no error) completes its one
// command with `tag`. Once written: the client's statement `forget` is forgotten, a refusal of
// `refused` counted.
struct LocalAnswer {
  uint32_t at = 0;
  std::optional<protocol::ErrorSpec> error = {};
  std::string tag = {};
  std::string forget = {};
  std::optional<analyzer::EffectKind> refused = {};
  std::optional<analyzer::Effect> listen = {};   // LISTEN/UNLISTEN for the ListenHub, done before the reply
  std::shared_ptr<const std::vector<std::byte>> cached = {};   // a cache hit: the messages to replay before ReadyForQuery
};

}  // namespace pgrelay::proxy
