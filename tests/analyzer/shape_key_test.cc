// Statement shape keys: constants blanked, everything else kept; declined where the bytes alone
// cannot tell a constant from a name or syntax.
#include <doctest/doctest.h>

#include <string>

#include "analyzer/fingerprint.h"
#include "analyzer/shape_key.h"

using namespace pgrelay::analyzer;

namespace {

bool same(std::string_view a, std::string_view b) {
  const auto ka = shape_key(a), kb = shape_key(b);
  REQUIRE(ka.has_value());
  REQUIRE(kb.has_value());
  return *ka == *kb;
}

}  // namespace

TEST_CASE("shape_key: texts that differ only in numbers and plain strings share a key") {
  CHECK(same("SELECT abalance FROM pgbench_accounts WHERE aid = 48213;",
             "SELECT abalance FROM pgbench_accounts WHERE aid = 7;"));
  CHECK(same("select * from t where a = 1.5 and b = 'x' limit 10", "select * from t where a = 22.75 and b = 'it''s' limit 3"));
  CHECK(same("select date '2020-01-01', 1e5", "select date '1999-12-31', 9e5"));
  CHECK(same("select * from t where s = ''", "select * from t where s = 'a\\'"));   // standard strings: \ is a character
}

TEST_CASE("shape_key: names, operators, signs, case and spacing are kept") {
  CHECK_FALSE(same("select * from t1", "select * from t2"));            // a digit in a name
  CHECK_FALSE(same("select * from é1", "select * from é2"));            // after a UTF-8 letter too
  CHECK_FALSE(same("select a$1 from t", "select a$2 from t"));
  CHECK_FALSE(same("select v from kv where k = 1", "select k from kv where k = 1"));
  CHECK_FALSE(same("select 1", "select -1"));
  CHECK_FALSE(same("select 1e5", "select 1e6"));                        // finer than the fingerprint
  CHECK_FALSE(same("select * from t where a in (1, 2)", "select * from t where a in (1, 2, 3)"));
  CHECK_FALSE(same("SELECT 1", "select 1"));
  CHECK_FALSE(same("select 1", "select  1"));
  // A constant is no text: neither an operator nor an identifier reads like one.
  CHECK_FALSE(same("select a # 1", "select a # #"));
  CHECK_FALSE(same("select 'n'", "select n"));
}

TEST_CASE("shape_key: where the bytes alone cannot tell, it declines") {
  CHECK_FALSE(shape_key("select \"t1\".a from \"t1\"").has_value());             // quoted names
  CHECK_FALSE(shape_key("select 1 -- one").has_value());
  CHECK_FALSE(shape_key("select /* one */ 1").has_value());
  CHECK_FALSE(shape_key("select $$a$$").has_value());
  CHECK_FALSE(shape_key("select $q$a$q$").has_value());
  CHECK_FALSE(shape_key("select E'a\\'b'").has_value());
  CHECK_FALSE(shape_key("select B'101', X'1F'").has_value());
  CHECK_FALSE(shape_key("select 'unterminated").has_value());
  CHECK_FALSE(shape_key("select 1'x'").has_value());
  CHECK_FALSE(shape_key("select 'a\\'b'", {.standard_conforming_strings = false}).has_value());
  CHECK(shape_key("select 'ab'", {.standard_conforming_strings = false}).has_value());
  CHECK(shape_key("select $1, a$b from t where x = $2").has_value());
  CHECK(shape_key(std::string(kMaxShapeText, ' ')).has_value());
  CHECK_FALSE(shape_key(std::string(kMaxShapeText + 1, ' ')).has_value());
  // A text of constants alone stays within the buffer (each byte may become two).
  std::string ones = "select 1";
  while (ones.size() + 2 <= kMaxShapeText) ones += ",1";
  CHECK(shape_key(ones).has_value());
}

TEST_CASE("shape_key: one key means one fingerprint (the verdicts it shares are the fingerprint's)") {
  const char* pairs[][2] = {
      {"select a from t where b = 1 and c = 'x'", "select a from t where b = 99 and c = 'yy'"},
      {"select 1.5, .5, 1e-3, 0x1F", "select 2.5, .7, 9e-3, 0x1F"},
      {"update t set a = a + 1 where id = 2", "update t set a = a + 7 where id = 8"},
      {"select * from f(3, 'a') where x = $1", "select * from f(4, 'b') where x = $1"},
  };
  for (const auto& p : pairs) {
    CAPTURE(p[0]);
    CHECK(same(p[0], p[1]));
    CHECK(fingerprint(p[0]).hash == fingerprint(p[1]).hash);
  }
}
