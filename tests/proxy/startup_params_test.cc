// Startup parameters into settings and SET statements.
#include <doctest/doctest.h>

#include "proxy/startup_params.h"

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

TEST_CASE("set_statements: only what differs from the server's reported values, case-insensitively") {
  std::map<std::string, std::string> server{{"DateStyle", "ISO, MDY"}, {"application_name", ""}};
  std::string sql = set_statements({{"datestyle", "ISO, MDY"}, {"application_name", "psql"}, {"statement_timeout", "5s"}}, server);
  CHECK(sql == "SET application_name TO E'psql';SET statement_timeout TO E'5s';");
  CHECK(set_statements({{"datestyle", "ISO, MDY"}}, server).empty());
}

TEST_CASE("set_statements: a later value of the same name wins") {
  CHECK(set_statements({{"search_path", "a"}, {"search_path", "b"}}, {}) == "SET search_path TO E'b';");
}

TEST_CASE("quote_literal: quotes and backslashes cannot end the literal") {
  CHECK(quote_literal("plain") == "E'plain'");
  CHECK(quote_literal("it's") == "E'it''s'");
  CHECK(quote_literal("a\\'; drop table t; --") == "E'a\\\\''; drop table t; --'");
}
