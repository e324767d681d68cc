// The Redis tier's value format: encoding, and decoding that trusts nothing it reads.
#include "cache/shared_value.h"

#include <openssl/sha.h>
#include <xxhash.h>

#include <cstring>

namespace pgrelay::cache {
namespace {

constexpr std::array<std::byte, 4> kMagic = {std::byte{'p'}, std::byte{'g'}, std::byte{'R'}, std::byte{'c'}};
constexpr uint8_t kFlagLz4 = 1;
constexpr size_t kTableBytes = 16;

void put(std::byte* at, uint64_t v, size_t bytes) {
  for (size_t i = 0; i < bytes; ++i) at[i] = std::byte(uint8_t(v >> (8 * i)));
}

uint64_t get(const std::byte* at, size_t bytes) {
  uint64_t v = 0;
  for (size_t i = 0; i < bytes; ++i) v |= uint64_t(std::to_integer<uint8_t>(at[i])) << (8 * i);
  return v;
}

constexpr size_t kChecksumAt = 88;

// XXH3-64 of the value but its checksum field.
uint64_t checksum(std::span<const std::byte> value) {
  const uint64_t head = XXH3_64bits(value.data(), kChecksumAt);
  return XXH3_64bits_withSeed(value.data() + kChecksumAt + 8, value.size() - kChecksumAt - 8, head);
}

}  // namespace

KeyDigest key_digest(std::span<const std::byte> key) {
  KeyDigest out;
  SHA256(reinterpret_cast<const unsigned char*>(key.data()), key.size(), reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

bool SharedValueMeta::expired(uint64_t now_unix_ms) const {
  if (filled_at_unix_ms > now_unix_ms) return filled_at_unix_ms - now_unix_ms >= ttl_ms;
  return now_unix_ms - filled_at_unix_ms >= ttl_ms;
}

std::vector<std::byte> encode_shared_value(const SharedValueMeta& meta, const StoredResponse& response) {
  const size_t tables = meta.reads.tables.size();
  std::vector<std::byte> out(kSharedValueHeaderBytes + tables * kTableBytes + response.bytes.size());
  std::byte* p = out.data();
  std::memcpy(p, kMagic.data(), kMagic.size());
  put(p + 4, kSharedValueVersion, 1);
  put(p + 5, response.compressed ? kFlagLz4 : 0, 1);
  put(p + 6, 0, 2);
  put(p + 8, tables, 4);
  put(p + 12, response.raw_size, 4);
  put(p + 16, response.bytes.size(), 4);
  put(p + 20, meta.ttl_ms, 4);
  put(p + 24, meta.fingerprint, 8);
  put(p + 32, meta.filled_at_unix_ms, 8);
  put(p + 40, static_cast<uint64_t>(meta.reads.database), 8);
  put(p + 48, meta.reads.epoch, 8);
  std::memcpy(p + 56, meta.key.data(), meta.key.size());
  std::byte* t = p + kSharedValueHeaderBytes;
  for (const TableGeneration& g : meta.reads.tables) {
    put(t, static_cast<uint64_t>(g.table), 8);
    put(t + 8, g.generation, 8);
    t += kTableBytes;
  }
  if (!response.bytes.empty()) std::memcpy(t, response.bytes.data(), response.bytes.size());
  put(p + kChecksumAt, checksum(out), 8);
  return out;
}

SharedValueStatus decode_shared_value(std::span<const std::byte> value, const KeyDigest& expected_key,
                                      size_t max_raw_size, DecodedSharedValue& out) {
  // Magic and version first: a value of another format may be shorter than this one's header.
  if (value.size() < kMagic.size()) return SharedValueStatus::kTruncated;
  if (std::memcmp(value.data(), kMagic.data(), kMagic.size()) != 0) return SharedValueStatus::kBadMagic;
  if (value.size() < 5) return SharedValueStatus::kTruncated;
  if (get(value.data() + 4, 1) != kSharedValueVersion) return SharedValueStatus::kWrongVersion;
  if (value.size() < kSharedValueHeaderBytes) return SharedValueStatus::kTruncated;
  const std::byte* p = value.data();
  const uint64_t flags = get(p + 5, 1);
  if ((flags & ~uint64_t{kFlagLz4}) != 0 || get(p + 6, 2) != 0) return SharedValueStatus::kUnknownFlags;
  const bool compressed = (flags & kFlagLz4) != 0;
  const uint64_t tables = get(p + 8, 4);
  const size_t raw_size = get(p + 12, 4);
  const size_t payload_size = get(p + 16, 4);

  const uint64_t expected_size = kSharedValueHeaderBytes + tables * kTableBytes + payload_size;   // < 2^37
  if (value.size() < expected_size) return SharedValueStatus::kTruncated;
  if (value.size() > expected_size) return SharedValueStatus::kTrailing;
  if (checksum(value) != get(p + kChecksumAt, 8)) return SharedValueStatus::kCorrupt;
  if (raw_size > max_raw_size) return SharedValueStatus::kBadSizes;
  if (compressed ? (payload_size == 0 || payload_size >= raw_size) : payload_size != raw_size) {
    return SharedValueStatus::kBadSizes;
  }
  SharedValueMeta meta;
  std::memcpy(meta.key.data(), p + 56, meta.key.size());
  if (meta.key != expected_key) return SharedValueStatus::kWrongKey;
  meta.ttl_ms = static_cast<uint32_t>(get(p + 20, 4));
  meta.fingerprint = get(p + 24, 8);
  meta.filled_at_unix_ms = get(p + 32, 8);
  meta.reads.database = DatabaseId{get(p + 40, 8)};
  meta.reads.epoch = get(p + 48, 8);

  const std::byte* t = p + kSharedValueHeaderBytes;
  meta.reads.tables.resize(tables);
  for (TableGeneration& g : meta.reads.tables) {
    g.table = TableId{get(t, 8)};
    g.generation = get(t + 8, 8);
    t += kTableBytes;
  }
  StoredResponse response;
  response.bytes.assign(t, t + payload_size);
  response.raw_size = raw_size;
  response.compressed = compressed;
  std::vector<std::byte> raw;
  if (!unpack_response(response, raw)) return SharedValueStatus::kCorrupt;

  out.meta = std::move(meta);
  out.response = std::move(response);
  out.raw = std::move(raw);
  return SharedValueStatus::kUsable;
}

const char* to_string(SharedValueStatus s) {
  switch (s) {
    case SharedValueStatus::kUsable: return "usable";
    case SharedValueStatus::kTruncated: return "truncated";
    case SharedValueStatus::kTrailing: return "trailing bytes";
    case SharedValueStatus::kBadMagic: return "not a pgrelay value";
    case SharedValueStatus::kWrongVersion: return "another format version";
    case SharedValueStatus::kUnknownFlags: return "unknown flags";
    case SharedValueStatus::kBadSizes: return "bad sizes";
    case SharedValueStatus::kCorrupt: return "corrupt";
    case SharedValueStatus::kWrongKey: return "another key's value";
  }
  return "?";
}

}  // namespace pgrelay::cache
