// Cache warming's memory: the hottest cached statements and the sessions that replay them.
#include "proxy/request/warm_list.h"

#include <algorithm>
#include <iterator>
#include <map>

namespace pgrelay::proxy {
namespace {

constexpr std::string_view kMagic = "PGRW";
constexpr uint8_t kVersion = 1;
constexpr uint32_t kMaxStatements = 100'000;
constexpr uint32_t kMaxField = 16u << 20;

void put_u32(protocol::Writer& w, uint32_t v) { w.i32(int32_t(v)); }
void put_bytes(protocol::Writer& w, protocol::Bytes b) {
  put_u32(w, uint32_t(b.size()));
  w.bytes(b);
}

// One statement's identity across runs and instances: its text and its encoded session.
std::string identity(const WarmStatement& s) {
  protocol::Buffer session;
  encode(*s.session, session);
  std::string id(reinterpret_cast<const char*>(session.data()), session.size());
  id.push_back('\0');
  id += s.text;
  return id;
}

}  // namespace

WarmList::WarmList(size_t per_database)
    : per_database_(per_database), per_stripe_(std::max<size_t>(64, per_database * 8 / kStripes)) {}

void WarmList::hit(uint64_t key_hash, std::string_view text, const std::function<HandoffState()>& describe) {
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
  HandoffState session = describe();
  session.client_id = 0;
  session.key = {};
  session.statements.clear();
  session.credential.clear();
  stripe.by_key.emplace(key_hash, Counted{.text = std::string(text),
                                          .session = std::make_shared<const HandoffState>(std::move(session)),
                                          .hits = 1});
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
    for (const auto& [hash, c] : stripe.by_key) add(WarmStatement{.text = c.text, .session = c.session, .hits = c.hits});
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
  }
}

Result<std::vector<WarmStatement>> decode_warm_list(protocol::Bytes in) {
  protocol::Reader r(in);
  protocol::Bytes magic;
  uint8_t version = 0;
  int32_t count = 0;
  if (!r.bytes(kMagic.size(), magic) || protocol::as_string_view(magic) != kMagic)
    return Error{"", "not a pgrelay warm list (no \"PGRW\" at its start)"};
  if (!r.u8(version) || version != kVersion)
    return Error{"", "a warm list of format " + std::to_string(version) + ", expected " + std::to_string(kVersion)};
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
    out.push_back(WarmStatement{.text = std::string(protocol::as_string_view(text)),
                                .session = std::make_shared<const HandoffState>(std::move(state).value()),
                                .hits = (uint64_t(uint32_t(hi)) << 32) | uint32_t(lo)});
  }
  if (!r.at_end()) return Error{"", "a warm list with bytes after its last statement"};
  return out;
}

}  // namespace pgrelay::proxy
