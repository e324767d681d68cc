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
// Instances are the channel's ids: 32 random hex digits, then "." and the instance's lease length
// in ms (redis_lease; an id without it is a pgrelay of before the key, whose lease was 300 ms), so
// every instance knows how long each other one may serve under a lease. Ids, seqs and databases
// decimal. A pgrelay
// that knows no "E" ignores it: its hold lapses instead. Pure.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cache/generations.h"

namespace pgrelay::cache {

// "<random>.<lease ms>", and the lease length an instance id says (300 ms when it says none; at
// most 60 s, whatever it says).
[[nodiscard]] std::string lease_instance_id(std::string_view random, std::chrono::milliseconds lease);
[[nodiscard]] std::chrono::milliseconds instance_lease_length(std::string_view instance);

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
