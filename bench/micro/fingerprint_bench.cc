// Statement fingerprints: pgrelay's analyzer::fingerprint() against libpg_query's
// pg_query_fingerprint() (Debian libpg-query-dev) on the same statements, in the same run.
//
// Inputs: the statements of pgbench's tpcb-like script with their literals (what a pooler sees
// from `pgbench -M simple`), then a few larger ORM-style statements. Reports statements per
// second (items_per_second) per benchmark; the target is 2 million per core for the
// pgbench set.
#include <benchmark/benchmark.h>
#include <pg_query.h>

#include <string>
#include <vector>

#include "analyzer/fingerprint.h"

namespace {

const std::vector<std::string>& pgbench_statements() {
  static const std::vector<std::string> v = {
      "BEGIN;",
      "UPDATE pgbench_accounts SET abalance = abalance + -4321 WHERE aid = 48213;",
      "SELECT abalance FROM pgbench_accounts WHERE aid = 48213;",
      "UPDATE pgbench_tellers SET tbalance = tbalance + -4321 WHERE tid = 7;",
      "UPDATE pgbench_branches SET bbalance = bbalance + -4321 WHERE bid = 1;",
      "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (7, 1, 48213, -4321, CURRENT_TIMESTAMP);",
      "END;",
  };
  return v;
}

const std::vector<std::string>& orm_statements() {
  static const std::vector<std::string> v = {
      "SELECT \"books\".\"id\", \"books\".\"title\", \"books\".\"author_id\", \"books\".\"published\" FROM \"books\" "
      "INNER JOIN \"authors\" ON (\"books\".\"author_id\" = \"authors\".\"id\") WHERE (\"authors\".\"name\" = 'Le Guin' "
      "AND \"books\".\"published\" >= '1969-01-01'::date) ORDER BY \"books\".\"published\" DESC LIMIT 21",
      "SELECT users.id AS users_id, users.name AS users_name, users.email AS users_email FROM users "
      "WHERE users.id IN (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16) AND users.active IS NOT NULL",
      "INSERT INTO events (kind, payload, created_at) VALUES ('click', '{\"x\": 1}', now()), ('view', '{}', now()) "
      "RETURNING id",
  };
  return v;
}

void pgrelay_fingerprint(benchmark::State& state, const std::vector<std::string>& inputs) {
  uint64_t sink = 0;
  size_t i = 0;
  for (auto _ : state) {
    sink ^= pgrelay::analyzer::fingerprint(inputs[i]).hash;
    if (++i == inputs.size()) i = 0;
  }
  benchmark::DoNotOptimize(sink);
  state.SetItemsProcessed(state.iterations());
}

void libpg_query_fingerprint(benchmark::State& state, const std::vector<std::string>& inputs) {
  uint64_t sink = 0;
  size_t i = 0;
  for (auto _ : state) {
    PgQueryFingerprintResult r = pg_query_fingerprint(inputs[i].c_str());
    sink ^= r.fingerprint;
    pg_query_free_fingerprint_result(r);
    if (++i == inputs.size()) i = 0;
  }
  benchmark::DoNotOptimize(sink);
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK_CAPTURE(pgrelay_fingerprint, pgbench, pgbench_statements());
BENCHMARK_CAPTURE(libpg_query_fingerprint, pgbench, pgbench_statements());
BENCHMARK_CAPTURE(pgrelay_fingerprint, orm, orm_statements());
BENCHMARK_CAPTURE(libpg_query_fingerprint, orm, orm_statements());

}  // namespace

BENCHMARK_MAIN();
