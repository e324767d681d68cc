// N+1 detection: units of work, distinct executions, value lineage from DataRows, and the registry.
#include <doctest/doctest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "analyzer/fingerprint.h"
#include "analyzer/n_plus_one.h"

using namespace pgrelay::analyzer;

namespace {

using Row = std::vector<std::optional<std::string>>;

// One client session as the proxy would drive the detector: each statement fingerprinted, its
// inlined constants (or Bind values) as parameters, its result's columns and rows fed back.
struct Client {
  NPlusOneDetector detector;
  uint64_t now = 1'000'000;
  uint64_t step = 1'000;                  // micros between statements, and each one's duration
  std::vector<NPlusOneDetection> found;

  explicit Client(NPlusOneOptions o = {}) : detector(o) {}

  // Runs `sql`. `binds`, when given, are its $n values; otherwise its inlined constants are.
  uint64_t run(std::string_view sql, bool in_transaction = false, const std::vector<std::string>& columns = {},
               const std::vector<Row>& rows = {}, const std::vector<std::string>& binds = {}) {
    FingerprintOptions o;
    o.collect_constants = true;
    const Fingerprint f = fingerprint(sql, o);
    std::vector<std::string> values = binds;
    if (binds.empty()) {
      for (const ConstantSpan& c : f.constants) values.push_back(constant_value(sql, c));
    }
    const std::vector<std::string_view> params(values.begin(), values.end());
    now += step;
    detector.statement_start({.fingerprint = f.hash,
                              .read = f.normalized.starts_with("select "),
                              .in_transaction = in_transaction,
                              .now_micros = now,
                              .parameters = params});
    if (!columns.empty()) {
      const std::vector<std::string_view> names(columns.begin(), columns.end());
      detector.columns(names);
    }
    for (const Row& r : rows) {
      std::vector<std::optional<std::string_view>> v;
      for (const auto& x : r) v.push_back(x ? std::optional<std::string_view>(*x) : std::nullopt);
      detector.row(v);
    }
    now += step;
    if (auto d = detector.statement_end(now)) found.push_back(*d);
    return f.hash;
  }
};

uint64_t fp(std::string_view sql) { return fingerprint(sql).hash; }

const char* kBooks = R"(SELECT "app_book"."id", "app_book"."title", "app_book"."author_id" FROM "app_book")";

std::string author_lookup(int id) {
  return R"(SELECT "app_author"."id", "app_author"."name" FROM "app_author" WHERE "app_author"."id" = )" +
         std::to_string(id) + " LIMIT 21";
}

// Authors 1..13, spread so that author ids are also book ids (1..50): only the order of the rows
// tells author_id from id.
int author_of(int book) { return book * 7 % 13 + 1; }

// Django's `for book in Book.objects.all(): book.author`: the books, then one lookup per book.
void django_loop(Client& c, int books = 50) {
  std::vector<Row> rows;
  for (int i = 0; i < books; ++i)
    rows.push_back({std::to_string(i + 1), "Book " + std::to_string(i), std::to_string(author_of(i))});
  c.run(kBooks, false, {"id", "title", "author_id"}, rows);
  for (int i = 0; i < books; ++i) {
    const int a = author_of(i);
    c.run(author_lookup(a), false, {"id", "name"}, {{std::to_string(a), "Author " + std::to_string(a)}});
  }
}

}  // namespace

TEST_CASE("n+1: Django's lazy foreign key: detected once, sourced from the books' author_id") {
  Client c;
  django_loop(c);
  REQUIRE(c.found.size() == 1);
  const NPlusOneDetection& d = c.found[0];
  CHECK(d.fingerprint == fp(author_lookup(1)));
  CHECK(d.executions == 5);
  REQUIRE(d.source.has_value());
  CHECK(d.source->fingerprint == fp(kBooks));
  CHECK(d.source->column == "author_id");   // not "id", which holds every author id too
  CHECK(d.source->parameter == 0);          // not LIMIT 21, though a book has id 21
  CHECK(d.source->matched == 5);
}

TEST_CASE("n+1: ids in two columns of the source: the one whose rows the loop walked in order wins") {
  Client c;   // author_id listed first this time, so the column order cannot decide
  const char* books = "select author_id, id from books";
  std::vector<Row> rows;
  for (int i = 0; i < 30; ++i) rows.push_back({std::to_string(author_of(i)), std::to_string(i + 1)});
  c.run(books, false, {"author_id", "id"}, rows);
  for (int i = 0; i < 30; ++i) c.run("select name from authors where id = " + std::to_string(author_of(i)));
  REQUIRE(c.found.size() == 1);
  REQUIRE(c.found[0].source.has_value());
  CHECK(c.found[0].source->column == "author_id");

  Client ids;   // and a loop over the books' own ids names id
  ids.run(books, false, {"author_id", "id"}, rows);
  for (int i = 0; i < 30; ++i) ids.run("select * from reviews where book_id = " + std::to_string(i + 1));
  REQUIRE(ids.found.size() == 1);
  REQUIRE(ids.found[0].source.has_value());
  CHECK(ids.found[0].source->column == "id");
}

TEST_CASE("n+1: a parameter that never changes is not the source, though an earlier query returned it") {
  Client c;
  c.run("select author_id from books", false, {"author_id"}, {{"31"}, {"32"}, {"33"}, {"34"}, {"35"}});
  c.run("select value from settings where name = 'page_size'", false, {"value"}, {{"21"}});
  for (int a = 35; a >= 31; --a) c.run("select * from authors where id = " + std::to_string(a) + " limit 21");
  REQUIRE(c.found.size() == 1);
  REQUIRE(c.found[0].source.has_value());
  CHECK(c.found[0].source->fingerprint == fp("select author_id from books"));
  CHECK(c.found[0].source->column == "author_id");
}

TEST_CASE("n+1: SQLAlchemy lazy loading with $1 Bind values inside a transaction is sourced too") {
  Client c;
  const char* lookup = "SELECT authors.id AS authors_id, authors.name AS authors_name FROM authors WHERE authors.id = $1";
  c.run("BEGIN");
  std::vector<Row> rows;
  for (int i = 0; i < 20; ++i) rows.push_back({std::to_string(100 + i), std::to_string(500 + i % 7)});
  c.run("SELECT books.id, books.author_id FROM books WHERE books.shelf = $1", true, {"id", "author_id"}, rows, {"3"});
  for (int i = 0; i < 20; ++i) {
    const std::string a = std::to_string(500 + i % 7);
    c.run(lookup, true, {"authors_id", "authors_name"}, {{a, "x"}}, {a});
  }
  c.run("COMMIT", true);
  REQUIRE(c.found.size() == 1);
  REQUIRE(c.found[0].source.has_value());
  CHECK(c.found[0].source->fingerprint == fp("SELECT books.id, books.author_id FROM books WHERE books.shelf = $1"));
  CHECK(c.found[0].source->column == "author_id");
}

TEST_CASE("n+1: values that no earlier statement returned: detected, without a source") {
  Client c;
  c.run("select id from users where active", false, {"id"}, {{"1"}, {"2"}, {"3"}});
  for (int i = 0; i < 5; ++i) c.run("select * from orders where id = " + std::to_string(900 + i), false, {"id"}, {});
  REQUIRE(c.found.size() == 1);
  CHECK(c.found[0].fingerprint == fp("select * from orders where id = 1"));
  CHECK_FALSE(c.found[0].source.has_value());
}

TEST_CASE("n+1: one execution whose value came from elsewhere leaves the pattern without a source") {
  Client c;
  c.run("select id from users", false, {"id"}, {{"11"}, {"12"}, {"13"}, {"14"}, {"15"}});
  c.run("select * from profiles where user_id = 99", false, {"id"}, {});
  for (int u = 11; u <= 14; ++u) c.run("select * from profiles where user_id = " + std::to_string(u));
  REQUIRE(c.found.size() == 1);
  CHECK_FALSE(c.found[0].source.has_value());   // 4 of 5 is below the threshold
}

TEST_CASE("n+1: rows of the repeated query itself or of a write are not a source") {
  Client tree;   // walking a tree one level per query: each parent id came from the last query
  tree.run("select id from nodes where parent_id is null", false, {"id"}, {{"1"}});
  std::string parent = "1";
  for (int level = 0; level < 6; ++level) {
    const std::string child = std::to_string(level + 2);
    tree.run("select id from nodes where parent_id = " + parent, false, {"id"}, {{child}});
    parent = child;
  }
  REQUIRE(tree.found.size() == 1);
  CHECK_FALSE(tree.found[0].source.has_value());

  Client writes;
  std::vector<Row> ids;
  for (int i = 0; i < 5; ++i) ids.push_back({std::to_string(40 + i)});
  writes.run("insert into t (a) values (1), (2), (3), (4), (5) returning id", false, {"id"}, ids);
  for (int i = 0; i < 5; ++i) writes.run("select * from t where id = " + std::to_string(40 + i));
  REQUIRE(writes.found.size() == 1);
  CHECK_FALSE(writes.found[0].source.has_value());
}

TEST_CASE("n+1: below the threshold, or the same values again, is not an N+1") {
  Client few;
  for (int i = 0; i < 4; ++i) few.run("select * from t where id = " + std::to_string(i));
  CHECK(few.found.empty());

  Client same;
  for (int i = 0; i < 10; ++i) same.run("select * from t where id = 7 and kind = 'a'");
  CHECK(same.found.empty());

  Client none;   // no parameters at all: every execution is the same tuple
  for (int i = 0; i < 10; ++i) none.run("select now()");
  CHECK(none.found.empty());

  Client lower(NPlusOneOptions{.threshold = 3});
  for (int i = 0; i < 3; ++i) lower.run("select * from t where id = " + std::to_string(i));
  CHECK(lower.found.size() == 1);
}

TEST_CASE("n+1: a batch of INSERTs is not flagged; the same count of SELECTs is") {
  Client inserts;
  for (int i = 0; i < 50; ++i) inserts.run("INSERT INTO events (id, kind) VALUES (" + std::to_string(i) + ", 'click')");
  CHECK(inserts.found.empty());
  CHECK(inserts.detector.tracked_fingerprints() == 0);

  Client selects;
  for (int i = 0; i < 50; ++i) selects.run("SELECT * FROM events WHERE id = " + std::to_string(i));
  CHECK(selects.found.size() == 1);
}

TEST_CASE("n+1: pgbench tpcb transactions are units of their own: not flagged") {
  auto tpcb = [](Client& c, int tx, bool mark_begin, bool call_end) {
    const std::string aid = std::to_string((tx * 7919) % 100000 + 1), delta = std::to_string(tx % 5000 - 2500);
    // in_transaction as the status before each statement: BEGIN runs outside the block.
    c.run("BEGIN;", !mark_begin);
    c.run("UPDATE pgbench_accounts SET abalance = abalance + " + delta + " WHERE aid = " + aid + ";", true);
    c.run("SELECT abalance FROM pgbench_accounts WHERE aid = " + aid + ";", true, {"abalance"}, {{"0"}});
    c.run("UPDATE pgbench_tellers SET tbalance = tbalance + " + delta + " WHERE tid = 3;", true);
    c.run("UPDATE pgbench_branches SET bbalance = bbalance + " + delta + " WHERE bid = 1;", true);
    c.run("INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (3, 1, " + aid + ", " + delta +
              ", CURRENT_TIMESTAMP);", true);
    c.run("END;", true);
    if (call_end) c.detector.transaction_end();
  };
  Client flips;   // units split where in_transaction goes from true to false
  for (int tx = 0; tx < 100; ++tx) tpcb(flips, tx, true, false);
  CHECK(flips.found.empty());

  Client ends;    // every statement in a block, the ends told by transaction_end()
  for (int tx = 0; tx < 100; ++tx) tpcb(ends, tx, false, true);
  CHECK(ends.found.empty());

  Client one_block;   // control: the same statements, never told a block ended, are one unit
  for (int tx = 0; tx < 100; ++tx) tpcb(one_block, tx, false, false);
  CHECK(one_block.found.size() == 1);
}

TEST_CASE("n+1: a loop over distinct tables is not flagged") {
  Client c;
  for (int t = 0; t < 10; ++t) c.run("select count(*) from table_" + std::to_string(t) + " where tenant = " + std::to_string(t));
  CHECK(c.found.empty());
  CHECK(c.detector.tracked_fingerprints() == 10);
}

TEST_CASE("n+1: a pause longer than the window between autocommit statements splits units") {
  auto two_bursts = [](uint64_t pause) {
    Client c;
    for (int i = 0; i < 4; ++i) c.run("select * from t where id = " + std::to_string(i));
    c.now += pause;
    for (int i = 4; i < 8; ++i) c.run("select * from t where id = " + std::to_string(i));
    return c.found.size();
  };
  CHECK(two_bursts(150'000) == 0);
  CHECK(two_bursts(50'000) == 1);   // within the window: one unit of 8

  // Inside a transaction block the same pause does not split.
  Client tx;
  for (int i = 0; i < 4; ++i) tx.run("select * from t where id = " + std::to_string(i), true);
  tx.now += 10'000'000;
  for (int i = 4; i < 8; ++i) tx.run("select * from t where id = " + std::to_string(i), true);
  CHECK(tx.found.size() == 1);

  // A block after autocommit statements starts a new unit.
  Client begin;
  for (int i = 0; i < 4; ++i) begin.run("select * from t where id = " + std::to_string(i));
  for (int i = 4; i < 8; ++i) begin.run("select * from t where id = " + std::to_string(i), true);
  CHECK(begin.found.empty());
}

TEST_CASE("n+1: detected once per unit, and again in the next unit") {
  Client c;
  for (int i = 0; i < 20; ++i) c.run("select * from t where id = " + std::to_string(i));
  CHECK(c.found.size() == 1);
  c.now += 1'000'000;
  for (int i = 0; i < 20; ++i) c.run("select * from t where id = " + std::to_string(i));
  CHECK(c.found.size() == 2);
}

TEST_CASE("n+1: memory per unit is bounded") {
  Client c(NPlusOneOptions{.max_rows = 1000, .max_values = 100});
  std::vector<Row> rows;
  for (int i = 0; i < 500; ++i) rows.push_back({std::to_string(i), std::string(100, 'x'), std::nullopt, ""});
  c.run("select id, long_text, nothing, empty from t", false, {"id", "long_text", "nothing", "empty"}, rows);
  CHECK(c.detector.remembered_values() == 100);   // long, NULL and empty values are not remembered

  Client rows_cap;   // max_rows (64) per statement
  rows_cap.run("select id from t", false, {"id"}, rows);
  CHECK(rows_cap.detector.remembered_values() == 64);

  Client wide;
  for (int t = 0; t < 1000; ++t) wide.run("select * from table_" + std::to_string(t) + " where id = 1");
  CHECK(wide.detector.tracked_fingerprints() == 256);

  c.now += 1'000'000;   // a new unit forgets everything
  c.run("select 1");
  CHECK(c.detector.remembered_values() == 0);
  CHECK(c.detector.tracked_fingerprints() == 1);
}

TEST_CASE("n+1: wants_parameters, wants_columns and wants_rows say what the detector would look at") {
  Client c(NPlusOneOptions{.max_rows = 2, .max_values = 3});
  const std::vector<std::string_view> none;
  auto statement = [&](uint64_t fingerprint, bool read) {
    return NPlusOneStatement{.fingerprint = fingerprint, .read = read, .now_micros = c.now + c.step, .parameters = none};
  };
  const uint64_t lookup = fp("select * from t where id = 1");
  CHECK(c.detector.wants_parameters(statement(lookup, true)));
  CHECK_FALSE(c.detector.wants_parameters(statement(lookup, false)));   // writes are never tracked
  for (int i = 0; i < 5; ++i) c.run("select * from t where id = " + std::to_string(i));
  REQUIRE(c.found.size() == 1);
  // Reported in this unit: its later turns' values change nothing, so they may be left out.
  CHECK_FALSE(c.detector.wants_parameters(statement(lookup, true)));
  CHECK(c.detector.wants_parameters(statement(fp("select * from u where id = 1"), true)));
  c.detector.statement_start(statement(lookup, true));
  CHECK_FALSE(c.detector.statement_end(c.now += 2 * c.step).has_value());
  CHECK(c.found.size() == 1);
  // A statement that starts a new unit (after a pause) is tracked afresh.
  c.now += 1'000'000;
  CHECK(c.detector.wants_parameters(statement(lookup, true)));

  // Columns and rows: only for a read, only below max_rows, only while the unit remembers less
  // than max_values.
  c.detector.statement_start(statement(1, false));
  CHECK_FALSE(c.detector.wants_columns());
  CHECK(c.detector.statement_end(c.now += c.step) == std::nullopt);
  c.detector.statement_start(statement(2, true));
  CHECK(c.detector.wants_columns());
  CHECK_FALSE(c.detector.wants_rows());   // no RowDescription yet
  const std::vector<std::string_view> cols = {"a", "b"};
  c.detector.columns(cols);
  CHECK(c.detector.wants_rows());
  c.detector.row(std::vector<std::optional<std::string_view>>{"1", "2"});
  CHECK(c.detector.wants_rows());
  c.detector.row(std::vector<std::optional<std::string_view>>{"3", "4"});
  CHECK(c.detector.remembered_values() == 3);   // max_values
  CHECK_FALSE(c.detector.wants_rows());
  CHECK(c.detector.statement_end(c.now += c.step) == std::nullopt);
  c.detector.statement_start(statement(3, true));
  CHECK_FALSE(c.detector.wants_columns());   // the unit is full
  c.detector.columns(cols);
  CHECK_FALSE(c.detector.wants_rows());
}

TEST_CASE("n+1: rows without a RowDescription, or after the statement ended, are not remembered") {
  NPlusOneDetector d;
  const std::vector<std::string_view> none;
  const std::vector<std::optional<std::string_view>> row = {"7"};
  d.statement_start({.fingerprint = 1, .read = true, .now_micros = 10, .parameters = none});
  d.row(row);
  CHECK(d.remembered_values() == 0);
  const std::vector<std::string_view> cols = {"id"};
  d.columns(cols);
  d.row(row);
  CHECK(d.remembered_values() == 1);
  CHECK_FALSE(d.statement_end(20).has_value());
  d.row(std::vector<std::optional<std::string_view>>{"8"});
  CHECK(d.remembered_values() == 1);
}

TEST_CASE("n+1 suggestion: names the column when there is a source, the count otherwise") {
  const std::string with = n_plus_one_suggestion(50, "author_id");
  CHECK(with.find("all author_id values") != std::string::npos);
  CHECK(with.find("= ANY($1)") != std::string::npos);
  CHECK(n_plus_one_suggestion(7, "").find("ran 7 times") != std::string::npos);
}

namespace {

NPlusOneReport report(uint64_t fingerprint, int64_t now, uint64_t executions = 5, std::string_view column = "author_id") {
  NPlusOneReport r{.database = "app", .user = "web", .fingerprint = fingerprint, .normalized = "select ?",
                   .source_normalized = "select books", .source_column = column, .executions = executions,
                   .now_unix_micros = now};
  if (!column.empty()) r.source_fingerprint = 99;
  return r;
}

}  // namespace

TEST_CASE("n+1 registry: one pattern aggregates its detections; logged once per interval") {
  NPlusOneRegistry reg(60'000'000);
  CHECK(reg.report(report(1, 1'000'000, 5)));
  CHECK_FALSE(reg.report(report(1, 2'000'000, 12)));          // within the interval: not logged again
  CHECK(reg.report(report(1, 1'000'000, 5, "")));             // no source: another pattern
  CHECK(reg.report(report(1, 61'000'000, 5)));                // a minute after it was last logged
  CHECK(reg.total_detections() == 4);
  const auto s = reg.snapshot();
  REQUIRE(s.size() == 2);
  CHECK(s[0].detections == 3);
  CHECK(s[0].max_executions == 12);
  CHECK(s[0].first_seen_unix_micros == 1'000'000);
  CHECK(s[0].last_seen_unix_micros == 61'000'000);
  CHECK(s[0].source_fingerprint == std::optional<uint64_t>(99));
  CHECK(s[0].source_column == "author_id");
  CHECK(s[0].suggestion.find("author_id") != std::string::npos);
  CHECK(s[1].detections == 1);
  CHECK_FALSE(s[1].source_fingerprint.has_value());
  CHECK(s[1].suggestion.find("ran 5 times") != std::string::npos);
}

TEST_CASE("n+1 registry: bounded, the least recently seen pattern goes; reset forgets all") {
  NPlusOneRegistry reg(60'000'000, 3);
  for (uint64_t f = 1; f <= 3; ++f) reg.report(report(f, int64_t(f) * 10));
  reg.report(report(1, 100));   // 1 seen most recently: 2 is now the oldest
  reg.report(report(4, 110));
  reg.report(report(5, 120));   // evicts 3
  CHECK(reg.size() == 3);
  CHECK(reg.evicted() == 2);
  std::vector<uint64_t> kept;
  for (const auto& p : reg.snapshot()) kept.push_back(p.fingerprint);
  CHECK(kept == std::vector<uint64_t>{1, 5, 4});   // by detections, then most recently seen
  reg.reset();
  CHECK(reg.size() == 0);
  CHECK(reg.total_detections() == 0);
  CHECK(reg.evicted() == 0);
  CHECK(reg.report(report(1, 130)));   // forgotten: logged again
}

TEST_CASE("n+1 registry: reports from several threads all count") {
  NPlusOneRegistry reg;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&reg, t] {
      for (int i = 0; i < 1000; ++i) reg.report(report(uint64_t(i % 10), int64_t(t * 1000 + i)));
    });
  }
  for (auto& th : threads) th.join();
  CHECK(reg.total_detections() == 4000);
  CHECK(reg.size() == 10);
}
