// The Redis tier's key names.
#include "cache/shared_keys.h"

#include <xxhash.h>

#include "cache/shared_value.h"

namespace pgrelay::cache {
namespace {

void append_hex(std::string& out, uint64_t v) {
  static constexpr char kDigits[] = "0123456789abcdef";
  for (int shift = 60; shift >= 0; shift -= 4) out += kDigits[(v >> shift) & 0xf];
}

std::string start(std::string_view prefix, std::string_view kind, DatabaseId database) {
  std::string out;
  out.reserve(prefix.size() + kind.size() + 56);
  out.append(prefix).append(":").append(kind).append(":");
  append_hex(out, static_cast<uint64_t>(database));
  return out;
}

}  // namespace

std::string answer_key_name(std::string_view prefix, DatabaseId database, std::span<const std::byte> key) {
  std::string out = start(prefix, "a" + std::to_string(kSharedValueVersion), database);
  const XXH128_hash_t h = XXH3_128bits(key.data(), key.size());
  out += ':';
  append_hex(out, h.high64);
  append_hex(out, h.low64);
  return out;
}

std::string generations_key_name(std::string_view prefix, DatabaseId database) { return start(prefix, "g", database); }

std::string table_field(TableId table) {
  std::string out;
  append_hex(out, static_cast<uint64_t>(table));
  return out;
}

}  // namespace pgrelay::cache
