// Fuzz target: statement fingerprints, the constants they list and the values read back.
//
// Input: 1 byte of options (bit 0: standard_conforming_strings off, bits 1-7: max_length), then a
// statement. Checks: the fingerprint does not depend on collecting constants or on max_length,
// the kept text respects max_length, and every constant lies inside the statement.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "analyzer/fingerprint.h"
#include "fuzz/sql_input.h"

namespace an = pgrelay::analyzer;
using pgrelay::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto in = pgrelay::fuzz::sql_input(data, size);
  if (!in) return 0;
  an::FingerprintOptions options;
  options.lex = in->options;
  options.max_length = in->flags >> 1;
  const std::string_view sql = in->text;

  an::Fingerprint plain = an::fingerprint(sql, options);
  check(plain.normalized.size() <= options.max_length);

  options.collect_constants = true;
  options.max_length = 1024;
  an::Fingerprint full = an::fingerprint(sql, options);
  check(full.hash == plain.hash);
  check(full.normalized.size() <= 1024);
  check(full.truncated || plain.normalized == full.normalized.substr(0, plain.normalized.size()));
  uint64_t last = 0;
  for (const an::ConstantSpan& c : full.constants) {
    check(uint64_t(c.offset) + c.length <= sql.size());
    check(c.offset >= last);
    last = c.offset;
    (void)an::constant_value(sql, c, options.lex);
  }
  (void)an::fingerprint_hex(full.hash);
  return 0;
}
