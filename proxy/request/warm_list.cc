// Cache warming's memory: the hottest cached statements and the sessions that replay them.
#include "proxy/request/warm_list.h"

#include <algorithm>
#include <iterator>
#include <map>

namespace pgrelay::proxy {
namespace {

constexpr std::string_view kMagic = "PGRW";
constexpr uint8_t kVersion = 2;   // 1: simple Queries only (still read)
constexpr uint32_t kMaxStatements = 100'000;
constexpr uint32_t kMaxField = 16u << 20;

void put_u32(protocol::Writer& w, uint32_t v) { w.i32(int32_t(v)); }
void put_bytes(protocol::Writer& w, protocol::Bytes b) {
  put_u32(w, uint32_t(b.size()));
  w.bytes(b);
}

void put_extended(protocol::Writer& w, const WarmExtended& e) {
  put_bytes(w, e.param_types);
  w.u8(e.describe ? 1 : 0);
  put_u32(w, uint32_t(e.param_formats.size()));
  for (int16_t f : e.param_formats) w.i16(f);
  put_u32(w, uint32_t(e.params.size()));
  for (const auto& v : e.params) {
    if (!v) {
      w.i32(-1);
    } else {
      put_bytes(w, *v);
    }
  }
  put_u32(w, uint32_t(e.result_formats.size()));
  for (int16_t f : e.result_formats) w.i16(f);
}

bool read_count(protocol::Reader& r, uint32_t& n) {
  int32_t v = 0;
  if (!r.i32(v) || v < 0 || v > 0xFFFF) return false;   // a protocol list holds at most 65535
  n = uint32_t(v);
  return true;
}

bool read_formats(protocol::Reader& r, std::vector<int16_t>& out) {
  uint32_t n = 0;
  if (!read_count(r, n)) return false;
  for (uint32_t i = 0; i < n; ++i) {
    int16_t f = 0;
    if (!r.i16(f)) return false;
    out.push_back(f);
  }
  return true;
}

bool read_extended(protocol::Reader& r, WarmExtended& e) {
  int32_t n = 0;
  uint8_t describe = 0;
  protocol::Bytes b;
  if (!r.i32(n) || uint32_t(n) > kMaxField || !r.bytes(size_t(uint32_t(n)), b)) return false;
  e.param_types.assign(b.begin(), b.end());
  if (!r.u8(describe) || describe > 1 || !read_formats(r, e.param_formats)) return false;
  e.describe = describe == 1;
  uint32_t count = 0;
  if (!read_count(r, count)) return false;
  size_t total = 0;
  for (uint32_t i = 0; i < count; ++i) {
    if (!r.i32(n)) return false;
    if (n == -1) {
      e.params.emplace_back(std::nullopt);
      continue;
    }
    total += size_t(uint32_t(n));
    if (n < 0 || total > WarmExtended::kMaxParamBytes || !r.bytes(size_t(n), b)) return false;
    e.params.emplace_back(protocol::Buffer(b.begin(), b.end()));
  }
  return read_formats(r, e.result_formats);
}

// One statement's identity across runs and instances: its text, its encoded session and, for an
// extended read, its Bind.
std::string identity(const WarmStatement& s) {
  protocol::Buffer bytes;
  encode(*s.session, bytes);
  if (s.extended) {
    protocol::Writer w(bytes);
    put_extended(w, *s.extended);
  }
  std::string id(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  id.push_back(s.extended ? '\1' : '\0');
  id += s.text;
  return id;
}

}  // namespace

WarmList::WarmList(size_t per_database)
    : per_database_(per_database), per_stripe_(std::max<size_t>(64, per_database * 8 / kStripes)) {}

void WarmList::hit(uint64_t key_hash, std::string_view text, const std::function<HandoffState()>& describe,
                   const DescribeExtended& extended) {
  if (!enabled()) return;
  Stripe& stripe = stripes_[key_hash % kStripes];
  std::lock_guard lock(stripe.mu);
  if (auto it = stripe.by_key.find(key_hash); it != stripe.by_key.end()) {
    ++it->second.hits;   // a collision of two keys counts both on one: harmless, warming is best-effort
    return;
  }
  if (stripe.by_key.size() >= per_stripe_) {
    // Full: age everything (halve), forgetting what was hit once since the last aging.
    for (auto it = stripe.by_key.begin(); it != stripe.by_key.end();) {
      it->second.hits /= 2;
      it = it->second.hits == 0 ? stripe.by_key.erase(it) : std::next(it);
    }
    if (stripe.by_key.size() >= per_stripe_) return;
  }
  std::shared_ptr<const WarmExtended> bind;
  if (extended) {
    bind = extended();
    if (!bind) return;   // not one to keep (parameters too large)
  }
  HandoffState session = describe();
  session.client_id = 0;
  session.key = {};
  session.statements.clear();
  session.credential.clear();
  stripe.by_key.emplace(key_hash, Counted{.text = std::string(text),
                                          .session = std::make_shared<const HandoffState>(std::move(session)),
                                          .hits = 1,
                                          .extended = std::move(bind)});
}

void WarmList::seed(std::vector<WarmStatement> statements) {
  std::lock_guard lock(seeds_mu_);
  for (auto& s : statements) {
    if (s.session) seeds_.push_back(std::move(s));
  }
}

std::vector<WarmStatement> WarmList::all() const {
  // Merged by identity: a statement counted here and seeded from a save sums its hits.
  std::map<std::string, WarmStatement> merged;
  auto add = [&](WarmStatement s) {
    auto [it, fresh] = merged.try_emplace(identity(s), s);
    if (!fresh) it->second.hits += s.hits;
  };
  for (const Stripe& stripe : stripes_) {
    std::lock_guard lock(stripe.mu);
    for (const auto& [hash, c] : stripe.by_key) {
      add(WarmStatement{.text = c.text, .session = c.session, .hits = c.hits, .extended = c.extended});
    }
  }
  {
    std::lock_guard lock(seeds_mu_);
    for (const auto& s : seeds_) add(s);
  }
  std::vector<WarmStatement> out;
  out.reserve(merged.size());
  for (auto& [id, s] : merged) out.push_back(std::move(s));
  std::stable_sort(out.begin(), out.end(), [](const WarmStatement& a, const WarmStatement& b) { return a.hits > b.hits; });
  return out;
}

std::vector<WarmStatement> WarmList::top(std::string_view database) const {
  std::vector<WarmStatement> out;
  if (!enabled()) return out;
  std::map<std::string, size_t, std::less<>> taken;
  for (auto& s : all()) {
    if (!database.empty() && s.session->database != database) continue;
    if (taken[s.session->database]++ >= per_database_) continue;
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<std::string> WarmList::databases() const {
  std::vector<std::string> out;
  for (const auto& s : all()) {
    if (std::find(out.begin(), out.end(), s.session->database) == out.end()) out.push_back(s.session->database);
  }
  return out;
}

void encode_warm_list(const std::vector<WarmStatement>& statements, protocol::Buffer& out) {
  protocol::Writer w(out);
  w.str(kMagic);
  w.u8(kVersion);
  put_u32(w, uint32_t(statements.size()));
  for (const auto& s : statements) {
    w.i32(int32_t(uint32_t(s.hits >> 32)));
    w.i32(int32_t(uint32_t(s.hits)));
    put_bytes(w, protocol::as_bytes(s.text));
    protocol::Buffer session;
    encode(*s.session, session);
    put_bytes(w, session);
    w.u8(s.extended ? 1 : 0);
    if (s.extended) put_extended(w, *s.extended);
  }
}

Result<std::vector<WarmStatement>> decode_warm_list(protocol::Bytes in) {
  protocol::Reader r(in);
  protocol::Bytes magic;
  uint8_t version = 0;
  int32_t count = 0;
  if (!r.bytes(kMagic.size(), magic) || protocol::as_string_view(magic) != kMagic)
    return Error{"", "not a pgrelay warm list (no \"PGRW\" at its start)"};
  if (!r.u8(version) || version < 1 || version > kVersion)
    return Error{"", "a warm list of format " + std::to_string(version) + ", expected 1 to " + std::to_string(kVersion)};
  if (!r.i32(count) || uint32_t(count) > kMaxStatements) return Error{"", "a warm list with a bad statement count"};
  std::vector<WarmStatement> out;
  for (uint32_t i = 0; i < uint32_t(count); ++i) {
    int32_t hi = 0, lo = 0, n = 0;
    protocol::Bytes text, session;
    if (!r.i32(hi) || !r.i32(lo) || !r.i32(n) || uint32_t(n) > kMaxField || !r.bytes(size_t(uint32_t(n)), text) ||
        !r.i32(n) || uint32_t(n) > kMaxField || !r.bytes(size_t(uint32_t(n)), session))
      return Error{"", "a warm list cut short in statement " + std::to_string(i + 1)};
    auto state = decode_handoff(session);
    if (!state.ok()) return Error{"", "statement " + std::to_string(i + 1) + " of a warm list: " + state.error().message};
    std::shared_ptr<WarmExtended> extended;
    uint8_t kind = 0;
    if (version >= 2 && (!r.u8(kind) || kind > 1)) return Error{"", "statement " + std::to_string(i + 1) + " of a warm list: a bad kind"};
    if (kind == 1) {
      extended = std::make_shared<WarmExtended>();
      if (!read_extended(r, *extended))
        return Error{"", "statement " + std::to_string(i + 1) + " of a warm list: a truncated or oversized extended read"};
    }
    out.push_back(WarmStatement{.text = std::string(protocol::as_string_view(text)),
                                .session = std::make_shared<const HandoffState>(std::move(state).value()),
                                .hits = (uint64_t(uint32_t(hi)) << 32) | uint32_t(lo),
                                .extended = std::move(extended)});
  }
  if (!r.at_end()) return Error{"", "a warm list with bytes after its last statement"};
  return out;
}

}  // namespace pgrelay::proxy
