// Big-endian wire values: the out-of-line parts of Writer and Reader.
#include "protocol/bytes.h"

#include <cstring>

namespace pgrelay::protocol {

void Writer::i16(int16_t v) {
  auto u = uint16_t(v);
  out_.push_back(std::byte(u >> 8));
  out_.push_back(std::byte(u & 0xff));
}

void Writer::i32(int32_t v) {
  auto u = uint32_t(v);
  out_.push_back(std::byte(u >> 24));
  out_.push_back(std::byte((u >> 16) & 0xff));
  out_.push_back(std::byte((u >> 8) & 0xff));
  out_.push_back(std::byte(u & 0xff));
}

size_t Writer::begin(char type) {
  u8(uint8_t(type));
  return begin_untyped();
}

size_t Writer::begin_untyped() {
  size_t mark = out_.size();
  i32(0);  // patched by end() once the body length is known
  return mark;
}

void Writer::end(size_t mark) {
  // The length counts itself but not the type byte, which sits before `mark`.
  auto len = uint32_t(out_.size() - mark);
  out_[mark] = std::byte(len >> 24);
  out_[mark + 1] = std::byte((len >> 16) & 0xff);
  out_[mark + 2] = std::byte((len >> 8) & 0xff);
  out_[mark + 3] = std::byte(len & 0xff);
}

bool Reader::u8(uint8_t& v) {
  if (failed_ || remaining() < 1) return fail();
  v = uint8_t(in_[pos_++]);
  return true;
}

bool Reader::i16(int16_t& v) {
  if (failed_ || remaining() < 2) return fail();
  v = int16_t(load_u16(&in_[pos_]));
  pos_ += 2;
  return true;
}

bool Reader::i32(int32_t& v) {
  if (failed_ || remaining() < 4) return fail();
  v = int32_t(load_u32(&in_[pos_]));
  pos_ += 4;
  return true;
}

bool Reader::bytes(size_t n, Bytes& v) {
  if (failed_ || remaining() < n) return fail();
  v = in_.subspan(pos_, n);
  pos_ += n;
  return true;
}

bool Reader::cstr(std::string_view& v) {
  if (failed_) return false;
  auto rest = in_.subspan(pos_);
  // memchr, not std::find: statement texts are read here, every byte of every Query and Parse.
  const void* nul = rest.empty() ? nullptr : std::memchr(rest.data(), 0, rest.size());
  if (nul == nullptr) return fail();
  size_t len = size_t(static_cast<const std::byte*>(nul) - rest.data());
  v = as_string_view(rest.first(len));
  pos_ += len + 1;
  return true;
}

Bytes Reader::rest() {
  if (failed_) return {};
  auto r = in_.subspan(pos_);
  pos_ = in_.size();
  return r;
}

}  // namespace pgrelay::protocol
