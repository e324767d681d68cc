// The Redis tier's value format and key names: round trips, compression, and every bad value refused.
#include <doctest/doctest.h>

#include <cstring>
#include <random>
#include <set>
#include <string>

#include "cache/key.h"
#include "cache/shared_keys.h"
#include "cache/shared_value.h"

using namespace pgrelay::cache;

namespace {

std::vector<std::byte> bytes_of(std::string_view s) {
  const auto* p = reinterpret_cast<const std::byte*>(s.data());
  return {p, p + s.size()};
}

// Backend messages that compress well when large.
std::vector<std::byte> answer(size_t size) {
  std::string s;
  while (s.size() < size) s += "D\0\0\0\x0b\0\x01\0\0\0\x01x row " + std::to_string(s.size() % 97);
  s.resize(size);
  return bytes_of(s);
}

SharedValueMeta meta_for(const std::vector<std::byte>& key) {
  SharedValueMeta m;
  m.key = key_digest(key);
  m.fingerprint = 0x1122334455667788ULL;
  m.filled_at_unix_ms = 1'700'000'000'123ULL;
  m.ttl_ms = 60'000;
  m.reads.database = DatabaseId{0xdeadbeefcafef00dULL};
  m.reads.epoch = 7;
  m.reads.tables = {{TableId{1}, 10}, {TableId{0xffffffffffffffffULL}, 0}, {TableId{42}, 1ULL << 63}};
  return m;
}

const std::vector<std::byte> kKey = bytes_of("d\x03\0\0\0appu\x05\0\0\0alicet\x08\0\0\0select 1");

SharedValueStatus decode(std::span<const std::byte> v, DecodedSharedValue& out, size_t max_raw = 1 << 20) {
  return decode_shared_value(v, key_digest(kKey), max_raw, out);
}

}  // namespace

TEST_CASE("a value round-trips below and above the compression threshold") {
  for (size_t size : {size_t{0}, size_t{1}, size_t{100}, size_t{1024}, size_t{1025}, size_t{200'000}}) {
    CAPTURE(size);
    const std::vector<std::byte> raw = answer(size);
    const StoredResponse packed = pack_response(raw, 1024);
    CHECK(packed.compressed == (size > 1024));
    const SharedValueMeta meta = meta_for(kKey);
    const std::vector<std::byte> value = encode_shared_value(meta, packed);
    CHECK(value.size() == kSharedValueHeaderBytes + 3 * 16 + packed.bytes.size());
    if (size > 1024) CHECK(value.size() < size);

    DecodedSharedValue out;
    REQUIRE(decode(value, out) == SharedValueStatus::kUsable);
    CHECK(out.raw == raw);
    CHECK(out.response.compressed == packed.compressed);
    CHECK(out.response.bytes == packed.bytes);
    CHECK(out.response.raw_size == size);
    CHECK(out.meta.key == meta.key);
    CHECK(out.meta.fingerprint == meta.fingerprint);
    CHECK(out.meta.filled_at_unix_ms == meta.filled_at_unix_ms);
    CHECK(out.meta.ttl_ms == meta.ttl_ms);
    CHECK(out.meta.reads.database == meta.reads.database);
    CHECK(out.meta.reads.epoch == meta.reads.epoch);
    REQUIRE(out.meta.reads.tables.size() == 3);
    for (size_t i = 0; i < 3; ++i) {
      CHECK(out.meta.reads.tables[i].table == meta.reads.tables[i].table);
      CHECK(out.meta.reads.tables[i].generation == meta.reads.tables[i].generation);
    }
  }
}

TEST_CASE("a value with no tables, and incompressible bytes above the threshold stay raw") {
  std::vector<std::byte> noise(5000);
  std::mt19937 rng(1);
  for (auto& b : noise) b = std::byte(rng());
  const StoredResponse packed = pack_response(noise, 64);
  CHECK_FALSE(packed.compressed);
  SharedValueMeta meta = meta_for(kKey);
  meta.reads.tables.clear();
  DecodedSharedValue out;
  REQUIRE(decode(encode_shared_value(meta, packed), out) == SharedValueStatus::kUsable);
  CHECK(out.raw == noise);
  CHECK(out.meta.reads.tables.empty());
}

TEST_CASE("every truncation and every trailing byte is refused") {
  for (size_t size : {size_t{300}, size_t{5000}}) {
    const std::vector<std::byte> value = encode_shared_value(meta_for(kKey), pack_response(answer(size), 1024));
    for (size_t n = 0; n < value.size(); ++n) {
      DecodedSharedValue out;
      const SharedValueStatus s = decode(std::span(value).first(n), out);
      CHECK_MESSAGE(s == SharedValueStatus::kTruncated, "prefix of " << n << " bytes: " << to_string(s));
    }
    std::vector<std::byte> longer = value;
    longer.push_back(std::byte{0});
    DecodedSharedValue out;
    CHECK(decode(longer, out) == SharedValueStatus::kTrailing);
    longer.resize(value.size() + 16);   // as if one more table
    CHECK(decode(longer, out) == SharedValueStatus::kTrailing);
  }
}

TEST_CASE("every flipped bit is refused, never misread") {
  for (size_t size : {size_t{200}, size_t{3000}}) {
    CAPTURE(size);
    const std::vector<std::byte> value = encode_shared_value(meta_for(kKey), pack_response(answer(size), 1024));
    for (size_t i = 0; i < value.size(); ++i) {
      for (int bit = 0; bit < 8; ++bit) {
        std::vector<std::byte> bad = value;
        bad[i] ^= std::byte(1 << bit);
        DecodedSharedValue out;
        const SharedValueStatus s = decode(bad, out);
        CHECK_MESSAGE(s != SharedValueStatus::kUsable, "byte " << i << " bit " << bit);
      }
    }
  }
}

TEST_CASE("what is wrong is told apart: magic, version, flags, sizes, key") {
  const std::vector<std::byte> value = encode_shared_value(meta_for(kKey), pack_response(answer(3000), 1024));
  DecodedSharedValue out;
  auto with = [&](size_t at, uint8_t v) {
    std::vector<std::byte> bad = value;
    bad[at] = std::byte(v);
    return decode(bad, out);
  };
  CHECK(decode(bytes_of("hello world"), out) == SharedValueStatus::kBadMagic);
  CHECK(decode(bytes_of("pgRc"), out) == SharedValueStatus::kTruncated);
  CHECK(with(4, kSharedValueVersion + 1) == SharedValueStatus::kWrongVersion);
  CHECK(with(4, 0) == SharedValueStatus::kWrongVersion);
  CHECK(with(5, 2) == SharedValueStatus::kUnknownFlags);
  CHECK(with(6, 1) == SharedValueStatus::kUnknownFlags);
  // A short value of a later version is that version's, not a truncated one of ours.
  std::vector<std::byte> future(value.begin(), value.begin() + 10);
  future[4] = std::byte(kSharedValueVersion + 1);
  CHECK(decode(future, out) == SharedValueStatus::kWrongVersion);
  // Over the caller's size limit: refused before anything is allocated for it.
  CHECK(decode(value, out, 2999) == SharedValueStatus::kBadSizes);
  CHECK(decode(value, out, 3000) == SharedValueStatus::kUsable);
  // Another key's value (a name collision) is a miss.
  CHECK(decode_shared_value(value, key_digest(bytes_of("other")), 1 << 20, out) == SharedValueStatus::kWrongKey);
}

TEST_CASE("sizes that disagree with the flags are refused even with a right checksum") {
  // A writer's bug, not corruption: a compressed flag on raw bytes, or an LZ4 block of another size.
  StoredResponse lying;
  lying.bytes = answer(100);
  lying.raw_size = 100;
  lying.compressed = true;   // payload_size == raw_size: not a compressed block
  DecodedSharedValue out;
  CHECK(decode(encode_shared_value(meta_for(kKey), lying), out) == SharedValueStatus::kBadSizes);
  StoredResponse packed = pack_response(answer(3000), 1024);
  packed.raw_size = 3001;   // decodes to 3000 bytes
  CHECK(decode(encode_shared_value(meta_for(kKey), packed), out) == SharedValueStatus::kCorrupt);
  StoredResponse uncompressed = pack_response(answer(100), 1024);
  uncompressed.raw_size = 99;
  CHECK(decode(encode_shared_value(meta_for(kKey), uncompressed), out) == SharedValueStatus::kBadSizes);
}

TEST_CASE("random bytes never decode") {
  std::mt19937 rng(7);
  DecodedSharedValue out;
  for (int i = 0; i < 2000; ++i) {
    std::vector<std::byte> junk(rng() % 400);
    for (auto& b : junk) b = std::byte(rng());
    if (junk.size() >= 4 && i % 2 == 0) std::memcpy(junk.data(), "pgRc\x01", std::min<size_t>(5, junk.size()));
    CHECK(decode(junk, out) != SharedValueStatus::kUsable);
  }
}

TEST_CASE("expiry counts from the fill time, and distrusts fill times far ahead") {
  SharedValueMeta m;
  m.filled_at_unix_ms = 10'000;
  m.ttl_ms = 1'000;
  CHECK_FALSE(m.expired(10'000));
  CHECK_FALSE(m.expired(10'999));
  CHECK(m.expired(11'000));
  CHECK_FALSE(m.expired(9'500));   // another instance's clock a little ahead
  CHECK(m.expired(9'000));
}

TEST_CASE("key names: namespaced, fixed-length, and distinct per key, database, table and kind") {
  KeyBuilder a;
  a.add('t', "select 1");
  KeyBuilder b;
  b.add('t', "select 2");
  const CacheKey ka = a.finish();
  const CacheKey kb = b.finish();
  const DatabaseId db{0x0123456789abcdefULL};
  const std::string name = answer_key_name("pgrelay", db, ka.bytes);
  CHECK(name.starts_with("pgrelay:a1:0123456789abcdef:"));
  CHECK(name.size() == std::string("pgrelay:a1:0123456789abcdef:").size() + 32);
  CHECK(name == answer_key_name("pgrelay", db, ka.bytes));
  CHECK(name != answer_key_name("pgrelay", db, kb.bytes));
  CHECK(name != answer_key_name("pgrelay", DatabaseId{1}, ka.bytes));
  CHECK(name != answer_key_name("other", db, ka.bytes));
  CHECK(generations_key_name("p", db) == "p:g:0123456789abcdef");
  CHECK(table_field(TableId{0xff}) == "00000000000000ff");
  std::set<std::string> names;
  for (int i = 0; i < 10000; ++i) {
    KeyBuilder k;
    k.add('n', uint32_t(i));
    names.insert(answer_key_name("p", db, k.finish().bytes));
  }
  CHECK(names.size() == 10000);
}

TEST_CASE("invalidation messages round-trip, and anything malformed is refused") {
  const DatabaseId db{0x0123456789abcdefULL};
  CHECK(invalidation_channel_name("p") == "p:inv");
  Invalidation tables{.instance = "ab12", .database = db, .sent_unix_ms = 1700000000123, .whole_database = false,
                      .tables = {TableId{1}, TableId{0xfedcba9876543210ULL}}, .seq = 0, .window = false, .schema = false,
                      .before_leases = false};
  const std::string text = encode_invalidation(tables);
  CHECK(text == "2 ab12 0 0123456789abcdef 1700000000123 0000000000000001,fedcba9876543210");
  auto back = decode_invalidation(text);
  REQUIRE(back);
  CHECK(back->instance == "ab12");
  CHECK(back->database == db);
  CHECK(back->sent_unix_ms == 1700000000123);
  CHECK_FALSE(back->whole_database);
  REQUIRE(back->tables.size() == 2);
  CHECK(back->tables[1] == TableId{0xfedcba9876543210ULL});

  Invalidation whole{.instance = "x", .database = db, .sent_unix_ms = 5, .whole_database = true, .tables = {}, .seq = 0,
                     .window = false, .schema = false, .before_leases = false};
  auto w = decode_invalidation(encode_invalidation(whole));
  REQUIRE(w);
  CHECK(w->whole_database);
  CHECK(w->tables.empty());

  // The format before leases is still read; a window and a seq round-trip.
  auto v1 = decode_invalidation("1 ab12 0123456789abcdef 5 *");
  REQUIRE(v1);
  CHECK(v1->whole_database);
  CHECK(v1->seq == 0);
  // A window and a schema change round-trip, each with its seq.
  for (const auto& [window, text] : {std::pair{true, "2 x 77 0123456789abcdef 5 W"}, std::pair{false, "2 x 77 0123456789abcdef 5 S"}}) {
    const Invalidation m{.instance = "x", .database = db, .sent_unix_ms = 5, .whole_database = true, .tables = {}, .seq = 77,
                         .window = window, .schema = !window, .before_leases = false};
    CHECK(encode_invalidation(m) == text);
    auto back = decode_invalidation(text);
    REQUIRE(back);
    CHECK(back->window == window);
    CHECK(back->schema == !window);
    CHECK(back->whole_database);
    CHECK(back->seq == 77);
  }
  CHECK_FALSE(decode_invalidation("1 x 0123456789abcdef 5 W"));   // no windows before leases
  CHECK_FALSE(decode_invalidation("1 x 0123456789abcdef 5 S"));

  for (std::string_view bad : {"", "1", "2 ab12 0123456789abcdef 1 *", "2 ab12 1 0123456789abcdef 1", "3 ab12 1 0123456789abcdef 1 *", "1  0123456789abcdef 1 *", "1 a 0123 1 *",
                               "1 a 0123456789abcdef x *", "1 a 0123456789abcdef 1", "1 a 0123456789abcdef 1 ",
                               "1 a 0123456789abcdef 1 * extra", "1 a 0123456789abcdef 1 0000000000000001,",
                               "1 a 0123456789abcdef 1 0000000000000001;0000000000000002", "1 a 0123456789abcdef 1 00000001",
                               "1 a 0123456789abcdeg 1 *", "1 a 0123456789abcdef -1 *"}) {
    CHECK_MESSAGE(!decode_invalidation(bad), bad);
  }
  // Every truncation of a whole-database message is refused (a tables message cut at a comma
  // is a shorter good one, so it is not the example).
  const std::string whole_text = encode_invalidation(whole);
  for (size_t n = 0; n < whole_text.size(); ++n) CHECK_MESSAGE(!decode_invalidation(whole_text.substr(0, n)), whole_text.substr(0, n));
}
