// The Redis tier's key names: one namespace per pgrelay cluster (redis_key_prefix), then the kind.
// Also the invalidation channel and its messages (below).
//
//   <prefix>:a<version>:<database>:<key hash>   an answer (cache/shared_value.h's format <version>)
//   <prefix>:w:<database>                       CALL/DO windows open on the database: a sorted set,
//                                                 one member per holding worker, scored by when
//                                                 its hold lapses (unix ms; renewed while held)
//   <prefix>:g:<database>                       the database's versions: one hash, fields
//                                                 "id"      who made the hash (random, HSETNX)
//                                                 "e"       the database's epoch (HINCRBY)
//                                                 <table>   a table's generation (HINCRBY)
//
// The versions of a database live in one hash so that Redis can only lose them all together
// (an eviction, a FLUSHALL, a restart without persistence): then "id" is gone, the next reader
// makes a new one, and every answer read under the old id is stale. Lost one by one, a
// generation would read 0 again and make an answer read before a write current again.
//
// <database> and <table> are the DatabaseId and TableId the cache already uses (hashes of the
// server database's identity and of a table's OID with it), as 16 hex digits, so every instance
// of the cluster that reaches a database under the same identity names its keys alike, and
// one database's keys are found with the glob "<prefix>:*:<database>*". Answer names carry the
// format version, so two pgrelay versions in one cluster (a rolling upgrade) keep apart instead
// of overwriting each other's answers; the value's own version check stays the last word.
//
// <key hash> is the XXH3-128 of the whole CacheKey (32 hex digits): names stay short (a key is
// ~600 bytes) and of one length. Collisions: among n answers stored at once, two names collide
// with probability about n^2 / 2^129 (2e-21 for a billion answers), and even then nothing wrong
// is served: the value holds the SHA-256 of the whole key (shared_value.h), checked on every
// read, so a colliding name is a miss. XXH3 is not collision-resistant against an adversary who
// crafts statement texts; SHA-256 is, which is why the check is not a second XXH3. Pure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cache/generations.h"

namespace pgrelay::cache {

// `prefix` is redis_key_prefix (conf/ checks it holds no glob characters); `key` a CacheKey's bytes.
[[nodiscard]] std::string answer_key_name(std::string_view prefix, DatabaseId database, std::span<const std::byte> key);
[[nodiscard]] std::string generations_key_name(std::string_view prefix, DatabaseId database);
[[nodiscard]] std::string windows_key_name(std::string_view prefix, DatabaseId database);
// A table's field in its database's hash: 16 hex digits.
[[nodiscard]] std::string table_field(TableId table);

// The channel every instance of a cluster publishes its bumps on: "<prefix>:inv". What an
// instance hears there it applies to its own memory tier (its entries go stale at once instead
// of at their next confirmation). The channel is an early warning, not the guarantee: every hit
// is still confirmed against the versions hash, so a lost message costs memory, never a stale
// answer.
[[nodiscard]] std::string invalidation_channel_name(std::string_view prefix);

// One published bump, as text: "1 <instance> <database> <unix ms> <tables>", where <tables> is
// the tables' fields joined by ',' or '*' for the whole database (its epoch).
struct Invalidation {
  std::string instance;          // who bumped (a random id per process: its own messages are skipped)
  DatabaseId database{};
  uint64_t sent_unix_ms = 0;     // the sender's clock, for the lag
  bool whole_database = false;
  std::vector<TableId> tables;   // when not whole_database
};
[[nodiscard]] std::string encode_invalidation(const Invalidation& m);
// nullopt for anything else (another format version, a malformed message): ignored.
[[nodiscard]] std::optional<Invalidation> decode_invalidation(std::string_view text);

}  // namespace pgrelay::cache
