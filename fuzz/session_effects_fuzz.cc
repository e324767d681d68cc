// Fuzz target: the session-effects classifier and its fast pre-scan.
//
// Input: 1 byte of options (bit 0: standard_conforming_strings off), then a statement text.
// The pre-scan's promise (analyzer/session_state.h) is checked against the full classifier: when
// may_have_session_effects says no, tokenizing finds no effect either. Memory stays bounded.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "analyzer/session_state.h"
#include "fuzz/sql_input.h"

namespace an = pgrelay::analyzer;
using pgrelay::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto in = pgrelay::fuzz::sql_input(data, size);
  if (!in) return 0;
  const an::LexOptions& options = in->options;
  const std::string_view sql = in->text;

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
