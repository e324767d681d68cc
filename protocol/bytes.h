// Big-endian readers and writers for PostgreSQL wire values over std::byte buffers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace pgrelay::protocol {

using Buffer = std::vector<std::byte>;
using Bytes = std::span<const std::byte>;

inline Bytes as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}
inline std::string_view as_string_view(Bytes b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

inline uint32_t load_u32(const std::byte* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}
inline uint16_t load_u16(const std::byte* p) { return uint16_t((uint32_t(p[0]) << 8) | uint32_t(p[1])); }

// Appends wire values to a Buffer. Messages are written with begin()/end(), which
// patch the length field once the body is known.
class Writer {
 public:
  explicit Writer(Buffer& out) : out_(out) {}

  void u8(uint8_t v) { out_.push_back(std::byte(v)); }
  void i16(int16_t v);
  void i32(int32_t v);
  void bytes(Bytes b) { out_.insert(out_.end(), b.begin(), b.end()); }
  void str(std::string_view s) { bytes(as_bytes(s)); }
  void cstr(std::string_view s) { str(s); u8(0); }   // NUL-terminated String

  // Starts a typed message (type byte + length placeholder); returns a mark for end().
  size_t begin(char type);
  // Starts an untyped (startup-phase) packet: length placeholder only.
  size_t begin_untyped();
  // Patches the length of the message begun at `mark`.
  void end(size_t mark);

 private:
  Buffer& out_;
};

// Bounds-checked reader over one message body. Every getter returns false (and
// leaves the reader failed) instead of reading past the end.
class Reader {
 public:
  explicit Reader(Bytes in) : in_(in) {}

  bool u8(uint8_t& v);
  bool i16(int16_t& v);
  bool i32(int32_t& v);
  bool bytes(size_t n, Bytes& v);
  bool cstr(std::string_view& v);  // up to (not including) the NUL, which is consumed
  Bytes rest();                    // everything left; the reader is then at the end

  size_t remaining() const { return in_.size() - pos_; }
  bool at_end() const { return pos_ == in_.size(); }
  bool failed() const { return failed_; }

 private:
  bool fail() { failed_ = true; return false; }
  Bytes in_;
  size_t pos_ = 0;
  bool failed_ = false;
};

}  // namespace pgrelay::protocol
