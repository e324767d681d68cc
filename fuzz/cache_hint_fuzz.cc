// Fuzz target: cache hints in statement comments (/* pgrelay:cache ttl=30s */) and TTL texts.
//
// Input: a statement text. A hint never yields a TTL outside (0, 1 year], and a TTL text that
// parses does so within the same bounds.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "cache/policy.h"
#include "fuzz/fuzz_util.h"

namespace ca = pgrelay::cache;
using pgrelay::fuzz::check;

namespace {

bool in_bounds(ca::Ttl t) { return t > ca::Ttl(0) && t <= std::chrono::hours(24 * 366); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  ca::CacheHint hint = ca::parse_hint(text);
  if (hint.ttl) check(in_bounds(*hint.ttl));
  if (auto ttl = ca::parse_ttl(text)) check(in_bounds(*ttl));

  ca::RuleVerdict none;
  auto ttl = ca::effective_ttl(hint, none, ca::Ttl(60000));
  check(ttl.has_value() != hint.nocache);
  return 0;
}
