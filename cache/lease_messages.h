// The lease messages on the invalidation channel (cache/lease_book.h), next to the bumps
// (cache/shared_keys.h's Invalidation), as text:
//   "L <instance> <id>"                         a lease ping: the instance renews its lease when
//                                               it hears it back; the others learn it is live
//   "A <instance> <to> <seq>,<seq>... [<to> <seq>,...]..."
//                                               `instance` applied those bumps of each `to`
//   "E <instance> <database> <end>"             `instance` holds no CALL/DO window on
//                                               `database` now (all it opened before its
//                                               number `end` are over) and bumped its epoch:
//                                               the others lift their hold (LeaseBook::window_ended)
// Instances are the channel's ids (32 hex digits), ids, seqs and databases decimal. A pgrelay
// that knows no "E" ignores it: its hold lapses instead. Pure.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cache/generations.h"

namespace pgrelay::cache {

struct LeasePing {
  std::string instance;
  uint64_t id = 0;
};
[[nodiscard]] std::string encode_lease_ping(const LeasePing& m);
[[nodiscard]] std::optional<LeasePing> decode_lease_ping(std::string_view text);

struct LeaseAck {
  std::string instance;   // who applied them
  std::vector<std::pair<std::string, std::vector<uint64_t>>> bumps;   // whose, and which
};
[[nodiscard]] std::string encode_lease_ack(const LeaseAck& m);
[[nodiscard]] std::optional<LeaseAck> decode_lease_ack(std::string_view text);

struct WindowEnd {
  std::string instance;
  DatabaseId database{};
  uint64_t end = 0;
};
[[nodiscard]] std::string encode_window_end(const WindowEnd& m);
[[nodiscard]] std::optional<WindowEnd> decode_window_end(std::string_view text);

}  // namespace pgrelay::cache
