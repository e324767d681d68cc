// NPlusOneUnit: the flat value table, clearing for reuse, and units recycled between detectors.
#include <doctest/doctest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "analyzer/fingerprint.h"
#include "analyzer/n_plus_one.h"
#include "analyzer/n_plus_one_unit.h"

using namespace pgrelay::analyzer;

namespace {

std::vector<NPlusOneUnit::ValueOrigin> origins(const NPlusOneUnit& u, uint64_t h) {
  std::vector<NPlusOneUnit::ValueOrigin> out;
  u.for_each_origin(h, [&](const NPlusOneUnit::ValueOrigin& o) {
    out.push_back(o);
    return true;
  });
  return out;
}

// One statement through `d`: `sql`'s inlined constants as parameters, then its rows.
std::optional<NPlusOneDetection> run(NPlusOneDetector& d, uint64_t& now, std::string_view sql, bool in_transaction,
                                     const std::vector<std::string_view>& columns = {},
                                     const std::vector<std::vector<std::string_view>>& rows = {}) {
  FingerprintOptions o;
  o.collect_constants = true;
  const Fingerprint f = fingerprint(sql, o);
  std::vector<std::string> values;
  for (const ConstantSpan& c : f.constants) values.push_back(constant_value(sql, c));
  const std::vector<std::string_view> params(values.begin(), values.end());
  d.statement_start({.fingerprint = f.hash, .read = true, .in_transaction = in_transaction, .now_micros = ++now,
                     .parameters = params});
  if (!columns.empty()) d.columns(columns);
  for (const auto& r : rows) {
    std::vector<std::optional<std::string_view>> v(r.begin(), r.end());
    d.row(v);
  }
  return d.statement_end(++now);
}

}  // namespace

TEST_CASE("n+1 unit: values whose hashes share their low bits are all found, in order, across growth") {
  NPlusOneUnit u;
  // Every hash lands on the same home slot at every table size up to 2^20: one long probe.
  for (uint32_t i = 0; i < 300; ++i) u.add_value((uint64_t(i % 3) << 40) | 7, {.source = i, .row = i});
  CHECK(u.value_count() == 300);
  const auto zero = origins(u, 7);
  REQUIRE(zero.size() == 100);
  for (size_t k = 0; k < zero.size(); ++k) CHECK(zero[k].source == 3 * k);   // insertion order
  CHECK(origins(u, (uint64_t(2) << 40) | 7).size() == 100);
  CHECK(origins(u, 8).empty());
  const NPlusOneUnit::ValueOrigin* found = u.find_origin((uint64_t(1) << 40) | 7, 298);
  REQUIRE(found != nullptr);
  CHECK(found->row == 298);
  CHECK(u.find_origin((uint64_t(1) << 40) | 7, 299) == nullptr);
  CHECK(u.worth_keeping());   // 300 values: a table of 1,024 slots
  for (uint32_t i = 300; i < 600; ++i) u.add_value(uint64_t(i) << 20, {.source = i, .row = i});
  CHECK_FALSE(u.worth_keeping());   // 600: 2,048, freed rather than kept as a spare
  CHECK(origins(u, 7).size() == 100);
  CHECK(origins(u, uint64_t(599) << 20).size() == 1);

  u.clear();
  CHECK(u.value_count() == 0);
  CHECK(origins(u, 7).empty());
  u.add_value(7, {.source = 5, .row = 1});   // the cleared table takes values again
  REQUIRE(origins(u, 7).size() == 1);
  CHECK(origins(u, 7)[0].source == 5);
}

TEST_CASE("n+1 unit: sources and tracked fingerprints are found again after reuse, never stale") {
  NPlusOneUnit u;
  CHECK(u.source_for(1, "id") == 0);
  CHECK(u.source_for(1, "author_id") == 1);
  CHECK(u.source_for(2, "id") == 2);
  CHECK(u.source_for(1, "id") == 0);
  NPlusOneUnit::Tracked* t = u.add_tracked(42);
  REQUIRE(t != nullptr);
  t->tuples.push_back(9);
  t->reported = true;
  CHECK(u.find_tracked(42) == t);

  u.clear();
  CHECK(u.find_tracked(42) == nullptr);
  CHECK(u.source_for(2, "name") == 0);   // index 0 reused with another name
  CHECK(u.source(0).column == "name");
  NPlusOneUnit::Tracked* again = u.add_tracked(43);
  REQUIRE(again != nullptr);
  CHECK(again->tuples.empty());
  CHECK_FALSE(again->reported);

  for (uint64_t f = 0; f < NPlusOneUnit::kMaxSources + 10; ++f) (void)u.source_for(100 + f, "c");
  CHECK(u.source_for(9999, "c") == NPlusOneUnit::kNoSource);
}

TEST_CASE("n+1 unit: a unit handed from one session to the next keeps nothing of the first's values") {
  // Both detectors on this thread: the first one's unit, given back at its COMMIT, is the one
  // the second takes.
  NPlusOneDetector first, second;
  uint64_t now = 1'000'000;
  std::vector<std::vector<std::string_view>> books;
  const std::vector<std::string> ids = {"11", "12", "13", "14", "15", "16"};
  for (const std::string& id : ids) books.push_back({id});
  CHECK_FALSE(first.holds_unit());
  run(first, now, "select author_id from books", true, {"author_id"}, books);
  CHECK(first.holds_unit());
  CHECK(first.remembered_values() == 6);
  first.transaction_end();
  CHECK_FALSE(first.holds_unit());

  // The second session's loop takes the same author ids, with no earlier result of its own.
  std::optional<NPlusOneDetection> found;
  for (const std::string& id : ids) {
    if (auto d = run(second, now, "select name from authors where id = " + id, true)) found = d;
    CHECK(second.remembered_values() == 0);
  }
  REQUIRE(found.has_value());
  CHECK(found->executions == 5);
  CHECK_FALSE(found->source.has_value());   // the first session's author_id rows are not its source

  // Its own earlier result is, in its next unit.
  second.transaction_end();
  run(second, now, "select author_id from books", true, {"author_id"}, books);
  found.reset();
  for (const std::string& id : ids) {
    if (auto d = run(second, now, "select name from authors where id = " + id, true)) found = d;
  }
  REQUIRE(found.has_value());
  REQUIRE(found->source.has_value());
  CHECK(found->source->column == "author_id");
}
