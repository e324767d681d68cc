// N+1 detection from the wire, with real ORMs through transaction pooling: SQLAlchemy's lazy
// loading and Django's foreign-key access in a loop are reported with the statement and column
// their values came from; the same code with eager loading, and pgbench tpcb, are not reported.
#include <doctest/doctest.h>

#include <string>

#include "harness.h"

using namespace pgrelay::it;

namespace {

struct Pattern {
  std::string query, source_query, source_column, suggestion;
  long detections = 0, executions = 0;
  bool has_source = false;
};

std::vector<Pattern> patterns(PgrelayProcess& relay) {
  Conn admin = connect_ok(relay.conninfo("pgrelay"));
  auto r = exec(admin.get(), "SHOW N_PLUS_ONE");
  REQUIRE(r.ok());
  std::vector<Pattern> out;
  for (const auto& row : r.rows) {
    Pattern p;
    p.detections = std::stol(*row.at(3));
    p.executions = std::stol(*row.at(4));
    p.has_source = row.at(5).has_value();
    p.source_column = row.at(6).value_or("");
    p.query = row.at(9).value_or("");
    p.source_query = row.at(10).value_or("");
    p.suggestion = row.at(11).value_or("");
    out.push_back(p);
  }
  return out;
}

void reset(PgrelayProcess& relay) {
  Conn admin = connect_ok(relay.conninfo("pgrelay"));
  REQUIRE(exec(admin.get(), "RESET QUERIES").ok());
}

// Runs tests/integration/drivers/n_plus_one_orm.py CASE against `relay` (Debian's ORMs and
// psycopg2 live under /usr/bin/python3).
void run_orm(PgrelayProcess& relay, const std::string& which) {
  const std::string script = std::string(PGRELAY_SOURCE_DIR) + "/tests/integration/drivers/n_plus_one_orm.py";
  auto r = run_command("/usr/bin/python3 " + shell_quote(script) + " " + std::to_string(relay.port()) + " " + which, 120s);
  INFO(which << ": " << r.output);
  INFO(relay.log());
  REQUIRE(r.exit_code == 0);
  REQUIRE(r.output.find("ok ") != std::string::npos);
}

PgrelayProcess pooled() {
  return PgrelayProcess(RelayConfig().pool("transaction", 2).set("admin_users", "[\"postgres\"]"));
}

}  // namespace

TEST_CASE("SQLAlchemy lazy loading in a loop over 50 parents: detected, values from the parents' id column") {
  PgrelayProcess relay = pooled();
  run_orm(relay, "sqlalchemy-lazy");
  auto found = patterns(relay);
  REQUIRE(found.size() == 1);
  const Pattern& p = found[0];
  CHECK(p.query.find("from nplus_child where ? = nplus_child.parent_id") != std::string::npos);
  CHECK(p.has_source);
  CHECK(p.source_column == "nplus_parent_id");
  CHECK(p.source_query.find("from nplus_parent") != std::string::npos);
  CHECK(p.detections == 1);
  CHECK(p.executions >= 5);
  CHECK(p.suggestion.find("selectinload") != std::string::npos);
  CHECK(relay.log().find("N+1 query pattern") != std::string::npos);   // logged once

  reset(relay);
  run_orm(relay, "sqlalchemy-eager");
  CHECK(patterns(relay).empty());
}

TEST_CASE("Django: for b in Book.objects.all(): b.author.name is detected from author_id; select_related is not") {
  PgrelayProcess relay = pooled();
  run_orm(relay, "django-loop");
  auto found = patterns(relay);
  REQUIRE(found.size() == 1);
  const Pattern& p = found[0];
  CHECK(p.query == "select \"nplus_author\".\"id\", \"nplus_author\".\"name\" from \"nplus_author\" where "
                   "\"nplus_author\".\"id\" = ? limit ?");
  CHECK(p.has_source);
  CHECK(p.source_column == "author_id");
  CHECK(p.source_query.find("from \"nplus_book\"") != std::string::npos);

  reset(relay);
  run_orm(relay, "django-related");
  CHECK(patterns(relay).empty());
}

TEST_CASE("pgbench tpcb through transaction pooling: no N+1 report") {
  Conn direct = connect_ok(direct_conninfo());
  exec(direct.get(), "drop database if exists it_nplus");
  REQUIRE(exec(direct.get(), "create database it_nplus").ok());
  const std::string pgbench = std::string(PGRELAY_IT_PGBENCH) + " -h 127.0.0.1 -U postgres ";
  auto init = run_command(pgbench + "-p " + std::to_string(cluster_port()) + " -i -s 1 -q it_nplus", 60s);
  REQUIRE_MESSAGE(init.exit_code == 0, init.output);
  PgrelayProcess relay = pooled();
  for (const char* mode : {"simple", "extended"}) {
    auto run = run_command(pgbench + "-p " + std::to_string(relay.port()) + " -n -c 4 -j 2 -t 100 -M " + mode + " it_nplus", 60s);
    INFO(run.output);
    REQUIRE(run.exit_code == 0);
  }
  CHECK(patterns(relay).empty());
  // The statistics saw it: the analyzer was on.
  Conn admin = connect_ok(relay.conninfo("pgrelay"));
  auto q = exec(admin.get(), "SHOW QUERIES");
  REQUIRE(q.ok());
  CHECK(q.rows.size() >= 7);
  exec(direct.get(), "drop database if exists it_nplus");
}
