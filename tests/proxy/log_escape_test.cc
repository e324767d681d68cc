// What client-supplied text becomes in pgrelay's log lines and in its JSON logs: never a line of
// its own, never a terminal escape, never invalid JSON (issue 17, log injection).
#include <doctest/doctest.h>

#include <cctype>
#include <random>
#include <string>

#include "protocol/utf8.h"
#include "proxy/base/log.h"
#include "proxy/session/slow_query_log.h"
#include "proxy/session/statement_event_log.h"

using namespace pgrelay;
using namespace pgrelay::proxy;

namespace {

std::string escaped(std::string_view s) {
  std::string out;
  append_log_escaped(out, s);
  return out;
}

// A JSON string literal's checker (RFC 8259): quoted, valid UTF-8, no raw control characters,
// only the escapes JSON has. Enough to tell that any JSON parser takes the line.
bool valid_json_string(std::string_view s) {
  if (s.size() < 2 || s.front() != '"' || s.back() != '"' || !protocol::utf8_valid(s)) return false;
  s = s.substr(1, s.size() - 2);
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == '"') return false;
    if (c != '\\') continue;
    if (++i >= s.size()) return false;
    if (std::string_view("\"\\/bfnrt").find(s[i]) != std::string_view::npos) continue;
    if (s[i] != 'u' || i + 4 >= s.size()) return false;
    for (int k = 1; k <= 4; ++k)
      if (!std::isxdigit(static_cast<unsigned char>(s[i + k]))) return false;
    i += 4;
  }
  return true;
}

// Up to 40 random bytes.
std::string random_bytes(std::mt19937& rng) {
  std::string s(rng() % 40, '\0');
  for (char& c : s) c = char(rng());
  return s;
}

}  // namespace

TEST_CASE("log lines: control characters, C1 controls, line separators and bytes that are not UTF-8 are escaped") {
  const std::string forged = "x\n2026-12-03 00:00:00.000 UTC INFO admin login ok for user \"root\"";
  CHECK(escaped(forged) == "x\\n2026-12-03 00:00:00.000 UTC INFO admin login ok for user \"root\"");
  CHECK(escaped("a\rb\tc") == "a\\rb\\tc");
  CHECK(escaped(std::string("nul\0esc\x1b[2J del\x7f", 16)) == "nul\\x00esc\\x1b[2J del\\x7f");
  CHECK(escaped("bad \xff\xfe utf8 \xc3") == "bad \\xff\\xfe utf8 \\xc3");
  CHECK(escaped("overlong \xc0\xaf") == "overlong \\xc0\\xaf");
  CHECK(escaped("c1 \xc2\x85 nel, \xe2\x80\xa8 ls") == "c1 \\u0085 nel, \\u2028 ls");
  // Text that needs nothing is kept as it is, UTF-8 included.
  CHECK(escaped("grüße, 日本語, emoji \xf0\x9f\x98\x80, back\\slash") == "grüße, 日本語, emoji \xf0\x9f\x98\x80, back\\slash");
  std::mt19937 rng(17);
  for (int i = 0; i < 2000; ++i) {
    const std::string e = escaped(random_bytes(rng));
    CAPTURE(e);
    CHECK(e.find('\n') == std::string::npos);
    CHECK(e.find('\r') == std::string::npos);
    CHECK(e.find('\x1b') == std::string::npos);
    CHECK(protocol::utf8_valid(e));
  }
}

TEST_CASE("json_string and the slow-query log's lines are valid JSON for any bytes") {
  CHECK(json_string("a\"b\\c\nd") == "\"a\\\"b\\\\c\\nd\"");
  CHECK(json_string("\xff") == "\"\\ufffd\"");
  CHECK(json_string("ok \xc3\xa9 \xc3") == "\"ok \xc3\xa9 \\ufffd\"");
  CHECK(json_string("\x7f \xe2\x80\xa9") == "\"\\u007f \\u2029\"");
  std::mt19937 rng(4013);
  for (int i = 0; i < 2000; ++i) {
    const std::string j = json_string(random_bytes(rng));
    CAPTURE(j);
    CHECK(valid_json_string(j));
  }
  SlowQuery q;
  q.query = "select \xff\n";
  q.database = "x\n2026-12-03 00:00:00.000 UTC INFO forged";
  q.user = "\xc0\xaf";
  q.application_name = std::string("\0\x1b", 2);
  q.text = "select '\xfe'";
  q.parameters = {std::string("\x80"), std::nullopt};
  const std::string line = SlowQueryLog::json_line(q, 0);
  CHECK(protocol::utf8_valid(line));
  CHECK(line.find('\n') == std::string::npos);
  for (char c : line) CHECK(static_cast<unsigned char>(c) >= 0x20);
}
