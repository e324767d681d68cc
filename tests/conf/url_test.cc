// postgresql:// URL parsing: every part, percent-decoding, IPv6, defaults, and errors by part.
#include <doctest/doctest.h>

#include <string>

#include "conf/url.h"

namespace pgrelay::conf {
namespace {

PostgresUrl ok_url(std::string_view text) {
  auto u = parse_postgres_url(text);
  REQUIRE_MESSAGE(u.ok(), std::string(text) << ": " << (u.ok() ? "" : u.error().message));
  return *u;
}

std::string error_of(std::string_view text) {
  auto u = parse_postgres_url(text);
  REQUIRE_MESSAGE(!u.ok(), std::string(text) << " parsed");
  return u.error().message;
}

TEST_CASE("a full URL splits into every part") {
  const PostgresUrl u = ok_url("postgresql://app:secret@10.0.0.5:5433/app_production");
  CHECK(u.user == "app");
  CHECK(u.password == "secret");
  CHECK(u.host == "10.0.0.5");
  CHECK(u.port == 5433);
  CHECK(u.dbname == "app_production");
  CHECK(u.params.empty());
}

TEST_CASE("postgres:// is accepted as well") {
  const PostgresUrl u = ok_url("postgres://db.internal/orders");
  CHECK(u.host == "db.internal");
  CHECK(u.dbname == "orders");
}

TEST_CASE("a missing port means 5432, missing parts stay empty") {
  const PostgresUrl u = ok_url("postgresql://db.example.com");
  CHECK(u.port == 5432);
  CHECK(u.host == "db.example.com");
  CHECK(u.user.empty());
  CHECK(u.password.empty());
  CHECK(u.dbname.empty());
  CHECK(ok_url("postgresql://db.example.com/").dbname.empty());
}

TEST_CASE("a user without a password") {
  const PostgresUrl u = ok_url("postgresql://alice@localhost/db");
  CHECK(u.user == "alice");
  CHECK(u.password.empty());
  CHECK(u.host == "localhost");
}

TEST_CASE("an empty password after ':' is an empty password") {
  const PostgresUrl u = ok_url("postgresql://alice:@localhost/db");
  CHECK(u.user == "alice");
  CHECK(u.password.empty());
}

TEST_CASE("an empty host keeps the default") {
  const PostgresUrl u = ok_url("postgresql:///mydb");
  CHECK(u.host == "127.0.0.1");
  CHECK(u.dbname == "mydb");
}

TEST_CASE("percent-encoding is decoded in every part") {
  const PostgresUrl u =
      ok_url("postgresql://us%40er:p%3Ass%2Fw%25rd@%2Fvar%2Frun%2Fpostgresql/my%20db?application_name=a%26b");
  CHECK(u.user == "us@er");
  CHECK(u.password == "p:ss/w%rd");
  CHECK(u.host == "/var/run/postgresql");
  CHECK(u.dbname == "my db");
  CHECK(u.params.at("application_name") == "a&b");
}

TEST_CASE("a raw '@' in the password still splits at the last '@'") {
  const PostgresUrl u = ok_url("postgresql://app:p@ss@db:5432/x");
  CHECK(u.password == "p@ss");
  CHECK(u.host == "db");
}

TEST_CASE("IPv6 addresses in brackets, with and without a port") {
  const PostgresUrl a = ok_url("postgresql://u:p@[::1]:6543/db");
  CHECK(a.host == "::1");
  CHECK(a.port == 6543);
  const PostgresUrl b = ok_url("postgresql://[2001:db8::7]/db");
  CHECK(b.host == "2001:db8::7");
  CHECK(b.port == 5432);
}

TEST_CASE("query parameters are collected, decoded, empty segments skipped") {
  const PostgresUrl u = ok_url("postgresql://h/db?sslmode=require&&connect_timeout=10&");
  CHECK(u.params.size() == 2);
  CHECK(u.params.at("sslmode") == "require");
  CHECK(u.params.at("connect_timeout") == "10");
  CHECK(u.dbname == "db");
  CHECK(ok_url("postgresql://h?x=1").dbname.empty());
}

TEST_CASE("bad ports are named") {
  CHECK(error_of("postgresql://h:abc/db") == "port 'abc' is not a number");
  CHECK(error_of("postgresql://h:0/db") == "port '0' is out of range 1..65535");
  CHECK(error_of("postgresql://h:65536/db") == "port '65536' is out of range 1..65535");
  CHECK(error_of("postgresql://h:99999999999999999999/db").find("out of range") !=
        std::string::npos);
  CHECK(error_of("postgresql://h:/db").find("port is empty") != std::string::npos);
  CHECK(error_of("postgresql://h:-1/db") == "port '-1' is not a number");
  CHECK(ok_url("postgresql://h:65535/db").port == 65535);
  CHECK(ok_url("postgresql://h:1/db").port == 1);
}

TEST_CASE("wrong schemes are named") {
  CHECK(error_of("mysql://h/db").find("scheme 'mysql'") != std::string::npos);
  CHECK(error_of("h:5432/db").find("postgresql://") != std::string::npos);
  CHECK(error_of("").find("postgresql://") != std::string::npos);
  CHECK(error_of("POSTGRESQL://h/db").find("scheme") != std::string::npos);
}

TEST_CASE("IPv6 mistakes are named") {
  CHECK(error_of("postgresql://::1:5432/db").find("brackets") != std::string::npos);
  CHECK(error_of("postgresql://[::1/db").find("']'") != std::string::npos);
  CHECK(error_of("postgresql://[]:5432/db").find("empty IPv6") != std::string::npos);
  CHECK(error_of("postgresql://[::1]x/db").find("after ']'") != std::string::npos);
}

TEST_CASE("bad percent-escapes are named by part, never echoing the password") {
  CHECK(error_of("postgresql://u%zz@h/db").find("user") != std::string::npos);
  CHECK(error_of("postgresql://h/db%4").find("dbname") != std::string::npos);
  CHECK(error_of("postgresql://h/db%00").find("dbname") != std::string::npos);
  CHECK(error_of("postgresql://%zz/db").find("host") != std::string::npos);
  const std::string pw = error_of("postgresql://u:hunter2%zz@h/db");
  CHECK(pw.find("password") != std::string::npos);
  CHECK(pw.find("hunter2") == std::string::npos);
}

TEST_CASE("several hosts, as libpq takes them: the first in host/port, the others in more_hosts") {
  auto u = parse_postgres_url("postgresql://u@h1:5433,h2,[::1]:7000/db");
  REQUIRE(u);
  CHECK(u->host == "h1");
  CHECK(u->port == 5433);
  REQUIRE(u->more_hosts.size() == 2);
  CHECK(u->more_hosts[0].host == "h2");
  CHECK(u->more_hosts[0].port == 5432);
  CHECK(u->more_hosts[1].host == "::1");
  CHECK(u->more_hosts[1].port == 7000);
  CHECK(u->dbname == "db");
  CHECK(error_of("postgresql://h1,h2:x/db").find("not a number") != std::string::npos);
}

TEST_CASE("other malformed URLs") {
  CHECK(error_of("postgresql://h/db?novalue").find("'novalue' is not key=value") !=
        std::string::npos);
  CHECK(error_of("postgresql://h/db?=x").find("not key=value") != std::string::npos);
  CHECK(error_of("postgresql://h/db#frag").find("fragment") != std::string::npos);
  CHECK(error_of("postgresql://h/d\nb").find("control character") != std::string::npos);
}

}  // namespace
}  // namespace pgrelay::conf
