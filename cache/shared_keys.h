// The Redis tier's key names: one namespace per pgrelay cluster (redis_key_prefix), then the kind.
//
//   <prefix>:a<version>:<database>:<key hash>   an answer (cache/shared_value.h's format <version>)
//   <prefix>:g:<database>:<table>               a table's generation (an integer, INCR)
//   <prefix>:e:<database>                       a database's epoch (an integer, INCR)
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
#include <span>
#include <string>
#include <string_view>

#include "cache/generations.h"

namespace pgrelay::cache {

// `prefix` is redis_key_prefix (conf/ checks it holds no glob characters); `key` a CacheKey's bytes.
[[nodiscard]] std::string answer_key_name(std::string_view prefix, DatabaseId database, std::span<const std::byte> key);
[[nodiscard]] std::string generation_key_name(std::string_view prefix, DatabaseId database, TableId table);
[[nodiscard]] std::string epoch_key_name(std::string_view prefix, DatabaseId database);

}  // namespace pgrelay::cache
