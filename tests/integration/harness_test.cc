// Checks the harness itself against PostgreSQL directly, so a pgrelay failure is never a harness bug.
#include <doctest/doctest.h>

#include "harness.h"

using namespace pgrelay::it;

TEST_CASE("raw client logs in and queries PostgreSQL") {
  RawClient c(cluster_port());
  REQUIRE(c.send(startup_packet({{"user", "postgres"}, {"database", "postgres"}})));
  auto login = c.read_messages_until('Z', 5s);
  REQUIRE(!login.empty());
  CHECK(login.front().type == 'R');
  CHECK(login.back().type == 'Z');
  REQUIRE(c.send(query_message("select 41 + 1")));
  auto reply = c.read_messages_until('Z', 5s);
  bool saw_row = false;
  for (const auto& m : reply) {
    if (m.type == 'D') {
      saw_row = true;
      CHECK(m.payload.substr(m.payload.size() - 2) == "42");
    }
  }
  CHECK(saw_row);
  REQUIRE(c.send(typed_message('X', "")));
  bool eof = false;
  c.read_until_eof(5s, &eof);
  CHECK(eof);
}

TEST_CASE("raw client parses PostgreSQL's own FATAL errors") {
  SUBCASE("unknown database") {
    RawClient c(cluster_port());
    c.send(startup_packet({{"user", "postgres"}, {"database", "no_such_db_here"}}));
    bool eof = false;
    auto err = first_error(c.read_until_eof(5s, &eof));
    REQUIRE(err);
    CHECK(eof);
    CHECK(err->sqlstate == "3D000");
    CHECK(err->severity == "FATAL");
    CHECK(err->message.find("no_such_db_here") != std::string::npos);
  }
  SUBCASE("protocol 2.0") {
    // PostgreSQL answers in the 2.0 format ('E' and a C string, no length); pgrelay uses 3.0's.
    RawClient c(cluster_port());
    c.send(startup_packet({{"user", "postgres"}}, 2u << 16));
    std::string bytes = c.read_until_eof(5s);
    REQUIRE(!bytes.empty());
    CHECK(bytes[0] == 'E');
    CHECK(bytes.find("unsupported frontend protocol 2.0") != std::string::npos);
  }
  SUBCASE("SSLRequest is answered with one byte") {
    RawClient c(cluster_port());
    c.send(ssl_request());
    CHECK(c.read_exact(1, 5s) == "N");
  }
}

TEST_CASE("libpq helpers report rows and SQLSTATEs") {
  Conn c = connect_ok(direct_conninfo());
  CHECK(scalar(c.get(), "select 1") == "1");
  auto q = exec_params(c.get(), "select $1::int + 1, $2::text", {"41", std::nullopt});
  REQUIRE(q.ok());
  CHECK(q.rows[0][0] == "42");
  CHECK(!q.rows[0][1].has_value());
  auto e = exec(c.get(), "select 1/0");
  CHECK(e.sqlstate == "22012");
  CHECK(e.severity == "ERROR");
  CHECK(e.message == "division by zero");
}

TEST_CASE("the cluster authenticates md5_user with md5 and scram_user with SCRAM") {
  CHECK(PQstatus(connect(direct_conninfo("postgres", "md5_user")).get()) == CONNECTION_BAD);
  Conn md5 = connect_ok(direct_conninfo("postgres", "md5_user", "password=md5pass"));
  CHECK(PQconnectionUsedPassword(md5.get()));
  Conn admin = connect_ok(direct_conninfo());
  CHECK(scalar(admin.get(), "select rolpassword like 'md5%' from pg_authid where rolname = 'md5_user'") == "t");
  CHECK(scalar(admin.get(), "select rolpassword like 'SCRAM-SHA-256$%' from pg_authid where rolname = 'scram_user'") == "t");
  Conn scram = connect_ok(direct_conninfo("postgres", "scram_user", "password=scrampass"));
  CHECK(scalar(scram.get(), "select current_user") == "scram_user");
  CHECK(PQstatus(connect(direct_conninfo("postgres", "scram_user", "password=wrong")).get()) == CONNECTION_BAD);
}

TEST_CASE("run_command captures output and exit code") {
  auto r = run_command(std::string(PGRELAY_IT_PSQL) + " -X -At -h 127.0.0.1 -p " + std::to_string(cluster_port()) +
                       " -U postgres -d postgres -c 'select 1'");
  CHECK(r.exit_code == 0);
  CHECK(r.output == "1\n");
  CHECK(run_command("exit 3").exit_code == 3);
}

TEST_CASE("free ports are free") {
  int p = free_port();
  CHECK(p > 0);
  CHECK_FALSE(port_accepts(p));
  CHECK(port_accepts(cluster_port()));
}
