// Statement events end to end: the JSON lines of statement_event_log checked against what the
// server did for psql, raw-protocol, libpq (multi-statement Query, pipeline, COPY, cancel) and
// pgbench clients, each in session and transaction mode.
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <filesystem>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <thread>
#include <variant>

#include "harness.h"
#include "statement_events_log.h"

using namespace pgrelay::it;

namespace {

// ---- the scenarios, each run in both modes --------------------------------------------------

void psql_multi_statement(const std::string& mode) {
  EventRelay relay(mode, 2);
  const std::string sql = "select 1 as a; select generate_series(1,3); values (1),(2)";
  auto r = run_command(std::string(PGRELAY_IT_PSQL) + " -X -At -h 127.0.0.1 -p " + std::to_string(relay.port()) +
                           " -U postgres -d postgres -c " + shell_quote(sql), 30s);
  REQUIRE_MESSAGE(r.exit_code == 0, r.output);

  auto st = relay.client("select 1 as a", 3);
  REQUIRE(st.size() == 3);
  const char* texts[] = {"select 1 as a", "select generate_series(1,3)", "values (1),(2)"};
  const char* tags[] = {"SELECT 1", "SELECT 3", "SELECT 2"};
  const int64_t rows[] = {1, 3, 2};
  for (int i = 0; i < 3; ++i) {
    CAPTURE(i);
    check_start(st[i], texts[i], i, false);
    CHECK(str(st[i].start, "statement") == "");
    CHECK(str(st[i].start, "portal") == "");
    CHECK(num(st[i].start, "params") == 0);
    CHECK_MESSAGE(str(st[i].start, "tx") == "I", st[i].start.line);  // all three are one request's
    check_end(st[i], "completed", tags[i], "", rows[i]);
    CHECK(num(st[i].end, "messages") == rows[i] + 2);  // RowDescription, the DataRows, CommandComplete
  }

  // The same through a raw client, which sees every byte: each statement's messages and bytes are
  // exactly those between the previous statement's CommandComplete and its own.
  RawClient raw(relay.port());
  REQUIRE(raw.send(startup_packet({{"user", "postgres"}, {"database", "postgres"}})));
  bool eof = false;
  auto greeting = raw.read_messages_until('Z', 5s, &eof);
  REQUIRE((!eof && !greeting.empty() && greeting.back().type == 'Z'));
  REQUIRE(raw.send(query_message("select 1 as raw; select generate_series(1,3); values (1),(2)")));
  auto answer = raw.read_messages_until('Z', 5s, &eof);
  REQUIRE((!eof && !answer.empty() && answer.back().type == 'Z'));
  std::vector<std::pair<int64_t, int64_t>> seen(1);  // per statement: messages, bytes
  for (size_t i = 0; i + 1 < answer.size(); ++i) {
    seen.back().first += 1;
    seen.back().second += 5 + static_cast<int64_t>(answer[i].payload.size());
    if (answer[i].type == 'C' && i + 2 < answer.size()) seen.emplace_back();
  }
  REQUIRE(raw.send(typed_message('X', "")));
  REQUIRE(seen.size() == 3);
  auto raw_st = relay.client("select 1 as raw", 3);
  REQUIRE(raw_st.size() == 3);
  for (size_t i = 0; i < 3; ++i) {
    CAPTURE(i);
    INFO(raw_st[i].end.line);
    CHECK(num(raw_st[i].end, "messages") == seen[i].first);
    CHECK(num(raw_st[i].end, "bytes") == seen[i].second);
  }
}

void error_mid_query(const std::string& mode) {
  EventRelay relay(mode, 2);
  {
    Conn c = connect_ok(relay.conninfo());
    CHECK(run(c.get(), "select 1; select 1/0; select 2").sqlstate == "22012");
    CHECK(first_value(run(c.get(), "select 'after the error'")) == "after the error");
    // The transaction status each request started in: idle, in a transaction, failed transaction.
    REQUIRE(run(c.get(), "begin").ok());
    CHECK(run(c.get(), "select 1/0").sqlstate == "22012");
    CHECK(run(c.get(), "select 3").sqlstate == "25P02");
    REQUIRE(run(c.get(), "rollback").ok());
  }
  auto st = relay.client("select 1", 8);
  REQUIRE(st.size() == 8);
  check_start(st[0], "select 1", 0, false);
  check_start(st[1], "select 1/0", 1, false);
  check_start(st[2], "select 2", 2, false);
  check_start(st[3], "select 'after the error'", 0, false);
  check_end(st[0], "completed", "SELECT 1", "", 1);
  check_end(st[1], "failed", "", "22012", 0);
  check_end(st[2], "skipped", "", "22012", 0);
  check_end(st[3], "completed", "SELECT 1", "", 1);
  const char* tx[] = {"I", "I", "I", "I", "I", "T", "E", "E"};
  for (size_t i = 0; i < st.size(); ++i) {
    CAPTURE(i);
    CHECK_MESSAGE(str(st[i].start, "tx") == std::string(tx[i]), st[i].start.line);
  }
  check_end(st[4], "completed", "BEGIN", "", 0);
  check_end(st[5], "failed", "", "22012", 0);
  check_end(st[6], "failed", "", "25P02", 0);
  check_end(st[7], "completed", "ROLLBACK", "", 0);
}

// The pgbench database, made once per run: a database of this file's own, initialized directly.
const std::string& bench_db() {
  static const std::string db = [] {
    const std::string name = "it_statement_events";
    Conn d = connect_ok(direct_conninfo());
    REQUIRE(exec(d.get(), "drop database if exists " + name + " with (force)").ok());
    REQUIRE(exec(d.get(), "create database " + name).ok());
    auto init = run_command(std::string(PGRELAY_IT_PGBENCH) + " -i -s 1 -q -h 127.0.0.1 -p " +
                                std::to_string(cluster_port()) + " -U postgres " + name, 120s);
    REQUIRE_MESSAGE(init.exit_code == 0, init.output);
    return name;
  }();
  return db;
}

void pgbench_statements(const std::string& mode, const std::string& protocol) {
  const std::string& db = bench_db();
  EventRelay relay(mode, 2);
  auto r = run_command(std::string(PGRELAY_IT_PGBENCH) + " -n -S -M " + protocol + " -t 20 -c 2 -h 127.0.0.1 -p " +
                           std::to_string(relay.port()) + " -U postgres " + db, 120s);
  REQUIRE_MESSAGE(r.exit_code == 0, r.output);
  std::smatch m;
  const std::regex processed(R"(number of transactions actually processed: (\d+))");
  REQUIRE_MESSAGE(std::regex_search(r.output, m, processed), r.output);
  const size_t transactions = std::stoul(m[1]);
  CHECK(transactions == 40);

  // pgbench's own look at the tables (select count(*) ...) goes as simple Queries; the
  // benchmark's statements are the Executes.
  auto benchmark = [](const Events& all) {
    std::vector<Statement> out;
    for (auto& s : statements(all)) {
      if (flag(s.start, "extended")) out.push_back(std::move(s));
    }
    return out;
  };
  auto completed_selects = [](const std::vector<Statement>& st) {
    return std::count_if(st.begin(), st.end(), [](const Statement& s) {
      return str(s.end, "outcome") == "completed" && str(s.end, "tag") == "SELECT 1";
    });
  };
  Events all = relay.wait_for([&](const Events& ev) {
    return settled(ev, 0) && static_cast<size_t>(completed_selects(benchmark(ev))) >= transactions;
  });
  auto st = benchmark(all);
  INFO("benchmark statements: " << st.size());
  CHECK(static_cast<size_t>(completed_selects(st)) == transactions);
  CHECK(st.size() == transactions);
  std::vector<std::string> wrong;
  for (const auto& s : st) {
    bool ok = str(s.start, "text").find("SELECT abalance FROM pgbench_accounts WHERE aid = $1") == 0 &&
              num(s.start, "params") == 1 && num(s.end, "rows") == 1 && str(s.start, "portal").empty() &&
              (protocol == "prepared" ? !str(s.start, "statement").empty() : str(s.start, "statement").empty());
    if (!ok) wrong.push_back(s.start.line + "\n" + s.end.line);
  }
  CHECK_MESSAGE(wrong.empty(), wrong.size() << " unexpected, e.g.:\n" << (wrong.empty() ? "" : wrong.front()));
}

void pipeline_error(const std::string& mode) {
  EventRelay relay(mode, 2);
  {
    Conn c = connect_ok(relay.conninfo());
    REQUIRE(PQenterPipelineMode(c.get()) == 1);
    auto send = [&](const char* sql, std::vector<const char*> params) {
      const int n = static_cast<int>(params.size());
      REQUIRE(PQsendQueryParams(c.get(), sql, n, nullptr, params.data(), nullptr, nullptr, 0) == 1);
    };
    auto next = [&](ExecStatusType want) {
      Result r = next_result(c.get());
      REQUIRE(r);
      CHECK(PQresultStatus(r.get()) == want);
      if (want != PGRES_PIPELINE_SYNC) CHECK(next_result(c.get()) == nullptr);
      return to_query_result(c.get(), r.get());
    };
    send("select $1::int", {"1"});
    send("select 1/0", {});
    send("select $1::int + 1", {"2"});
    REQUIRE(PQpipelineSync(c.get()) == 1);
    CHECK(next(PGRES_TUPLES_OK).rows.at(0).at(0) == "1");
    CHECK(next(PGRES_FATAL_ERROR).sqlstate == "22012");
    next(PGRES_PIPELINE_ABORTED);
    next(PGRES_PIPELINE_SYNC);
    send("select $1::text", {"second batch"});
    send("select $1::int * 2", {"21"});
    REQUIRE(PQpipelineSync(c.get()) == 1);
    CHECK(next(PGRES_TUPLES_OK).rows.at(0).at(0) == "second batch");
    CHECK(next(PGRES_TUPLES_OK).rows.at(0).at(0) == "42");
    next(PGRES_PIPELINE_SYNC);
    REQUIRE(PQexitPipelineMode(c.get()) == 1);
  }
  auto st = relay.client("select $1::int", 5);
  REQUIRE(st.size() == 5);
  const char* texts[] = {"select $1::int", "select 1/0", "select $1::int + 1", "select $1::text", "select $1::int * 2"};
  const int64_t params[] = {1, 0, 1, 1, 1};
  for (size_t i = 0; i < st.size(); ++i) {
    CAPTURE(i);
    check_start(st[i], texts[i], 0, true);
    CHECK(str(st[i].start, "statement") == "");
    CHECK(str(st[i].start, "portal") == "");
    CHECK(num(st[i].start, "params") == params[i]);
  }
  // Each batch is one request (one Sync), sent when the connection was idle.
  for (size_t i = 0; i < st.size(); ++i) CHECK_MESSAGE(str(st[i].start, "tx") == "I", st[i].start.line);
  check_end(st[0], "completed", "SELECT 1", "", 1);
  check_end(st[1], "failed", "", "22012", 0);
  check_end(st[2], "skipped", "", "22012", 0);
  check_end(st[3], "completed", "SELECT 1", "", 1);
  check_end(st[4], "completed", "SELECT 1", "", 1);
}

void copy_in_and_out(const std::string& mode) {
  const std::string table = "it_statement_events_copy_" + mode + "_" + std::to_string(::getpid());
  {
    Conn d = connect_ok(direct_conninfo());
    REQUIRE(exec(d.get(), "drop table if exists " + table + "; create table " + table + " (id int, label text)").ok());
  }
  EventRelay relay(mode, 2);
  const std::vector<std::string> rows = {"1\tone\n", "2\ttwo\n", "3\tthree\n", "4\tfour\n", "5\tfive\n"};
  // CopyOutResponse (2 text columns), a CopyData per row, CopyDone, CommandComplete "COPY 5".
  int64_t out_bytes = (5 + 1 + 2 + 2 * 2) + 5 + (5 + 7);
  for (const auto& row : rows) out_bytes += 5 + static_cast<int64_t>(row.size());
  {
    Conn c = connect_ok(relay.conninfo());
    REQUIRE(PQsendQuery(c.get(), ("copy " + table + " from stdin").c_str()) == 1);
    REQUIRE(PQresultStatus(next_result(c.get()).get()) == PGRES_COPY_IN);
    for (const auto& row : rows) REQUIRE(PQputCopyData(c.get(), row.data(), static_cast<int>(row.size())) == 1);
    REQUIRE(PQputCopyEnd(c.get(), nullptr) == 1);
    auto done = to_query_result(c.get(), next_result(c.get()).get());
    REQUIRE_MESSAGE(done.ok(), done.message);
    CHECK(done.command_tuples == "5");
    CHECK(next_result(c.get()) == nullptr);

    REQUIRE(PQsendQuery(c.get(), ("copy " + table + " to stdout").c_str()) == 1);
    REQUIRE(PQresultStatus(next_result(c.get()).get()) == PGRES_COPY_OUT);
    std::string got;
    char* buf = nullptr;
    int n;
    while ((n = PQgetCopyData(c.get(), &buf, 1)) >= 0) {
      if (n == 0) {
        REQUIRE_MESSAGE((wait_readable(c.get(), kAnswerTimeout) && PQconsumeInput(c.get()) == 1), "COPY OUT stalled");
        continue;
      }
      got.append(buf, static_cast<size_t>(n));
      PQfreemem(buf);
    }
    CHECK(n == -1);
    CHECK(to_query_result(c.get(), next_result(c.get()).get()).ok());
    CHECK(next_result(c.get()) == nullptr);
    CHECK(got == "1\tone\n2\ttwo\n3\tthree\n4\tfour\n5\tfive\n");
  }
  auto st = relay.client("copy " + table + " from stdin", 2);
  REQUIRE(st.size() == 2);
  check_start(st[0], "copy " + table + " from stdin", 0, false);
  check_start(st[1], "copy " + table + " to stdout", 0, false);
  check_end(st[0], "completed", "COPY 5", "", 5);
  check_end(st[1], "completed", "COPY 5", "", 5);
  CHECK(num(st[0].end, "messages") == 2);  // CopyInResponse, CommandComplete
  CHECK(num(st[1].end, "messages") == 8);
  CHECK(num(st[1].end, "bytes") == out_bytes);

  Conn d = connect_ok(direct_conninfo());
  exec(d.get(), "drop table if exists " + table);
}

void cancelled_query(const std::string& mode) {
  EventRelay relay(mode, 2);
  {
    Conn c = connect_ok(relay.conninfo());
    PGcancel* cancel = PQgetCancel(c.get());
    REQUIRE(cancel != nullptr);
    std::string cancel_error;
    std::thread canceller([&] {
      std::this_thread::sleep_for(300ms);
      char err[256] = {0};
      if (PQcancel(cancel, err, sizeof err) != 1) cancel_error = err[0] ? err : "PQcancel failed";
    });
    auto start = std::chrono::steady_clock::now();
    auto q = run(c.get(), "select pg_sleep(10)");
    canceller.join();
    PQfreeCancel(cancel);
    CHECK_MESSAGE(cancel_error.empty(), cancel_error);
    CHECK(q.sqlstate == "57014");
    CHECK(std::chrono::steady_clock::now() - start < 5s);
    auto after = first_value(run(c.get(), "select 'after the cancel'"));
    if (after != "after the cancel") {
      // What the server connections are doing while pgrelay leaves the client waiting.
      Conn d = connect_ok(direct_conninfo());
      auto activity = exec(d.get(), "select pid, state, wait_event, query from pg_stat_activity where "
                                    "backend_type = 'client backend' and pid <> pg_backend_pid()");
      std::string rows;
      for (const auto& row : activity.rows) {
        for (const auto& v : row) rows += v.value_or("NULL") + " | ";
        rows += "\n";
      }
      MESSAGE("server backends:\n" << rows << "pgrelay log:\n" << relay.log());
    }
    CHECK(after == "after the cancel");
  }
  auto st = relay.client("select pg_sleep(10)", 2);
  REQUIRE(st.size() == 2);
  check_start(st[0], "select pg_sleep(10)", 0, false);
  check_end(st[0], "failed", "", "57014", 0);
  INFO(st[0].end.line);
  CHECK(num(st[0].end, "duration_us") >= 200'000);   // it ran until the cancel, ~300 ms in
  CHECK(num(st[0].end, "duration_us") < 5'000'000);
  check_end(st[1], "completed", "SELECT 1", "", 1);
}

// Several clients at once: each start's text is what that client sent (quotes, backslashes, tabs,
// newlines, a control character and UTF-8 survive the JSON), and with more clients than server
// connections some request waited for one.
void concurrent_texts(const std::string& mode, int pool_size, bool expect_wait) {
  EventRelay relay(mode, pool_size);
  constexpr int kClients = 4, kRounds = 2;
  const std::string quoted = "select pg_sleep(0.03), 'a \"quoted\" \\ back\\slash\twith a tab, é, \x01" "' as \"x\"";
  const std::string multiline = "select $1::text,\n  pg_sleep(0.03)";
  auto marker = [](int i) { return "select 'client " + std::to_string(i) + "' as marker"; };
  std::vector<std::string> failures(kClients);
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      // All start together; in session mode the last clients then wait for the first to leave.
      ++ready;
      while (ready.load() < kClients) std::this_thread::sleep_for(1ms);
      try {
        Conn c = connect_ok(relay.conninfo());
        const std::vector<std::string> param = {"p" + std::to_string(i)};
        std::vector<QueryResult> answers = {run(c.get(), marker(i))};
        for (int round = 0; round < kRounds; ++round) {
          answers.push_back(run(c.get(), quoted));
          answers.push_back(run(c.get(), multiline, &param));
          answers.push_back(run(c.get(), "  select 'x" + std::to_string(i) + "' ;\n\tselect pg_sleep(0.02)  "));
        }
        for (const auto& a : answers) {
          if (!a.ok() && failures[i].empty()) failures[i] = a.sqlstate + " " + a.message;
        }
      } catch (const std::exception& e) {
        failures[i] = e.what();
      } catch (...) {
        failures[i] = "an exception";
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kClients; ++i) CHECK_MESSAGE(failures[i].empty(), "client " << i << ": " << failures[i]);

  constexpr size_t kPerClient = 1 + kRounds * 4;
  Events all = relay.wait_for([&](const Events& ev) {
    for (int i = 0; i < kClients; ++i) {
      int64_t c = client_of(ev, marker(i));
      if (c < 0 || !settled(of_client(ev, c), kPerClient)) return false;
    }
    return true;
  });
  std::set<int64_t> ids;
  for (int i = 0; i < kClients; ++i) {
    CAPTURE(i);
    int64_t id = client_of(all, marker(i));
    ids.insert(id);
    auto st = statements(of_client(all, id));
    REQUIRE(st.size() == kPerClient);
    check_start(st[0], marker(i), 0, false);
    for (int round = 0; round < kRounds; ++round) {
      CAPTURE(round);
      size_t at = 1 + round * 4;
      check_start(st[at], quoted, 0, false);
      check_start(st[at + 1], multiline, 0, true);
      CHECK(num(st[at + 1].start, "params") == 1);
      check_start(st[at + 2], "select 'x" + std::to_string(i) + "'", 0, false);
      check_start(st[at + 3], "select pg_sleep(0.02)", 1, false);
    }
    for (const auto& s : st) check_end(s, "completed", "SELECT 1", "", 1);
  }
  CHECK(ids.size() == kClients);  // one client id per connection

  int64_t waited = 0;
  for (const auto& e : all) {
    if (is_start(e)) waited = std::max(waited, num(e, "wait_us"));
  }
  MESSAGE(mode << " mode: the longest wait_us of a start is " << waited);
  if (expect_wait) CHECK(waited > 0);
}

}  // namespace

TEST_CASE("session mode: a multi-statement Query from psql and a raw client") { psql_multi_statement("session"); }
TEST_CASE("transaction mode: a multi-statement Query from psql and a raw client") {
  psql_multi_statement("transaction");
}

TEST_CASE("session mode: an error mid-Query skips the rest; tx status per request") { error_mid_query("session"); }
TEST_CASE("transaction mode: an error mid-Query skips the rest; tx status per request") {
  error_mid_query("transaction");
}

TEST_CASE("session mode: pgbench -M extended") { pgbench_statements("session", "extended"); }
TEST_CASE("session mode: pgbench -M prepared") { pgbench_statements("session", "prepared"); }
TEST_CASE("transaction mode: pgbench -M extended") { pgbench_statements("transaction", "extended"); }
TEST_CASE("transaction mode: pgbench -M prepared") { pgbench_statements("transaction", "prepared"); }

TEST_CASE("session mode: a pipeline with an error skips the rest of its batch") { pipeline_error("session"); }
TEST_CASE("transaction mode: a pipeline with an error skips the rest of its batch") { pipeline_error("transaction"); }

TEST_CASE("session mode: COPY FROM STDIN and TO STDOUT") { copy_in_and_out("session"); }
TEST_CASE("transaction mode: COPY FROM STDIN and TO STDOUT") { copy_in_and_out("transaction"); }

TEST_CASE("session mode: a cancelled query fails with 57014") { cancelled_query("session"); }
TEST_CASE("transaction mode: a cancelled query fails with 57014") { cancelled_query("transaction"); }

TEST_CASE("session mode: concurrent clients, texts as sent") { concurrent_texts("session", 2, false); }
TEST_CASE("transaction mode: 4 clients on one server connection wait, texts as sent") {
  concurrent_texts("transaction", 1, true);
}
