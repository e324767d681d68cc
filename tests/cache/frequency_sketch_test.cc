// The W-TinyLFU frequency sketch: counting, saturation, telling hot from cold, aging, growth.
#include <doctest/doctest.h>

#include <cstdint>

#include "cache/frequency_sketch.h"

using namespace pgrelay::cache;

TEST_CASE("frequency sketch: counts a key's increments and saturates at 15") {
  FrequencySketch s(1024);
  CHECK(s.frequency(7) == 0);
  for (unsigned i = 1; i <= 10; ++i) {
    s.increment(7);
    CHECK(s.frequency(7) == i);
  }
  for (int i = 0; i < 20; ++i) s.increment(7);
  CHECK(s.frequency(7) == FrequencySketch::kMaxCount);
  CHECK(s.frequency(8) == 0);
}

TEST_CASE("frequency sketch: hot keys stand out from a crowd of one-off keys") {
  FrequencySketch s(4096);
  for (uint64_t k = 1000; k < 4000; ++k) s.increment(k);          // cold: once each
  for (int round = 0; round < 8; ++round) {
    for (uint64_t k = 0; k < 16; ++k) s.increment(k);             // hot: 8 times each
  }
  for (uint64_t k = 0; k < 16; ++k) CHECK(s.frequency(k) >= 8);   // count-min never underestimates
  int cold_high = 0;
  for (uint64_t k = 1000; k < 4000; ++k) cold_high += s.frequency(k) >= 4 ? 1 : 0;
  CHECK(cold_high < 30);                                           // collisions inflate only a few
}

TEST_CASE("frequency sketch: after 10 increments per word every count is halved") {
  FrequencySketch s(16);   // the smallest table: 16 words, halving every 160 additions
  REQUIRE(s.words() == 16);
  for (int i = 0; i < 15; ++i) s.increment(1);
  REQUIRE(s.frequency(1) == 15);
  uint64_t k = 100;
  while (s.halvings() == 0) s.increment(k++);
  CHECK(k - 100 < 200);
  CHECK(s.frequency(1) <= 7);   // 15 halved (collisions may have added a little before)
  CHECK(s.frequency(1) >= 7);
}

TEST_CASE("frequency sketch: growing to more entries forgets the counts") {
  FrequencySketch s(16);
  s.increment(3);
  s.ensure_capacity(10);   // still fits: nothing changes
  CHECK(s.words() == 16);
  CHECK(s.frequency(3) == 1);
  s.ensure_capacity(100);
  CHECK(s.words() == 128);
  CHECK(s.frequency(3) == 0);
}
