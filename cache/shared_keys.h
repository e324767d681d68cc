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
// generation would read 0 again and make an answer read before a write current again. Where
// Redis may have lost some writes and kept others (a restart from an older snapshot, a Sentinel
// failover to a replica that lagged), pgrelay names the hash anew itself (SharedTier::pay_owed).
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
// The database whose versions hash `name` is (the reverse of generations_key_name), or nullopt.
[[nodiscard]] std::optional<DatabaseId> generations_key_database(std::string_view prefix, std::string_view name);
[[nodiscard]] std::string windows_key_name(std::string_view prefix, DatabaseId database);
// A table's field in its database's hash: 16 hex digits.
[[nodiscard]] std::string table_field(TableId table);

// The channel every instance of a cluster publishes its bumps on: "<prefix>:inv". What an
// instance hears there it applies to its own memory tier (its entries go stale at once instead
// of at their next confirmation). The channel is an early warning, not the guarantee: every hit
// is still confirmed against the versions hash, so a lost message costs memory, never a stale
// answer.
[[nodiscard]] std::string invalidation_channel_name(std::string_view prefix);

// One published bump, as text: "2 <instance> <seq> <database> <unix ms> <tables>", where
// <tables> is the tables' fields joined by ',', '*' for the whole database (its epoch), 'S' for
// the whole database after a change that may have changed its schema (DDL, CALL, DO: the
// receivers drop their catalog facts too), or 'W' for the whole database and a CALL/DO window
// opened or renewed there (cache/lease_book.h).
// <seq> (decimal, 0: none) asks every instance that applies it to acknowledge it
// (cache/lease_messages.h). The format before leases, "1 <instance> <database> <unix ms>
// <tables>" (no seq, no window), is still read, so a rolling upgrade keeps invalidating.
struct Invalidation {
  std::string instance;          // who bumped (a random id per process)
  DatabaseId database{};
  uint64_t sent_unix_ms = 0;     // the sender's clock, for the lag
  bool whole_database = false;
  std::vector<TableId> tables;   // when not whole_database
  uint64_t seq = 0;              // the sender's bump number, to acknowledge; 0: not asked
  bool window = false;           // a window (implies whole_database)
  bool schema = false;           // the schema may have changed (implies whole_database)
  bool before_leases = false;    // decoded from the "1" format: its sender never waits for acknowledgements
};
[[nodiscard]] std::string encode_invalidation(const Invalidation& m);
// nullopt for anything else (another format version, a malformed message): ignored.
[[nodiscard]] std::optional<Invalidation> decode_invalidation(std::string_view text);

// For the channel's messages: the next space-separated word of `text`, consumed; a decimal
// number that is the whole of `text`.
std::string_view next_word(std::string_view& text);
[[nodiscard]] bool parse_decimal(std::string_view text, uint64_t& out);

}  // namespace pgrelay::cache
