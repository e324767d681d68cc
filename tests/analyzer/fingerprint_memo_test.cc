// The fingerprint memo gives fingerprint()'s answer, constants included, for every text of a
// shape it has seen: texts made from templates with random numbers and strings, compared.
#include <doctest/doctest.h>

#include <random>
#include <string>
#include <vector>

#include "analyzer/fingerprint.h"
#include "analyzer/fingerprint_memo.h"
#include "analyzer/shape_key.h"

using namespace pgrelay::analyzer;

namespace {

// `#` becomes a run of digits, `@` a plain string's body ('' and non-ASCII included).
std::string fill(std::string_view pattern, std::mt19937_64& rng) {
  static const std::vector<std::string> bodies = {"", "x", "it''s", "héllo", "a b c", "42", "'' ''", "\\", "NULL", "$1"};
  std::string out;
  for (char c : pattern) {
    if (c == '#') {
      const int digits = 1 + int(rng() % 7);
      for (int i = 0; i < digits; ++i) out += char('0' + rng() % 10);
    } else if (c == '@') {
      out += bodies[rng() % bodies.size()];
    } else {
      out += c;
    }
  }
  return out;
}

const char* const kPatterns[] = {
    "SELECT abalance FROM pgbench_accounts WHERE aid = #;",
    "select * from t where name = '@' and id = # limit #",
    "select a from t where b = -# and c = +#.# and d = #.#e-#",
    "select # - #, #-#, (#)-#, f(#)-#",
    "select * from t where a in (#, #, '@') and b in (-#, #)",
    "select * from t where a = any(array[#, #]) and b is not null and c = null and d = true",
    "insert into t values (#, '@'), (#, '@'), (#, null)",
    "select #x1F, #e#, #.e#, .#, #..#",
    "select date '@', interval '@', '@'::int, '@' '@'",
    "update t set a = a + # where id = $1 and b = '@'",
    "set statement_timeout = #",
    "select * from t1 join t2 on t1.a = t2.a where t1.b = # order by #",
};

}  // namespace

TEST_CASE("fingerprint memo: every text of a seen shape gets fingerprint()'s answer") {
  std::mt19937_64 rng(20261206);
  for (size_t max_length : {size_t(1024), size_t(20)}) {
    FingerprintMemo memo;
    for (bool constants : {true, false, true}) {
      const FingerprintOptions options{.lex = {}, .max_length = max_length, .collect_constants = constants};
      for (const char* pattern : kPatterns) {
        for (int round = 0; round < 40; ++round) {
          const std::string text = fill(pattern, rng);
          CAPTURE(text);
          const auto shape = shape_key(text);
          REQUIRE(shape.has_value());
          const Fingerprint want = fingerprint(text, options);
          const Fingerprint got = memo.fingerprint(text, *shape, options);
          CHECK(got.hash == want.hash);
          CHECK(got.normalized == want.normalized);
          CHECK(got.truncated == want.truncated);
          CHECK(got.constants == want.constants);
        }
      }
    }
    CHECK(memo.hits() > 0);
    CHECK(memo.size() >= std::size(kPatterns));
  }
}

TEST_CASE("fingerprint memo: a shape's constants on its blanks come from the shape pass") {
  FingerprintMemo memo;
  const FingerprintOptions options{.lex = {}, .collect_constants = true};
  const std::string a = "select v from kv where k = 17 and s = 'ab'";
  const std::string b = "select v from kv where k = 123456 and s = 'it''s'";
  (void)memo.fingerprint(a, *shape_key(a), options);
  const Fingerprint f = memo.fingerprint(b, *shape_key(b), options);
  CHECK(memo.hits() == 1);
  REQUIRE(f.constants.size() == 2);
  CHECK(constant_value(b, f.constants[0]) == "123456");
  CHECK(constant_value(b, f.constants[1]) == "it's");
  // Another query_text_length: made again, not cut as before.
  const Fingerprint short_one = memo.fingerprint(b, *shape_key(b), {.lex = {}, .max_length = 10, .collect_constants = true});
  CHECK(short_one.truncated);
  CHECK(short_one.normalized == fingerprint(b, {.lex = {}, .max_length = 10}).normalized);
}

TEST_CASE("fingerprint memo: the caller's blanks are taken on a hit, and checked on the miss that learns the shape") {
  const FingerprintOptions options{.lex = {}, .collect_constants = true};
  const std::string a = "select v from kv where k = 17 and s = 'ab'";
  const std::string b = "select v from kv where k = 123456 and s = 'it''s'";
  {
    FingerprintMemo memo;
    std::vector<ConstantSpan> blanks;
    REQUIRE(shape_key(a, {}, &blanks));
    (void)memo.fingerprint(a, *shape_key(a), options, &blanks);
    std::vector<ConstantSpan> given;
    REQUIRE(shape_key(b, {}, &given));
    const Fingerprint f = memo.fingerprint(b, *shape_key(b), options, &given);
    CHECK(memo.hits() == 1);
    CHECK(given.empty());   // taken
    REQUIRE(f.constants.size() == 2);
    CHECK(constant_value(b, f.constants[0]) == "123456");
    CHECK(constant_value(b, f.constants[1]) == "it's");
  }
  {
    // Blanks that are not where the fingerprint's constants stand, given on the miss: the shape
    // is marked as not on its blanks, and its texts get fingerprint()'s constants from then on.
    FingerprintMemo memo;
    std::vector<ConstantSpan> wrong = {{.offset = 0, .length = 6, .kind = ConstantKind::kNumber}};
    (void)memo.fingerprint(a, *shape_key(a), options, &wrong);
    std::vector<ConstantSpan> given = wrong;
    const Fingerprint f = memo.fingerprint(b, *shape_key(b), options, &given);
    REQUIRE(f.constants.size() == 2);
    CHECK(constant_value(b, f.constants[0]) == "123456");
    CHECK(constant_value(b, f.constants[1]) == "it's");
  }
}

TEST_CASE("fingerprint memo: full, it starts again") {
  FingerprintMemo memo(4);
  for (int i = 0; i < 10; ++i) {
    const std::string text = "select " + std::string(size_t(i + 1), 'a') + " from t where x = 1";
    (void)memo.fingerprint(text, *shape_key(text), {});
    CHECK(memo.size() <= 4);
  }
  const std::string again = "select a from t where x = 2";   // the first shape: forgotten
  CHECK(memo.fingerprint(again, *shape_key(again), {}).hash == fingerprint(again).hash);
}
