// Cache keys: tagged, length-prefixed fields, hashed with XXH3-64.
#include "cache/key.h"

#include <xxhash.h>

#include <cstring>

namespace pgrelay::cache {
namespace {

constexpr uint32_t kNullLength = 0xFFFFFFFFu;   // no real field is 4 GiB long

}  // namespace

void KeyBuilder::header(char tag, uint32_t length) {
  const size_t at = bytes_.size();
  bytes_.resize(at + 5);
  bytes_[at] = static_cast<std::byte>(tag);
  for (int i = 0; i < 4; ++i) bytes_[at + 1 + i] = static_cast<std::byte>(length >> (24 - 8 * i));
}

KeyBuilder& KeyBuilder::add(char tag, std::string_view value) {
  return add(tag, std::as_bytes(std::span<const char>(value.data(), value.size())));
}

KeyBuilder& KeyBuilder::add(char tag, std::span<const std::byte> value) {
  header(tag, static_cast<uint32_t>(value.size()));
  bytes_.insert(bytes_.end(), value.begin(), value.end());
  return *this;
}

KeyBuilder& KeyBuilder::add_null(char tag) {
  header(tag, kNullLength);
  return *this;
}

KeyBuilder& KeyBuilder::add(char tag, uint32_t value) {
  std::byte be[4];
  for (int i = 0; i < 4; ++i) be[i] = static_cast<std::byte>(value >> (24 - 8 * i));
  return add(tag, std::span<const std::byte>(be, 4));
}

CacheKey KeyBuilder::finish() {
  CacheKey key;
  key.hash = XXH3_64bits(bytes_.data(), bytes_.size());
  key.bytes = std::move(bytes_);
  bytes_.clear();
  return key;
}

}  // namespace pgrelay::cache
