// The encoding of a client session handed from one pgrelay process to the next.
//
// Layout: the magic "PGRH", a version byte, then the fields in declaration order. Strings and
// byte strings are a 32-bit length and the bytes; lists and maps a 32-bit count and their items.
#include "proxy/request/handoff_state.h"

namespace pgrelay::proxy {
namespace {

constexpr std::string_view kMagic = "PGRH";
constexpr uint8_t kVersion = 1;
// Bounds on what decode() accepts: a corrupt count must not allocate gigabytes.
constexpr uint32_t kMaxField = 64u << 20;
constexpr uint32_t kMaxItems = 1u << 20;

void put_u64(protocol::Writer& w, uint64_t v) {
  w.i32(int32_t(uint32_t(v >> 32)));
  w.i32(int32_t(uint32_t(v)));
}
void put_bytes(protocol::Writer& w, protocol::Bytes b) {
  w.i32(int32_t(b.size()));
  w.bytes(b);
}
void put_str(protocol::Writer& w, std::string_view s) { put_bytes(w, protocol::as_bytes(s)); }

// Reads fields in order; the first failure sticks and names the field.
class FieldReader {
 public:
  explicit FieldReader(protocol::Bytes in) : r_(in) {}

  bool u64(uint64_t& v, const char* what) {
    int32_t hi = 0, lo = 0;
    if (!r_.i32(hi) || !r_.i32(lo)) return fail(what);
    v = (uint64_t(uint32_t(hi)) << 32) | uint32_t(lo);
    return true;
  }
  bool i32(int32_t& v, const char* what) { return r_.i32(v) || fail(what); }
  bool count(uint32_t& n, const char* what) {
    int32_t v = 0;
    if (!r_.i32(v) || uint32_t(v) > kMaxItems) return fail(what);
    n = uint32_t(v);
    return true;
  }
  bool bytes(protocol::Buffer& out, const char* what) {
    int32_t n = 0;
    protocol::Bytes b;
    if (!r_.i32(n) || uint32_t(n) > kMaxField || !r_.bytes(size_t(uint32_t(n)), b)) return fail(what);
    out.assign(b.begin(), b.end());
    return true;
  }
  bool str(std::string& out, const char* what) {
    int32_t n = 0;
    protocol::Bytes b;
    if (!r_.i32(n) || uint32_t(n) > kMaxField || !r_.bytes(size_t(uint32_t(n)), b)) return fail(what);
    out.assign(reinterpret_cast<const char*>(b.data()), b.size());
    return true;
  }
  protocol::Reader& raw() { return r_; }
  const std::string& failed_at() const { return failed_at_; }

 private:
  bool fail(const char* what) {
    if (failed_at_.empty()) failed_at_ = what;
    return false;
  }
  protocol::Reader r_;
  std::string failed_at_;
};

}  // namespace

bool HandoffState::operator==(const HandoffState& o) const {
  return client_id == o.client_id && user == o.user && database == o.database && key.pid == o.key.pid &&
         key.secret == o.key.secret && startup == o.startup && reported == o.reported && sets == o.sets &&
         statements == o.statements && credential == o.credential;
}

void encode(const HandoffState& s, protocol::Buffer& out) {
  protocol::Writer w(out);
  w.str(kMagic);
  w.u8(kVersion);
  put_u64(w, s.client_id);
  put_str(w, s.user);
  put_str(w, s.database);
  w.i32(s.key.pid);
  w.i32(s.key.secret);
  w.i32(int32_t(s.startup.size()));
  for (const auto& [name, value] : s.startup) {
    put_str(w, name);
    put_str(w, value);
  }
  w.i32(int32_t(s.reported.size()));
  for (const auto& [name, value] : s.reported) {
    put_str(w, name);
    put_str(w, value);
  }
  w.i32(int32_t(s.sets.size()));
  for (const auto& [name, wanted] : s.sets) {
    put_str(w, name);
    put_str(w, wanted.value);
    w.u8(wanted.sql ? 1 : 0);
  }
  w.i32(int32_t(s.statements.size()));
  for (const auto& st : s.statements) {
    put_str(w, st.name);
    put_str(w, st.query);
    put_bytes(w, st.param_types);
  }
  put_str(w, s.credential);
}

Result<HandoffState> decode_handoff(protocol::Bytes in) {
  auto bad = [](const std::string& why) { return Error{"08P01", "client hand-off state: " + why}; };
  if (in.size() < kMagic.size() + 1 || std::string_view(reinterpret_cast<const char*>(in.data()), kMagic.size()) != kMagic)
    return bad("not a hand-off state (no PGRH magic)");
  if (uint8_t(in[kMagic.size()]) != kVersion)
    return bad("version " + std::to_string(uint8_t(in[kMagic.size()])) + ", this pgrelay reads version " +
               std::to_string(kVersion));
  FieldReader r(in.subspan(kMagic.size() + 1));
  HandoffState s;
  uint32_t n = 0;
  bool ok = r.u64(s.client_id, "client id") && r.str(s.user, "user") && r.str(s.database, "database") &&
            r.i32(s.key.pid, "cancel key") && r.i32(s.key.secret, "cancel key") && r.count(n, "startup settings");
  for (uint32_t i = 0; ok && i < n; ++i) {
    Setting setting;
    ok = r.str(setting.name, "startup setting") && r.str(setting.value, "startup setting");
    if (ok) s.startup.push_back(std::move(setting));
  }
  ok = ok && r.count(n, "reported parameters");
  for (uint32_t i = 0; ok && i < n; ++i) {
    std::string name, value;
    ok = r.str(name, "reported parameter") && r.str(value, "reported parameter");
    if (ok) s.reported[std::move(name)] = std::move(value);
  }
  ok = ok && r.count(n, "session settings");
  for (uint32_t i = 0; ok && i < n; ++i) {
    std::string name;
    WantedValue wanted;
    uint8_t sql = 0;
    ok = r.str(name, "session setting") && r.str(wanted.value, "session setting") && r.raw().u8(sql);
    wanted.sql = sql != 0;
    if (ok) s.sets[std::move(name)] = std::move(wanted);
  }
  ok = ok && r.count(n, "prepared statements");
  for (uint32_t i = 0; ok && i < n; ++i) {
    HandoffState::Statement st;
    ok = r.str(st.name, "prepared statement") && r.str(st.query, "prepared statement") &&
         r.bytes(st.param_types, "prepared statement");
    if (ok) s.statements.push_back(std::move(st));
  }
  ok = ok && r.str(s.credential, "credential");
  if (!ok) return bad(r.failed_at().empty() ? "truncated" : "truncated or oversized " + r.failed_at());
  if (!r.raw().at_end()) return bad(std::to_string(r.raw().remaining()) + " bytes after the last field");
  if (s.user.empty()) return bad("no user");
  return s;
}

}  // namespace pgrelay::proxy
