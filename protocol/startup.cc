// Startup-phase packets: decoding what a client sends before it is authenticated, and encoding them.
#include "protocol/startup.h"

#include <algorithm>
#include <string>
#include <unordered_set>

#include "protocol/sqlstate.h"

namespace pgrelay::protocol {
namespace {

Error violation(std::string message) { return {sqlstate::kProtocolViolation, std::move(message)}; }

// SSLRequest, GSSENCRequest and CancelRequest have fixed sizes; anything else is a client
// that does not speak the protocol, and guessing what it meant would be worse than refusing.
Result<void> expect_length(Bytes packet, size_t want, const char* what) {
  if (packet.size() != want) {
    return violation(std::string("invalid length of ") + what + ": " + std::to_string(packet.size()) +
                     " bytes, expected " + std::to_string(want));
  }
  return {};
}

// Name/value pairs, each NUL-terminated, then one more NUL which must be the last byte
// (PostgreSQL's "expected terminator as last byte").
Result<StartupPacket> decode_startup_message(Reader& r, uint16_t major, uint16_t minor) {
  StartupMessage m;
  m.major = major;
  m.minor = minor;
  // Duplicates: a linear look back over the few names a client sends (drivers send 2 to 8), a
  // set once there are more, so a packet stuffed with thousands of names stays linear. Neither
  // allocates for the usual packet, nor does the parameter list grow more than once.
  constexpr size_t kLinearNames = 16;
  std::unordered_set<std::string_view> seen;
  std::string_view names[kLinearNames];
  size_t count = 0;
  m.params.reserve(8);
  while (true) {
    std::string_view name;
    if (!r.cstr(name)) return violation("invalid startup packet layout: missing terminator");
    if (name.empty()) break;   // the final NUL
    std::string_view value;
    if (!r.cstr(value)) {
      return violation("invalid startup packet layout: parameter \"" + std::string(name) +
                       "\" has no NUL-terminated value");
    }
    bool duplicate = false;
    if (count < kLinearNames) {
      duplicate = std::find(names, names + count, name) != names + count;
      names[count] = name;
    } else {
      if (count == kLinearNames) seen.insert(names, names + kLinearNames);
      duplicate = !seen.insert(name).second;
    }
    if (duplicate) return violation("duplicate startup parameter \"" + std::string(name) + "\"");
    ++count;
    m.params.emplace_back(std::string(name), std::string(value));
  }
  // Bytes after the terminator would be read by PostgreSQL as an empty parameter name.
  if (!r.at_end()) return violation("invalid startup packet layout: expected terminator as last byte");
  const std::string* user = m.get("user");
  if (user == nullptr || user->empty()) return violation("no PostgreSQL user name specified in startup packet");
  return StartupPacket(std::move(m));
}

}  // namespace

const std::string* StartupMessage::get(std::string_view name) const {
  for (const auto& [k, v] : params) {
    if (k == name) return &v;
  }
  return nullptr;
}

Result<uint32_t> startup_packet_length(Bytes first4, uint32_t max_size) {
  if (first4.size() < 4) return violation("incomplete startup packet");
  uint32_t len = load_u32(first4.data());
  // Length + code is the smallest packet there is; the cap stops a pre-authentication
  // client from making us buffer megabytes.
  if (len < 8) return violation("invalid length of startup packet: " + std::to_string(len));
  if (len > max_size)
    return violation("startup packet too large: " + std::to_string(len) + " bytes (limit " + std::to_string(max_size) + ")");
  return len;
}

Result<StartupPacket> decode_startup_packet(Bytes packet) {
  Reader r(packet);
  int32_t len = 0;
  int32_t code = 0;
  if (!r.i32(len) || !r.i32(code)) return violation("incomplete startup packet");
  if (len < 0 || uint32_t(len) != packet.size()) {
    return violation("startup packet length field " + std::to_string(uint32_t(len)) + " does not match its " +
                     std::to_string(packet.size()) + " bytes");
  }
  switch (code) {
    case kSslRequestCode: {
      if (auto ok = expect_length(packet, 8, "SSLRequest"); !ok) return ok.error();
      return StartupPacket(SslRequest{});
    }
    case kGssEncRequestCode: {
      if (auto ok = expect_length(packet, 8, "GSSENCRequest"); !ok) return ok.error();
      return StartupPacket(GssEncRequest{});
    }
    case kCancelRequestCode: {
      if (auto ok = expect_length(packet, 16, "CancelRequest"); !ok) return ok.error();
      CancelRequest c;
      (void)r.i32(c.pid);
      (void)r.i32(c.secret);
      return StartupPacket(c);
    }
    default:
      break;
  }
  auto major = uint16_t(uint32_t(code) >> 16);
  auto minor = uint16_t(uint32_t(code) & 0xffff);
  if (major != 3) {
    // Same wording as PostgreSQL 15, so clients that fall back on it keep working.
    return Error{sqlstate::kFeatureNotSupported, "unsupported frontend protocol " + std::to_string(major) + "." +
                                                     std::to_string(minor) + ": server supports 3.0 to 3.0"};
  }
  return decode_startup_message(r, major, minor);
}

void encode(const StartupMessage& m, Buffer& out) {
  Writer w(out);
  size_t mark = w.begin_untyped();
  w.i32(int32_t((uint32_t(m.major) << 16) | m.minor));
  for (const auto& [k, v] : m.params) {
    w.cstr(k);
    w.cstr(v);
  }
  w.u8(0);
  w.end(mark);
}

void encode(const SslRequest&, Buffer& out) {
  Writer w(out);
  size_t mark = w.begin_untyped();
  w.i32(kSslRequestCode);
  w.end(mark);
}

void encode(const GssEncRequest&, Buffer& out) {
  Writer w(out);
  size_t mark = w.begin_untyped();
  w.i32(kGssEncRequestCode);
  w.end(mark);
}

void encode(const CancelRequest& m, Buffer& out) {
  Writer w(out);
  size_t mark = w.begin_untyped();
  w.i32(kCancelRequestCode);
  w.i32(m.pid);
  w.i32(m.secret);
  w.end(mark);
}

}  // namespace pgrelay::protocol
