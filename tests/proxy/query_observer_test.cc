// QueryObserver and SlowQueryLog: statements counted per fingerprint, slow ones logged.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <unistd.h>

#include "proxy/session/query_observer.h"
#include "slow_query_log_util.h"

namespace pgrelay::proxy {
namespace {

using namespace std::chrono_literals;

using test::no_file_log;

struct Fixture {
  analyzer::QueryStatsShard shard{100};
  std::shared_ptr<SlowQueryLog> slow = no_file_log();
  std::string database = "app", user = "web", client = "10.0.0.7:5000";
  std::shared_ptr<const ParamMap> params = std::make_shared<const ParamMap>(ParamMap{{"application_name", "api"}});
  conf::Config config;
  QueryObserver observer{shard, *slow, QueryOrigin{database, user, client, params}, config};

  StatementEnd end(const AnalysisPtr& a, uint32_t index, StatementOutcome o, EventClock::duration d, uint64_t rows = 1) {
    StatementEnd e;
    e.analysis = a;
    e.index = index;
    e.outcome = o;
    e.duration = d;
    e.rows = rows;
    return e;
  }
  analyzer::QueryStatsSnapshot snapshot() {
    analyzer::QueryStatsSnapshot s;
    shard.snapshot(s);
    return s;
  }
};

}  // namespace

TEST_CASE("QueryObserver: statements that ran are counted by fingerprint, database and user") {
  Fixture f;
  const AnalysisPtr a = analyze_statement("select * from t where id = 1; select 2", {}, 1024);
  const AnalysisPtr b = analyze_statement("SELECT * FROM t WHERE id = 42", {}, 1024);
  f.observer.on_end(f.end(a, 0, StatementOutcome::kCompleted, 2ms, 1));
  f.observer.on_end(f.end(a, 1, StatementOutcome::kCompleted, 1ms, 1));
  f.observer.on_end(f.end(b, 0, StatementOutcome::kCompleted, 4ms, 3));
  StatementEnd failed = f.end(b, 0, StatementOutcome::kFailed, 1ms, 0);
  failed.sqlstate = "57014";
  f.observer.on_end(failed);
  // Never ran: not counted.
  f.observer.on_end(f.end(b, 0, StatementOutcome::kSkipped, 0ms));
  f.observer.on_end(f.end(b, 0, StatementOutcome::kAbandoned, 9ms));
  f.observer.on_end(f.end(nullptr, 0, StatementOutcome::kCompleted, 9ms));

  const auto s = f.snapshot();
  REQUIRE(s.entries.size() == 2);
  const analyzer::QueryStatsEntry* by_id = nullptr;
  for (const auto& e : s.entries)
    if (e.stats.normalized == "select * from t where id = ?") by_id = &e;
  REQUIRE(by_id != nullptr);
  CHECK(by_id->key.database == "app");
  CHECK(by_id->key.user == "web");
  CHECK(by_id->key.fingerprint == a->fingerprint(0)->hash);
  CHECK(by_id->stats.calls == 3);
  CHECK(by_id->stats.rows == 4);
  CHECK(by_id->stats.errors == 1);
  CHECK(by_id->stats.errors_in_class("57") == 1);
  CHECK(by_id->stats.total_micros == 7000);
  CHECK(s.statements == 4);
}

TEST_CASE("QueryObserver: at or over slow_query_threshold goes to the slow log, with who ran it") {
  Fixture f;
  f.config.slow_query_threshold = 100ms;
  const AnalysisPtr a = analyze_statement("select pg_sleep(0.2)", {}, 1024);
  f.observer.on_end(f.end(a, 0, StatementOutcome::kCompleted, 99ms));
  CHECK(f.slow->total() == 0);
  f.observer.on_end(f.end(a, 0, StatementOutcome::kCompleted, 100ms));
  f.config.slow_query_threshold = 0ms;   // off
  f.observer.on_end(f.end(a, 0, StatementOutcome::kCompleted, 10s));
  REQUIRE(f.slow->total() == 1);
  const auto recent = f.slow->recent();
  REQUIRE(recent.size() == 1);
  CHECK(recent[0].query == "select pg_sleep(?)");
  CHECK(recent[0].duration_micros == 100000);
  CHECK(recent[0].database == "app");
  CHECK(recent[0].client == "10.0.0.7:5000");
  CHECK(recent[0].application_name == "api");
  CHECK_FALSE(recent[0].text);   // log_parameters is off
  CHECK(recent[0].parameters.empty());
}

TEST_CASE("QueryObserver: with log_parameters, the text and Bind values as sent") {
  Fixture f;
  f.config.slow_query_threshold = 1ms;
  f.config.log_parameters = true;
  const AnalysisPtr a = analyze_statement("select * from t where a = $1 and b = $2 and c = $3", {}, 1024);
  // Bind: portal "", statement "", 3 format codes (text, binary, text), 3 values ('x', \x01\x02, NULL), 0 result formats.
  const std::string bind("\0\0\0\x03\0\0\0\x01\0\0\0\x03\0\0\0\x01x\0\0\0\x02\x01\x02\xff\xff\xff\xff\0\0", 29);
  StatementStart s;
  s.seq = 7;
  s.analysis = a;
  s.extended = true;
  s.text = a->text;
  s.bind = protocol::Bytes(reinterpret_cast<const std::byte*>(bind.data()), bind.size());
  f.observer.on_start(s);
  StatementEnd e = f.end(a, 0, StatementOutcome::kCompleted, 5ms);
  e.seq = 7;
  f.observer.on_end(e);
  const auto recent = f.slow->recent();
  REQUIRE(recent.size() == 1);
  REQUIRE(recent[0].text);
  CHECK(*recent[0].text == a->text);
  REQUIRE(recent[0].parameters.size() == 3);
  CHECK(recent[0].parameters[0] == "x");
  CHECK(recent[0].parameters[1] == "\\x0102");   // format 1 for the second: binary, in hex
  CHECK_FALSE(recent[0].parameters[2]);           // NULL
}

TEST_CASE("SlowQueryLog: JSON lines, rate-limited, the drops reported") {
  char path[] = "/tmp/pgrelay-slowlog-XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  close(fd);
  {
    auto log = SlowQueryLog::open(path, 2);
    REQUIRE(log.ok());
    SlowQuery q;
    q.unix_micros = 1'780'000'000'000'123;   // one second for all four
    q.fingerprint = 0xabc;
    q.query = "select \"x\"\n";
    q.duration_micros = 1'500'250;
    for (int i = 0; i < 4; ++i) (*log)->record(q);
    q.unix_micros += 1'000'000;   // the next second: written, with the count of the two dropped
    (*log)->record(q);
    CHECK((*log)->total() == 5);
    CHECK((*log)->dropped() == 2);
    CHECK((*log)->recent().size() == 5);   // SHOW SLOW keeps them all
  }
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::remove(path);
  REQUIRE(lines.size() == 3);
  CHECK(lines[0].find("\"fingerprint\":\"0000000000000abc\"") != std::string::npos);
  CHECK(lines[0].find("\"query\":\"select \\\"x\\\"\\n\"") != std::string::npos);
  CHECK(lines[0].find("\"duration_ms\":1500.250") != std::string::npos);
  CHECK(lines[0].find("\"time\":\"2026-05-28T") != std::string::npos);
  CHECK(lines[0].find("dropped") == std::string::npos);
  CHECK(lines[2].find("\"dropped\":2}") != std::string::npos);
}

TEST_CASE("SlowQueryLog: the recent list is bounded and newest first; reset forgets") {
  auto log = no_file_log();
  for (uint64_t i = 0; i < SlowQueryLog::kRecent + 5; ++i) {
    SlowQuery q;
    q.fingerprint = i;
    log->record(q);
  }
  const auto recent = log->recent();
  REQUIRE(recent.size() == SlowQueryLog::kRecent);
  CHECK(recent.front().fingerprint == SlowQueryLog::kRecent + 4);
  log->reset();
  CHECK(log->recent().empty());
  CHECK(log->total() == 0);
}

TEST_CASE("parameter values and texts are cut, never inside a UTF-8 character") {
  CHECK(cut_utf8("héllo", 2) == "h");   // é is two bytes: not cut in half
  CHECK(cut_utf8("héllo", 3) == "hé");
  CHECK(cut_utf8("abc", 10) == "abc");
  const std::string long_text(1000, 'a');
  const std::string cut = SlowQueryLog::parameter_text(long_text, false);
  CHECK(cut.size() == SlowQueryLog::kMaxLoggedParameter + 3);
  CHECK(cut.substr(cut.size() - 3) == "...");
  CHECK(SlowQueryLog::parameter_text(std::string("\x00\xff", 2), true) == "\\x00ff");
}

}  // namespace pgrelay::proxy
