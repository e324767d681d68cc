// Internal to protocol/: the decoding and encoding helpers shared by the message codecs.
//
// Every decode_*() goes through Decoder, a Reader that remembers why a body failed, so that
// each failure becomes one 08P01 Error naming the message and the field, and so that counts
// read off the wire are checked against the bytes left before anything is allocated for them.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "protocol/bytes.h"
#include "protocol/messages.h"
#include "protocol/result.h"
#include "protocol/sqlstate.h"

namespace pgrelay::protocol::detail {

class Decoder {
 public:
  Decoder(const char* message, Bytes body) : message_(message), r_(body) {}

  bool u8(uint8_t& v, const char* what) { return r_.u8(v) || truncated(what); }
  bool i16(int16_t& v, const char* what) { return r_.i16(v) || truncated(what); }
  bool i32(int32_t& v, const char* what) { return r_.i32(v) || truncated(what); }
  bool bytes(size_t n, Bytes& v, const char* what) { return r_.bytes(n, v) || truncated(what); }
  bool cstr(std::string_view& v, const char* what) {
    if (!failed_ && r_.remaining() == 0) return truncated(what);
    return r_.cstr(v) || fail(std::string("missing NUL terminator in ") + what);
  }
  Bytes rest() { return r_.rest(); }
  size_t remaining() const { return r_.remaining(); }

  // Reads an Int16 count of elements each at least `min_size` bytes long. Rejects negative
  // counts and counts the rest of the body cannot hold, so callers may reserve(n) safely.
  bool count16(size_t& n, const char* what, size_t min_size) {
    int16_t c = 0;
    if (!i16(c, what)) return false;
    return check_count(c, n, what, min_size);
  }
  bool count32(size_t& n, const char* what, size_t min_size) {
    int32_t c = 0;
    if (!i32(c, what)) return false;
    return check_count(c, n, what, min_size);
  }

  // Int32 length then that many bytes; -1 is NULL, other negative lengths are violations.
  bool value(Value& v, const char* what) {
    int32_t len = 0;
    if (!i32(len, what)) return false;
    if (len == -1) { v.reset(); return true; }
    if (len < 0) return fail(std::string("negative length ") + std::to_string(len) + " of " + what);
    Bytes b;
    if (!bytes(size_t(len), b, what)) return false;
    v = b;
    return true;
  }

  // True when the whole body was consumed; trailing bytes mean we misread the message.
  bool end() {
    if (failed_) return false;
    if (r_.remaining() != 0) {
      return fail(std::to_string(r_.remaining()) + " unexpected trailing bytes");
    }
    return true;
  }

  bool fail(std::string why) {
    if (!failed_) { failed_ = true; why_ = std::move(why); }
    return false;
  }
  Error error() const { return {sqlstate::kProtocolViolation, std::string("invalid ") + message_ + " message: " + why_}; }

 private:
  bool truncated(const char* what) { return fail(std::string("truncated while reading ") + what); }
  bool check_count(int64_t c, size_t& n, const char* what, size_t min_size) {
    if (c < 0) return fail(std::string("negative ") + what + " " + std::to_string(c));
    if (uint64_t(c) * min_size > r_.remaining()) {
      return fail(std::string(what) + " " + std::to_string(c) + " does not fit in the remaining " +
                  std::to_string(r_.remaining()) + " bytes");
    }
    n = size_t(c);
    return true;
  }

  const char* message_;
  Reader r_;
  bool failed_ = false;
  std::string why_;
};

// Encoding side. Counts are Int16 on the wire: callers must not pass more than 32767
// elements (PostgreSQL itself cannot send or accept more).
inline void put_value(Writer& w, const Value& v) {
  if (!v) { w.i32(-1); return; }
  w.i32(int32_t(v->size()));
  w.bytes(*v);
}

inline void put_formats(Writer& w, const std::vector<int16_t>& f) {
  w.i16(int16_t(f.size()));
  for (int16_t x : f) w.i16(x);
}

inline void put_empty(char type, Buffer& out) {
  Writer w(out);
  w.end(w.begin(type));
}

inline void put_string(char type, std::string_view s, Buffer& out) {
  Writer w(out);
  size_t mark = w.begin(type);
  w.cstr(s);
  w.end(mark);
}

inline void put_bytes(char type, Bytes b, Buffer& out) {
  Writer w(out);
  size_t mark = w.begin(type);
  w.bytes(b);
  w.end(mark);
}

}  // namespace pgrelay::protocol::detail
