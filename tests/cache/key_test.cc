// Cache keys never let two different inputs share bytes.
#include <doctest/doctest.h>

#include "cache/key.h"

using namespace pgrelay::cache;

TEST_CASE("field boundaries, NULL and order are part of the key") {
  auto key = [](auto&& fill) {
    KeyBuilder b;
    fill(b);
    return b.finish();
  };
  auto ab_c = key([](KeyBuilder& b) { b.add('t', "ab").add('t', "c"); });
  auto a_bc = key([](KeyBuilder& b) { b.add('t', "a").add('t', "bc"); });
  CHECK(ab_c.bytes != a_bc.bytes);
  CHECK(ab_c.hash != a_bc.hash);
  auto null = key([](KeyBuilder& b) { b.add_null('p'); });
  auto empty = key([](KeyBuilder& b) { b.add('p', ""); });
  CHECK(null.bytes != empty.bytes);
  auto xy = key([](KeyBuilder& b) { b.add('s', "x").add('v', "y"); });
  auto yx = key([](KeyBuilder& b) { b.add('v', "y").add('s', "x"); });
  CHECK(xy.bytes != yx.bytes);
  // Same tag, same bytes: a text and a number that spell the same bytes still differ by tag.
  auto as_text = key([](KeyBuilder& b) { b.add('f', std::string_view("\0\0\0\1", 4)); });
  auto as_number = key([](KeyBuilder& b) { b.add('n', uint32_t{1}); });
  CHECK(as_text.bytes != as_number.bytes);
  // Deterministic.
  CHECK(key([](KeyBuilder& b) { b.add('t', "ab").add('t', "c"); }).bytes == ab_c.bytes);
  CHECK(key([](KeyBuilder& b) { b.add('t', "ab").add('t', "c"); }).hash == ab_c.hash);
}

TEST_CASE("the builder starts over after finish") {
  KeyBuilder b;
  b.add('t', "first");
  auto first = b.finish();
  b.add('t', "second");
  auto second = b.finish();
  KeyBuilder fresh;
  fresh.add('t', "second");
  CHECK(second.bytes == fresh.finish().bytes);
  CHECK(first.bytes != second.bytes);
}

TEST_CASE("a key built on a shared prefix equals one built whole") {
  KeyBuilder prefix;
  prefix.add('d', "db").add('u', "alice");
  KeyBuilder on_prefix(prefix.bytes());
  on_prefix.add('Q', "SELECT 1");
  KeyBuilder whole;
  whole.add('d', "db").add('u', "alice").add('Q', "SELECT 1");
  auto a = on_prefix.finish();
  auto b = whole.finish();
  CHECK(a.bytes == b.bytes);
  CHECK(a.hash == b.hash);
}
