// The input of the statement-text fuzz targets: one byte of options, then the text.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "analyzer/lexer.h"
#include "fuzz/fuzz_util.h"

namespace pgrelay::fuzz {

struct SqlInput {
  uint8_t flags = 0;                // bit 0: standard_conforming_strings off; the rest the target's
  analyzer::LexOptions options;
  std::string_view text;
};

inline std::optional<SqlInput> sql_input(const uint8_t* data, size_t size) {
  auto in = flagged_text(data, size);
  if (!in) return std::nullopt;
  SqlInput out{in->flags, {}, in->text};
  out.options.standard_conforming_strings = !(in->flags & 1);
  return out;
}

}  // namespace pgrelay::fuzz
