// Table generations and database epochs: zero until bumped, fresh values per bump, read sets,
// the overflow stripes once the exact table is full, and readers racing a writer.
#include <doctest/doctest.h>

#include <atomic>
#include <set>
#include <thread>
#include <vector>

#include "cache/generations.h"

using namespace pgrelay::cache;

TEST_CASE("generations: a table never bumped is at 0 and takes no slot") {
  Generations g;
  CHECK(g.current(TableId{42}) == 0);
  CHECK(g.epoch(DatabaseId{1}) == 0);
  CHECK(g.tables_tracked() == 0);
  CHECK(g.databases_tracked() == 0);
}

TEST_CASE("generations: each bump gives the table a value it never had, and touches no other table") {
  Generations g;
  std::set<uint64_t> seen{g.current(TableId{1})};
  uint64_t last = 0;
  for (int i = 0; i < 100; ++i) {
    g.bump(TableId{1});
    const uint64_t now = g.current(TableId{1});
    CHECK(now > last);                  // never goes back
    CHECK(seen.insert(now).second);     // never repeats
    last = now;
  }
  CHECK(g.current(TableId{2}) == 0);
  CHECK(g.tables_tracked() == 1);
  g.bump(TableId{0});                   // 0 is an id like any other
  CHECK(g.current(TableId{0}) != 0);
  CHECK(g.current(TableId{1}) == last);
}

TEST_CASE("generations: a read set stays current until one of its tables or its database moves") {
  Generations g;
  const std::vector<TableId> tables = {TableId{1}, TableId{2}};
  const ReadSet reads = g.capture(DatabaseId{7}, tables);
  REQUIRE(reads.tables.size() == 2);
  CHECK(g.unchanged(reads));

  g.bump(TableId{3});                   // not read
  g.bump_database(DatabaseId{8});       // another database
  CHECK(g.unchanged(reads));

  g.bump(TableId{2});
  CHECK_FALSE(g.unchanged(reads));
  const ReadSet again = g.capture(DatabaseId{7}, tables);
  CHECK(g.unchanged(again));

  g.bump_database(DatabaseId{7});
  CHECK_FALSE(g.unchanged(again));
  CHECK(g.unchanged(g.capture(DatabaseId{7}, tables)));
}

TEST_CASE("generations: an empty read set depends on its database's epoch only") {
  Generations g;
  const ReadSet reads = g.capture(DatabaseId{1}, {});
  g.bump(TableId{1});
  CHECK(g.unchanged(reads));
  g.bump_database(DatabaseId{1});
  CHECK_FALSE(g.unchanged(reads));
}

TEST_CASE("generations: past max_tables, new tables share stripes: more invalidation, never less") {
  Generations g(GenerationsOptions{.max_tables = 2, .max_databases = 1, .overflow_stripes = 1});
  g.bump(TableId{1});
  g.bump(TableId{2});
  CHECK(g.tables_tracked() == 2);
  const uint64_t one = g.current(TableId{1});
  const ReadSet bystander = g.capture(DatabaseId{1}, std::vector<TableId>{TableId{50}});
  const ReadSet exact = g.capture(DatabaseId{1}, std::vector<TableId>{TableId{1}});

  g.bump(TableId{3});                   // no slot left: its stripe moves
  CHECK(g.tables_tracked() == 2);
  CHECK(g.current(TableId{3}) != 0);
  CHECK_FALSE(g.unchanged(bystander));  // shares the only stripe: invalidated too (a lost hit)
  CHECK(g.unchanged(exact));            // exact tables are not affected
  CHECK(g.current(TableId{1}) == one);

  const uint64_t three = g.current(TableId{3});
  g.bump(TableId{3});
  CHECK(g.current(TableId{3}) != three);

  // Databases overflow the same way.
  g.bump_database(DatabaseId{1});
  const uint64_t e2 = g.epoch(DatabaseId{2});
  g.bump_database(DatabaseId{2});
  CHECK(g.epoch(DatabaseId{2}) != e2);
  CHECK(g.databases_tracked() == 1);
}

TEST_CASE("generations: with no exact slots at all, bumps still invalidate") {
  Generations g(GenerationsOptions{.max_tables = 0, .max_databases = 0, .overflow_stripes = 8});
  const ReadSet reads = g.capture(DatabaseId{1}, std::vector<TableId>{TableId{5}});
  g.bump(TableId{5});
  CHECK_FALSE(g.unchanged(reads));
  CHECK(g.tables_tracked() == 0);
}

TEST_CASE("generations: readers racing bumps only ever see a table's value go up") {
  Generations g(GenerationsOptions{.max_tables = 64, .max_databases = 4, .overflow_stripes = 4});
  constexpr int kTables = 200;   // most of them overflow into the stripes
  std::atomic<bool> stop{false};
  std::atomic<int> violations{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&] {
      std::vector<uint64_t> last(kTables, 0);
      while (!stop.load()) {
        for (int t = 0; t < kTables; ++t) {
          const uint64_t v = g.current(TableId{static_cast<uint64_t>(t)});
          if (v < last[t]) violations.fetch_add(1);
          last[t] = v;
        }
      }
    });
  }
  std::thread writer([&] {
    for (int i = 0; i < 20000; ++i) g.bump(TableId{static_cast<uint64_t>(i % kTables)});
  });
  writer.join();
  stop.store(true);
  for (std::thread& t : readers) t.join();
  CHECK(violations.load() == 0);
  CHECK(g.tables_tracked() == 64);
  for (int t = 0; t < kTables; ++t) CHECK(g.current(TableId{static_cast<uint64_t>(t)}) != 0);
}
