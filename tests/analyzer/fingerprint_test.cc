// Statement fingerprints: what normalization keeps, what it turns into placeholders, what it collapses.
#include <doctest/doctest.h>

#include <string>
#include <utility>
#include <vector>

#include "analyzer/fingerprint.h"

using namespace pgrelay::analyzer;

namespace {

std::string norm(std::string_view sql) { return fingerprint(sql).normalized; }
bool same(std::string_view a, std::string_view b) { return fingerprint(a).hash == fingerprint(b).hash; }

}  // namespace

TEST_CASE("fingerprint: a literal query and the same query prepared with $1 are one fingerprint") {
  CHECK(norm("SELECT abalance FROM pgbench_accounts WHERE aid = 48213;") ==
        "select abalance from pgbench_accounts where aid = ?");
  CHECK(same("SELECT abalance FROM pgbench_accounts WHERE aid = 48213;",
             "select abalance from pgbench_accounts where aid = $1"));
  CHECK(same("UPDATE pgbench_accounts SET abalance = abalance + -4321 WHERE aid = 7",
             "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2"));
  CHECK_FALSE(same("select * from t where a = 1", "select * from t where b = 1"));
}

TEST_CASE("fingerprint: every kind of constant is a placeholder; a typed literal keeps its type") {
  CHECK(norm("select 1, 2.5, .5, 1e-3, 'x', E'a\\'b', U&'d\\0061t', $tag$ q $tag$, B'101', X'1F', true, FALSE") ==
        "select ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?");
  CHECK(norm("select date '2024-01-01', '5'::int, interval '1 day'") == "select date ?, ?::int, interval ?");
  CHECK(same("select date '2024-01-01'", "select date '1999-12-31'"));
  CHECK_FALSE(same("select date '2024-01-01'", "select '2024-01-01'::timestamp"));
}

TEST_CASE("fingerprint: NULL as a value is a placeholder, IS [NOT] NULL is syntax") {
  CHECK(norm("select * from t where a is null and b is not null") == "select * from t where a is null and b is not null");
  CHECK(norm("update t set a = null where b = 1") == "update t set a = ? where b = ?");
  CHECK_FALSE(same("select * from t where a is null", "select * from t where a = 1"));
}

TEST_CASE("fingerprint: a unary minus belongs to its number, a binary one does not") {
  CHECK(same("select * from t where a = -1", "select * from t where a = 1"));
  CHECK(norm("select a - 1 from t") == "select a - ? from t");
  CHECK(norm("select (a) - 1, f(-2)") == "select (a) - ?, f(?)");
}

TEST_CASE("fingerprint: IN lists, ARRAY lists and VALUES rows of constants collapse; = 1 stays apart") {
  CHECK(norm("select * from t where a in (1, 2, 3)") == "select * from t where a in (...)");
  CHECK(same("select * from t where a in (1, 2)", "select * from t where a IN ($1, $2, $3, $4::int)"));
  CHECK_FALSE(same("select * from t where a in (1, 2, 3)", "select * from t where a = 1"));
  CHECK(norm("select * from t where a = any(array[1, -2, 3])") == "select * from t where a = any(array[...])");
  CHECK(norm("insert into t (a, b) values (1, 'x'), (2, 'y'), (3, null)") == "insert into t(a, b) values (...)");
  CHECK(same("insert into t values (1, 'x')", "insert into t values ($1, $2), ($3, $4)"));
  // Not only constants: kept, with constants as placeholders.
  CHECK(norm("select * from t where a in (select b from u where c = 2)") ==
        "select * from t where a in (select b from u where c = ?)");
  CHECK(norm("insert into t values (1, now())") == "insert into t values (?, now())");
  CHECK(norm("select * from t where a in (b, 1)") == "select * from t where a in (b, ?)");
}

TEST_CASE("fingerprint: comments, whitespace and keyword case do not matter; quoted identifiers do") {
  CHECK(same("SELECT  a\n  FROM t -- the table\n WHERE /* nested /* comment */ */ b = 1",
             "select a from t where b = 2"));
  CHECK(norm("Select A.B, \"Mixed\".\"Case\" From S.T") == "select a.b, \"Mixed\".\"Case\" from s.t");
  CHECK(same("select Foo from T", "select foo from t"));
  CHECK_FALSE(same("select \"Foo\" from t", "select foo from t"));
  CHECK(norm("select count(*), coalesce(a, 0)::text from t;;") == "select count(*), coalesce(a, ?)::text from t");
}

TEST_CASE("fingerprint: strings hiding SQL, dollar quotes and odd bytes stay one placeholder") {
  CHECK(norm("select 'a; drop table t', $$ select 1; $$ from t") == "select ?, ? from t");
  CHECK(same("select $f$ x $f$", "select 'y'"));
  CHECK(norm("select 'unterminated") == "select ?");
}

TEST_CASE("fingerprint: the display text is cut at max_length on a character boundary; the hash is the whole text's") {
  FingerprintOptions o;
  o.max_length = 20;
  const std::string a = "select column_one, column_two, column_three from t where x = 1";
  const std::string b = "select column_one, column_two, column_four from t where x = 1";
  auto fa = fingerprint(a, o), fb = fingerprint(b, o);
  CHECK(fa.truncated);
  CHECK(fa.normalized.size() <= 20);
  CHECK(fa.normalized == fb.normalized);
  CHECK(fa.hash != fb.hash);   // differ after the cut
  o.max_length = 9;
  auto u = fingerprint("select \"\xc3\xa9t\xc3\xa9\" from t", o);   // "été": cut before a lone continuation byte
  CHECK(u.normalized.size() <= 9);
  CHECK((static_cast<unsigned char>(u.normalized.back()) & 0xC0) != 0xC0);
  CHECK_FALSE(fingerprint("select 1").truncated);
}

TEST_CASE("fingerprint: the values of SET are constants, names or not; DEFAULT and UPDATE ... SET are not") {
  CHECK(norm("SET search_path TO s1, public") == "set search_path to ?, ?");
  CHECK(same("set search_path = pg_catalog", "SET search_path TO information_schema"));
  CHECK(same("set statement_timeout = '5s'", "set statement_timeout to 100"));
  CHECK(norm("set work_mem to default") == "set work_mem to default");
  CHECK(norm("update t set a = b where c = 1") == "update t set a = b where c = ?");
}

TEST_CASE("fingerprint: random bytes and SQL-ish fragments: no crash, deterministic, display text bounded") {
  uint64_t seed = 12345;
  auto next = [&] { seed = seed * 6364136223846793005ULL + 1442695040888963407ULL; return uint32_t(seed >> 33); };
  const char* parts[] = {"select", " ", "'", "\"", "$$", "$1", "(", ")", "[", "]", ",", "-", "+", "::", "in", "values",
                         "array", "null", "is", "not", "set", "=", "to", "1", "2.5", "--", "/*", "*/", ";", "E'\\'", "\n"};
  FingerprintOptions o;
  o.max_length = 40;
  for (int round = 0; round < 20000; ++round) {
    std::string s;
    const int n = int(next() % 24);
    for (int k = 0; k < n; ++k) {
      if (next() % 4 == 0) s.push_back(char(next() % 256));
      else s += parts[next() % (sizeof parts / sizeof parts[0])];
    }
    const Fingerprint a = fingerprint(s, o);
    const Fingerprint b = fingerprint(s, o);
    REQUIRE(a.hash == b.hash);
    REQUIRE(a.normalized == b.normalized);
    REQUIRE(a.normalized.size() <= o.max_length);
  }
}

namespace {

// The constants of `sql` as (kind, value) pairs, in the order collected.
std::vector<std::pair<ConstantKind, std::string>> constants(std::string_view sql, const FingerprintOptions& base = {}) {
  FingerprintOptions o = base;
  o.collect_constants = true;
  const Fingerprint f = fingerprint(sql, o);
  std::vector<std::pair<ConstantKind, std::string>> out;
  for (const ConstantSpan& c : f.constants) out.emplace_back(c.kind, constant_value(sql, c, o.lex));
  return out;
}

using CK = ConstantKind;
using KV = std::pair<ConstantKind, std::string>;

}  // namespace

TEST_CASE("fingerprint constants: each kind, with its value as PostgreSQL prints it") {
  CHECK(constants("select 42, -1.5, + 7, - /* c */ 3, 1e-3 from t where a = $2") ==
        std::vector<KV>{{CK::kNumber, "42"}, {CK::kNumber, "-1.5"}, {CK::kNumber, "7"}, {CK::kNumber, "-3"},
                        {CK::kNumber, "1e-3"}, {CK::kParameter, "$2"}});
  CHECK(constants("select 'it''s', E'a\\nb\\t\\\\\\'', N'n', $tag$ raw 'x' \\n $tag$, $$$$") ==
        std::vector<KV>{{CK::kString, "it's"}, {CK::kString, "a\nb\t\\'"}, {CK::kString, "n"},
                        {CK::kString, " raw 'x' \\n "}, {CK::kString, ""}});
  CHECK(constants("select B'101', x'1F', TRUE, false, null") ==
        std::vector<KV>{{CK::kBitString, "101"}, {CK::kBitString, "00011111"}, {CK::kBoolean, "t"},
                        {CK::kBoolean, "f"}, {CK::kNull, ""}});
  // The span covers the token as written, a folded sign included.
  const std::string sql = "select * from t where a = -1 and b is null";
  FingerprintOptions o;
  o.collect_constants = true;
  const Fingerprint f = fingerprint(sql, o);
  REQUIRE(f.constants.size() == 1);   // IS NULL is syntax
  CHECK(sql.substr(f.constants[0].offset, f.constants[0].length) == "-1");
}

TEST_CASE("fingerprint constants: escapes left as written, typed literals, standard_conforming_strings off") {
  CHECK(constants("select E'\\u0041\\n'") == std::vector<KV>{{CK::kString, "\\u0041\n"}});
  CHECK(constants("select U&'d\\0061t'") == std::vector<KV>{{CK::kString, "d\\0061t"}});
  CHECK(constants("select date '2024-01-01', '5'::int") ==
        std::vector<KV>{{CK::kString, "2024-01-01"}, {CK::kString, "5"}});
  FingerprintOptions legacy;
  legacy.lex.standard_conforming_strings = false;
  CHECK(constants("select 'a\\'b'", legacy) == std::vector<KV>{{CK::kString, "a'b"}});
}

TEST_CASE("fingerprint constants: the constants of collapsed IN, ARRAY and VALUES lists, in text order") {
  CHECK(constants("select * from t where a in (1, 2, 3)") ==
        std::vector<KV>{{CK::kNumber, "1"}, {CK::kNumber, "2"}, {CK::kNumber, "3"}});
  CHECK(constants("select * from t where a = any(array[-1, $1::int]) and b = 'x'") ==
        std::vector<KV>{{CK::kNumber, "-1"}, {CK::kParameter, "$1"}, {CK::kString, "x"}});
  CHECK(constants("insert into t values (1, 'a'), (2, null) returning 3") ==
        std::vector<KV>{{CK::kNumber, "1"}, {CK::kString, "a"}, {CK::kNumber, "2"}, {CK::kNull, ""}, {CK::kNumber, "3"}});
  // A list that does not collapse: its constants one by one, names skipped.
  CHECK(constants("select * from t where a in (b, 4)") == std::vector<KV>{{CK::kNumber, "4"}});
  // SET values written as names are not constants of any kind.
  CHECK(constants("set search_path to s1, 'x'") == std::vector<KV>{{CK::kString, "x"}});
}

TEST_CASE("fingerprint constants: off by default; the option changes neither the hash nor the text") {
  const char* sqls[] = {
      "SELECT \"app_author\".\"id\", \"app_author\".\"name\" FROM \"app_author\" WHERE \"app_author\".\"id\" = 7 LIMIT 21",
      "insert into t values (1, 'a'), (-2, E'\\n')",
      "select * from t where a in (1, 2) and b = any(array[$1, $2]) and c is not null",
  };
  for (const char* sql : sqls) {
    FingerprintOptions on;
    on.collect_constants = true;
    const Fingerprint plain = fingerprint(sql), collected = fingerprint(sql, on);
    CHECK(plain.constants.empty());
    CHECK_FALSE(collected.constants.empty());
    CHECK(plain.hash == collected.hash);
    CHECK(plain.normalized == collected.normalized);
  }
  CHECK(constants(sqls[0]) == std::vector<KV>{{CK::kNumber, "7"}, {CK::kNumber, "21"}});
  CHECK(constant_value("select 1", ConstantSpan{.offset = 7, .length = 5, .kind = CK::kNumber}).empty());
}

TEST_CASE("fingerprint constants: random input: spans inside the text, in order, values readable") {
  uint64_t seed = 777;
  auto next = [&] { seed = seed * 6364136223846793005ULL + 1442695040888963407ULL; return uint32_t(seed >> 33); };
  const char* parts[] = {"select", " ", "'", "E'\\", "$$", "$1", "(", ")", "[", "]", ",", "-", "+", "::", "in",
                         "values", "array", "null", "is", "true", "=", "1", "2.5", "--", "/*", "B'1", "X'f", "\n"};
  FingerprintOptions on;
  on.collect_constants = true;
  for (int round = 0; round < 20000; ++round) {
    std::string s;
    const int n = int(next() % 24);
    for (int k = 0; k < n; ++k) {
      if (next() % 5 == 0) s.push_back(char(next() % 256));
      else s += parts[next() % (sizeof parts / sizeof parts[0])];
    }
    const Fingerprint f = fingerprint(s, on);
    REQUIRE(f.hash == fingerprint(s).hash);
    size_t end = 0;
    for (const ConstantSpan& c : f.constants) {
      REQUIRE(c.offset >= end);
      REQUIRE(size_t(c.offset) + c.length <= s.size());
      end = c.offset + c.length;
      (void)constant_value(s, c);
    }
  }
}

TEST_CASE("fingerprint_hex: 16 lower-case hex digits, leading zeros kept") {
  CHECK(fingerprint_hex(0) == "0000000000000000");
  CHECK(fingerprint_hex(0xabc) == "0000000000000abc");
  CHECK(fingerprint_hex(0xfedcba9876543210ull) == "fedcba9876543210");
}
