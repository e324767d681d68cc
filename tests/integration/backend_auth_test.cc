// pgrelay authenticating to PostgreSQL with a configured user and password (md5 and SCRAM-SHA-256).
#include <doctest/doctest.h>

#include "harness.h"

using namespace pgrelay::it;

namespace {

PgrelayProcess& relay() {
  static PgrelayProcess p([] {
    auto entry = [](const std::string& user, const std::string& password) {
      std::string body = "dbname = \"postgres\"\nuser = \"" + user + "\"\n";
      if (!password.empty()) body += "password = \"" + password + "\"\n";
      return body;
    };
    RelayConfig cfg;
    cfg.add_database("md5db", entry("md5_user", "md5pass"))
        .add_database("scramdb", entry("scram_user", "scrampass"))
        .add_database("md5bad", entry("md5_user", "wrong"))
        .add_database("scrambad", entry("scram_user", "wrong"))
        .add_database("md5nopass", entry("md5_user", ""));
    return cfg;
  }());
  REQUIRE_MESSAGE(p.running(), "pgrelay is not running; log:\n" << p.log());
  return p;
}

// The client must get an ErrorResponse (at login or on its first query) and then lose the connection.
void expect_auth_failure(const std::string& db) {
  Conn c = connect(relay().conninfo(db));
  if (PQstatus(c.get()) == CONNECTION_OK) {
    auto q = exec(c.get(), "select 1");
    CHECK_FALSE(q.ok());
    MESSAGE(db << ": first query failed with " << q.sqlstate << " " << q.message);
  } else {
    MESSAGE(db << ": login failed with " << std::string(PQerrorMessage(c.get())));
  }

  RawClient raw(relay().port());
  raw.send(startup_packet({{"user", "postgres"}, {"database", db}}));
  auto msgs = raw.read_messages_until('Z', 10s);
  if (!msgs.empty() && msgs.back().type == 'Z') raw.send(query_message("select 1"));
  bool eof = false;
  std::string rest = raw.read_until_eof(10s, &eof);
  auto err = first_error(msgs);
  if (!err) err = first_error(rest);
  REQUIRE_MESSAGE(err.has_value(), db << ": no ErrorResponse");
  CHECK(!err->sqlstate.empty());
  CHECK(eof);
  MESSAGE(db << ": " << err->severity << " " << err->sqlstate << " " << err->message);
}

}  // namespace

TEST_CASE("md5: the configured password works") {
  Conn c = connect_ok(relay().conninfo("md5db"));
  CHECK(scalar(c.get(), "select current_user") == "md5_user");
  CHECK(scalar(c.get(), "select current_database()") == "postgres");
}

TEST_CASE("SCRAM-SHA-256: the configured password works, repeatedly") {
  for (int i = 0; i < 5; ++i) {
    Conn c = connect_ok(relay().conninfo("scramdb"));
    CHECK(scalar(c.get(), "select current_user") == "scram_user");
    CHECK(scalar(c.get(), "select count(*) from pg_stat_activity where usename = 'scram_user' and "
                          "pid = pg_backend_pid()") == "1");
  }
}

TEST_CASE("a wrong or missing configured password gives the client an error") {
  Conn bystander = connect_ok(relay().conninfo("scramdb"));
  SUBCASE("md5, wrong password") { expect_auth_failure("md5bad"); }
  SUBCASE("SCRAM, wrong password") { expect_auth_failure("scrambad"); }
  SUBCASE("md5, no password configured") { expect_auth_failure("md5nopass"); }
  CHECK(scalar(bystander.get(), "select current_user") == "scram_user");
  Conn after = connect_ok(relay().conninfo("md5db"));
  CHECK(scalar(after.get(), "select 1") == "1");
}
