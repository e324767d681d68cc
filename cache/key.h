// A cache key: every input that can change a read's answer, as one unambiguous byte string.
//
// The caller adds the fields (database, user, the session's settings, the statement text,
// parameter types, formats and values, result formats, the protocol shape); each is written as
// a tag, a length and its bytes, with a distinct length for NULL, so no two different field
// lists make the same bytes ("ab" + "c" is not "a" + "bc", NULL is not ''). The store compares
// the whole byte string on lookup; the hash only picks a shard and a bucket. Pure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace pgrelay::cache {

struct CacheKey {
  std::vector<std::byte> bytes;
  uint64_t hash = 0;   // XXH3-64 of bytes
};

class KeyBuilder {
 public:
  KeyBuilder() = default;
  // Starts with fields added earlier (a prefix many keys share: bytes() of another builder).
  explicit KeyBuilder(std::vector<std::byte> prefix) : bytes_(std::move(prefix)) {}
  const std::vector<std::byte>& bytes() const { return bytes_; }
  KeyBuilder& add(char tag, std::string_view value);
  KeyBuilder& add(char tag, std::span<const std::byte> value);
  KeyBuilder& add_null(char tag);
  KeyBuilder& add(char tag, uint32_t value);
  // Takes the bytes: the builder is empty afterwards.
  CacheKey finish();

 private:
  void header(char tag, uint32_t length);
  std::vector<std::byte> bytes_;
};

}  // namespace pgrelay::cache
