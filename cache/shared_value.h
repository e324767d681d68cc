// What the Redis tier holds for one cached answer: a versioned header and the answer's bytes.
//
// Values are shared by every pgrelay of a cluster, possibly of different versions, and Redis
// may hand back anything (a value of another format, a key written by hand, a truncated value):
// decoding checks every length, the magic, the format version, the flags, the LZ4 block's size
// and a checksum of the answer, and a value that fails any check is "not usable" (a miss),
// never misread. Pure: no clock is read here (callers pass unix milliseconds), no I/O.
//
// Layout, little-endian, version 1 (96 bytes, then the tables, then the payload):
//    0 magic "pgRc"         4      24 fingerprint          8      56 key digest (SHA-256)  32
//    4 format version       1      32 fill time, unix ms   8      88 checksum              8
//    5 flags (bit 0: LZ4)   1      40 database id          8      96 tables: (id, generation),
//    6 reserved (0)         2      48 database epoch       8         16 bytes each
//    8 table count          4                                        payload: the answer's backend
//   12 raw size             4                                        messages, or one LZ4 block
//   16 payload size         4                                        of them
//   20 TTL ms               4
// The checksum is XXH3-64 of every other byte of the value.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "cache/entry.h"
#include "cache/generations.h"

namespace pgrelay::cache {

inline constexpr uint8_t kSharedValueVersion = 1;
inline constexpr size_t kSharedValueHeaderBytes = 96;   // before the tables

// SHA-256 of a CacheKey's bytes: the value's proof that it answers this key and no other (the
// key name holds only a 128-bit hash of it; see shared_keys.h).
using KeyDigest = std::array<std::byte, 32>;
[[nodiscard]] KeyDigest key_digest(std::span<const std::byte> key);

struct SharedValueMeta {
  KeyDigest key{};
  uint64_t fingerprint = 0;         // the statement's, for flushing one query's answers
  uint64_t filled_at_unix_ms = 0;   // when its fill started
  uint32_t ttl_ms = 0;              // served until filled_at + ttl
  ReadSet reads;                    // database epoch and table generations when the fill started

  // True once the answer is past its TTL at `now_unix_ms` (or claims a fill time that far ahead
  // of this clock: another instance's clock, trusted no further than the TTL).
  [[nodiscard]] bool expired(uint64_t now_unix_ms) const;
};

// The value for an answer already packed for the memory tier (cache/entry.h's pack_response, so
// one fill compresses once for both tiers).
[[nodiscard]] std::vector<std::byte> encode_shared_value(const SharedValueMeta& meta, const StoredResponse& response);

enum class SharedValueStatus {
  kUsable,
  kTruncated,      // shorter than its header, its tables or its payload say
  kTrailing,       // longer than they say
  kBadMagic,       // not a pgrelay value
  kWrongVersion,   // another format version: ignored, never misread
  kUnknownFlags,   // a flag this version does not know
  kBadSizes,       // raw and payload sizes disagree with the flags, or the raw size is over the limit
  kCorrupt,        // the checksum differs, or the LZ4 block does not decode to exactly the raw size
  kWrongKey,       // the value of another key (a 128-bit name collision): not this key's answer
};
[[nodiscard]] const char* to_string(SharedValueStatus s);

struct DecodedSharedValue {
  SharedValueMeta meta;
  StoredResponse response;         // as stored (compressed or not): what the memory tier keeps
  std::vector<std::byte> raw;      // the backend messages to replay
};

// Decodes `value` written for the key whose digest is `expected_key`, refusing answers larger
// than `max_raw_size` (before allocating for them). `out` is complete only with kUsable.
[[nodiscard]] SharedValueStatus decode_shared_value(std::span<const std::byte> value, const KeyDigest& expected_key,
                                                    size_t max_raw_size, DecodedSharedValue& out);

}  // namespace pgrelay::cache
