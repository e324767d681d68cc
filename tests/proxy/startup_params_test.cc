// Startup parameters into settings and SET statements.
#include <doctest/doctest.h>

#include "proxy/base/startup_params.h"

using namespace pgrelay;
using namespace pgrelay::proxy;

namespace {
protocol::StartupMessage startup(std::vector<std::pair<std::string, std::string>> params) {
  protocol::StartupMessage m;
  m.params = std::move(params);
  return m;
}
}  // namespace

TEST_CASE("startup_settings: everything but user/database/replication/_pq_ is a setting, names lower-cased") {
  auto s = startup_settings(startup({{"user", "u"}, {"database", "d"}, {"application_name", "app"},
                                     {"DateStyle", "ISO, MDY"}, {"_pq_.compression", "on"}}));
  REQUIRE(s.ok());
  REQUIRE(s->size() == 2);
  CHECK((*s)[0] == Setting{"application_name", "app"});
  CHECK((*s)[1] == Setting{"datestyle", "ISO, MDY"});
}

TEST_CASE("startup_settings: options with -c, -cname=value, --name=value and escaped spaces") {
  auto s = startup_settings(startup({{"user", "u"},
                                     {"options", "-c statement_timeout=100 -csearch_path=a,b --work-mem=4MB -c x.y=a\\ b"}}));
  REQUIRE(s.ok());
  REQUIRE(s->size() == 4);
  CHECK((*s)[0] == Setting{"statement_timeout", "100"});
  CHECK((*s)[1] == Setting{"search_path", "a,b"});
  CHECK((*s)[2] == Setting{"work_mem", "4MB"});
  CHECK((*s)[3] == Setting{"x.y", "a b"});
}

TEST_CASE("startup_settings: bad names and options are 08P01") {
  for (auto params : std::vector<std::vector<std::pair<std::string, std::string>>>{
           {{"user", "u"}, {"bad name", "1"}},
           {{"user", "u"}, {"x;drop table t", "1"}},
           {{"user", "u"}, {"options", "-c"}},
           {{"user", "u"}, {"options", "-c novalue"}},
           {{"user", "u"}, {"options", "-d 5"}},
           {{"user", "u"}, {"options", "-c 1abc=2"}}}) {
    auto s = startup_settings(startup(params));
    REQUIRE_FALSE(s.ok());
    CHECK(s.error().sqlstate == "08P01");
  }
}

TEST_CASE("sync_statements: only what differs from the server's reported values, case-insensitively") {
  std::map<std::string, std::string> server{{"DateStyle", "ISO, MDY"}, {"application_name", ""}};
  std::map<std::string, std::string> applied;
  auto wanted = wanted_settings({{"datestyle", "ISO, MDY"}, {"application_name", "psql"}, {"statement_timeout", "5s"}}, {});
  // Plain values go through set_config, which reads them as a startup option does.
  CHECK(sync_statements(wanted, server, applied) ==
        "SELECT pg_catalog.set_config(E'application_name', E'psql', false);"
        "SELECT pg_catalog.set_config(E'statement_timeout', E'5s', false);");
  CHECK(applied == std::map<std::string, std::string>{{"statement_timeout", "E'5s'"}});
  // Applied once, an unreported setting is not applied again.
  server["application_name"] = "psql";
  CHECK(sync_statements(wanted, server, applied).empty());
}

TEST_CASE("sync_statements: a setting applied for an earlier client is RESET for the next") {
  std::map<std::string, std::string> applied{{"statement_timeout", "E'100'"}, {"work_mem", "E'64MB'"}};
  std::string sql = sync_statements({{"work_mem", {"64MB"}}}, {}, applied);
  CHECK(sql == "RESET statement_timeout;");
  CHECK(applied == std::map<std::string, std::string>{{"work_mem", "E'64MB'"}});
}

TEST_CASE("wanted_settings: a later startup value wins; the client's reported view overrides startup") {
  auto w = wanted_settings({{"search_path", "a"}, {"search_path", "b"}, {"timezone", "UTC"}},
                           {{"TimeZone", "Europe/Paris"}, {"server_version", "15.5"}});
  CHECK(w["search_path"].value == "b");
  CHECK(w["timezone"].value == "Europe/Paris");
  CHECK(w.count("server_version") == 0);   // reported but not settable
}

TEST_CASE("session SETs are replayed as the client wrote them, and compared as SQL") {
  const SessionSets sets{{"statement_timeout", {"'5s'", true}}, {"search_path", {"a, \"B\"", true}}};
  auto w = wanted_settings({{"statement_timeout", "100"}}, {}, &sets);
  CHECK(w["statement_timeout"] == WantedValue{"'5s'", true});   // the SET overrides startup
  std::map<std::string, std::string> applied;
  CHECK(sync_statements(w, {}, applied) == "SET search_path TO a, \"B\";SET statement_timeout TO '5s';");
  CHECK(sync_statements(w, {}, applied).empty());
  // Back to the startup value (after RESET): applied again, quoted.
  auto startup_only = wanted_settings({{"statement_timeout", "100"}}, {}, nullptr);
  CHECK(sync_statements(startup_only, {}, applied) ==
        "RESET search_path;SELECT pg_catalog.set_config(E'statement_timeout', E'100', false);");
}

TEST_CASE("quote_literal: quotes and backslashes cannot end the literal") {
  CHECK(quote_literal("plain") == "E'plain'");
  CHECK(quote_literal("it's") == "E'it''s'");
  CHECK(quote_literal("a\\'; drop table t; --") == "E'a\\\\''; drop table t; --'");
}
