// Errors in the extended protocol, through every pool mode, against what PostgreSQL answers
// directly: a failed Parse leaves no name behind, a second Parse of a name is 42P05, and a Query
// the server skips after an error (until the Sync) is not waited for.
#include <doctest/doctest.h>

#include <arpa/inet.h>

#include "harness.h"

using namespace pgrelay::it;

namespace {

// PQprepare's outcome: "SQLSTATE message", "" when it succeeded.
std::string prepare(PGconn* c, const std::string& name, const std::string& sql) {
  Result r(PQprepare(c, name.c_str(), sql.c_str(), 0, nullptr));
  auto q = to_query_result(c, r.get());
  return q.sqlstate.empty() ? "" : q.sqlstate + " " + q.message;
}

// PQexecPrepared without parameters: "SQLSTATE message", or the first value it returned.
std::string run_prepared(PGconn* c, const std::string& name) {
  Result r(PQexecPrepared(c, name.c_str(), 0, nullptr, nullptr, nullptr, 0));
  auto q = to_query_result(c, r.get());
  if (!q.sqlstate.empty()) return q.sqlstate + " " + q.message;
  return q.rows.empty() || q.rows[0].empty() || !q.rows[0][0] ? "(no value)" : *q.rows[0][0];
}

// What client `a` sees of failed and repeated Parses, while `b` uses the same server connections
// (its unnamed statement, and its own "s1", are there for `a` to stumble on).
std::vector<std::string> parse_story(PGconn* a, PGconn* b) {
  std::vector<std::string> seen;
  auto note = [&](std::string s) {
    // The message of a syntax error names the position; the SQLSTATE and the text before it are enough.
    if (s.rfind("42601", 0) == 0) s = s.substr(0, s.find(" at or near"));
    seen.push_back(std::move(s));
  };
  REQUIRE(prepare(b, "", "select 'b'") == "");
  REQUIRE(prepare(b, "s1", "select 'b1'") == "");
  note(prepare(a, "s1", "selec 1"));   // fails: s1 is not made
  note(run_prepared(a, "s1"));         // 26000, not the syntax error again
  note(prepare(a, "s1", "select 'a1'"));
  note(prepare(a, "s1", "select 'a2'"));   // 42P05
  note(prepare(a, "s1", "selec 2"));       // the text fails first: 42601
  note(run_prepared(a, "s1"));             // still the first
  note(prepare(a, "", "selec 3"));
  note(run_prepared(a, ""));               // 26000: b's unnamed statement is not a's
  note(run_prepared(b, ""));
  note(run_prepared(b, "s1"));
  return seen;
}

const std::string kSync = typed_message('S', "");

std::string parse_message(const std::string& name, const std::string& sql) {
  return typed_message('P', name + '\0' + sql + '\0' + std::string(2, '\0'));
}

// The types of the messages answering `request`, up to the ReadyForQuery of `syncs` Syncs or
// Queries; the first error's SQLSTATE after a colon.
std::string answer(RawClient& c, const std::string& request, int readies) {
  REQUIRE(c.send(request));
  std::string types;
  std::optional<ErrorInfo> error;
  for (int i = 0; i < readies; ++i) {
    auto msgs = c.read_messages_until('Z', 5s);
    REQUIRE(!msgs.empty());
    for (const auto& m : msgs) types += m.type;
    if (!error) error = first_error(msgs);
  }
  return error ? types + ":" + error->sqlstate : types;
}

}  // namespace

TEST_CASE("a failed Parse leaves no name; a second Parse of a name is 42P05: in every pool mode, as PostgreSQL") {
  Conn direct_a = connect_ok(direct_conninfo());
  Conn direct_b = connect_ok(direct_conninfo());
  const auto expected = parse_story(direct_a.get(), direct_b.get());
  REQUIRE(expected.size() == 10);
  CHECK(expected[1] == "26000 prepared statement \"s1\" does not exist");
  CHECK(expected[3] == "42P05 prepared statement \"s1\" already exists");
  CHECK(expected[7] == "26000 unnamed prepared statement does not exist");
  for (const char* mode : {"session", "transaction", "statement"}) {
    CAPTURE(mode);
    // One server connection in the pooled modes: b's statements are where a runs.
    PgrelayProcess relay(RelayConfig().pool(mode, std::string(mode) == "session" ? 2 : 1));
    Conn a = connect_ok(relay.conninfo());
    Conn b = connect_ok(relay.conninfo());
    CHECK(parse_story(a.get(), b.get()) == expected);
  }
}

TEST_CASE("a Query the server skips after an extended-protocol error is not waited for") {
  // Parse (fails), Query, Sync: PostgreSQL skips the Query (only Sync ends the error), so one
  // ReadyForQuery comes, for the Sync.
  const std::string skipped = parse_message("", "selec 1") + query_message("select 1") + kSync;
  RawClient direct(cluster_port());
  raw_login(direct);
  const std::string expected = answer(direct, skipped, 1);
  CHECK(expected == "EZ:42601");

  SUBCASE("transaction mode: the server connection goes back to the pool") {
    PgrelayProcess relay(RelayConfig().pool("transaction", 1).set("query_wait_timeout", "\"3s\""));
    RawClient a(relay.port());
    raw_login(a);
    CHECK(answer(a, skipped, 1) == expected);
    // The only server connection is free for another client...
    Conn b = connect_ok(relay.conninfo());
    CHECK(exec(b.get(), "select 2").sqlstate == "");
    // ...and a's next requests are answered in order.
    CHECK(answer(a, query_message("select 3"), 1) == "TDCZ");
    CHECK(answer(a, parse_message("", "select 4") + query_message("select 5") + kSync, 2) == "1TDCZZ");
  }
  SUBCASE("session mode: the client's turn again, so client_idle_timeout runs") {
    PgrelayProcess relay(RelayConfig().pool("session", 1).set("client_idle_timeout", "\"1s\""));
    RawClient a(relay.port());
    raw_login(a);
    CHECK(answer(a, skipped, 1) == expected);
    bool eof = false;
    auto error = first_error(a.read_until_eof(5s, &eof));
    CHECK(eof);
    REQUIRE(error);
    CHECK(error->message.find("client_idle_timeout") != std::string::npos);
  }
}
