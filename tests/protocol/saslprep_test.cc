// SASLprep (RFC 4013) of SCRAM passwords: the RFC's examples, NFKC, the tables, and PostgreSQL's
// rule that a password SASLprep refuses is used as its raw bytes.
#include <doctest/doctest.h>

#include <random>
#include <string>

#include "protocol/saslprep.h"
#include "protocol/scram.h"
#include "protocol/utf8.h"

using namespace pgrelay::protocol;

TEST_CASE("SASLprep: the examples of RFC 4013 section 3") {
  CHECK(saslprep("I\xc2\xadX") == "IX");              // SOFT HYPHEN mapped to nothing
  CHECK(saslprep("user") == "user");
  CHECK(saslprep("USER") == "USER");                  // case is kept
  CHECK(saslprep("\xc2\xaa") == "a");                 // U+00AA, NFKC
  CHECK(saslprep("\xe2\x85\xa8") == "IX");            // U+2168 ROMAN NUMERAL NINE, NFKC
  CHECK_FALSE(saslprep("\x07"));                      // prohibited
  CHECK_FALSE(saslprep("\xd8\xa7" "1"));              // U+0627 then "1": bidi rule
}

TEST_CASE("SASLprep: mapping, NFKC, prohibited and unassigned code points, bidirectional text") {
  CHECK(saslprep("a\xc2\xa0" "b") == "a b");          // NO-BREAK SPACE mapped to SPACE
  CHECK(saslprep("a\xe3\x80\x80" "b") == "a b");      // IDEOGRAPHIC SPACE
  CHECK(saslprep("a\xe2\x80\x8b" "b") == "ab");       // ZERO WIDTH SPACE: B.1 before C.1.2
  CHECK(saslprep("pa\xcc\x88ssword") == "p\xc3\xa4ssword");   // a + COMBINING DIAERESIS composes
  CHECK(saslprep("\xef\xac\x81") == "fi");            // U+FB01 LATIN SMALL LIGATURE FI
  CHECK(saslprep("\xef\xbc\xa1") == "A");             // FULLWIDTH A
  CHECK(saslprep("\xe1\x84\x80\xe1\x85\xa1\xe1\x86\xa8") == "\xea\xb0\x81");   // Hangul jamo compose
  CHECK(saslprep("\xea\xb0\x81") == "\xea\xb0\x81");  // and a syllable stays
  // Canonical ordering: dot below (220) before diaeresis (230) whichever comes first.
  CHECK(saslprep("a\xcc\x88\xcc\xa3") == saslprep("a\xcc\xa3\xcc\x88"));
  CHECK(saslprep("\xe1\xba\xa1\xcc\x88") == "\xe1\xba\xa1\xcc\x88");   // U+1EA1 + diaeresis: no precomposed form
  CHECK_FALSE(saslprep("a\xee\x80\x80"));             // U+E000 private use (C.3)
  CHECK_FALSE(saslprep("a\xef\xbf\xbe"));             // U+FFFE non-character (C.4)
  CHECK_FALSE(saslprep("a\xe2\x80\x8e"));             // U+200E LEFT-TO-RIGHT MARK (C.8)
  CHECK_FALSE(saslprep("a\xf3\xa0\x80\x81"));         // U+E0001 LANGUAGE TAG (C.9)
  CHECK_FALSE(saslprep("a\xc8\xa1"));                 // U+0221: unassigned in Unicode 3.2 (A.1)
  CHECK(saslprep("\xd7\x90\xd7\x91") == "\xd7\x90\xd7\x91");   // right-to-left only
  CHECK_FALSE(saslprep("\xd7\x90" "a\xd7\x91"));      // mixed with left-to-right
  CHECK_FALSE(saslprep("\xc2\xad"));                  // nothing left
  CHECK_FALSE(saslprep("bad \xff utf8"));
  CHECK_FALSE(saslprep("\xed\xa0\x80"));              // an encoded surrogate is not UTF-8
}

TEST_CASE("SASLprep: PostgreSQL's rule, raw bytes when it refuses; random input never crashes") {
  CHECK(saslprep_or_raw("plain ascii\x07") == "plain ascii\x07");   // ASCII is used as it is
  CHECK(saslprep_or_raw("I\xc2\xadX") == "IX");
  CHECK(saslprep_or_raw("bad \xff") == "bad \xff");
  CHECK(saslprep_or_raw("\xd7\x90" "a") == "\xd7\x90" "a");
  // A secret made from one form of a password verifies the other.
  CHECK(scram_build_secret("p\xc3\xa4ssword", "salt", 4096) == scram_build_secret("pa\xcc\x88ssword", "salt", 4096));
  CHECK(scram_build_secret("IX", "salt", 4096) == scram_build_secret("\xe2\x85\xa8", "salt", 4096));
  std::mt19937 rng(4013);
  for (int i = 0; i < 20000; ++i) {
    std::string s(1 + rng() % 24, '\0');
    for (char& c : s) c = char(rng() % 2 ? 0x80 | (rng() & 0x3F) : rng());
    if (auto p = saslprep(s)) CHECK(utf8_valid(*p));
  }
}
