// Fuzz target: the session-effects classifier and its fast pre-scan.
//
// Input: 1 byte of options (bit 0: standard_conforming_strings off), then a statement text.
// The pre-scan's promise (analyzer/session_state.h) is checked against the full classifier: when
// may_have_session_effects says no, tokenizing finds no effect either. Memory stays bounded.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "analyzer/session_state.h"
#include "fuzz/fuzz_util.h"

namespace an = pgrelay::analyzer;
using pgrelay::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  an::LexOptions options;
  options.standard_conforming_strings = !(data[0] & 1);
  std::string_view sql(reinterpret_cast<const char*>(data + 1), size - 1);

  an::SessionEffects slow = an::classify_session_effects_slowly(sql, options);
  check(slow.effects().size() <= an::kMaxEffects + 1);
  for (const an::Effect& e : slow.effects()) {
    check(e.statement < slow.statement_count() || slow.statement_count() == 0);
    (void)an::feature_name(e.kind);
  }
  for (size_t i = 0; i < slow.statement_count(); ++i) (void)an::class_name(slow.statement_class(i));

  if (!an::may_have_session_effects(sql, options)) {
    check(!slow.any());
    an::SessionEffects fast = an::classify_session_effects(sql, options);
    check(!fast.any());
  }
  return 0;
}
