// Admin console command parsing and result-set encoding: every verb, every error, and bytes out.
#include <doctest/doctest.h>

#include <random>

#include "protocol/framer.h"
#include "protocol/messages.h"
#include "proxy/admin/admin_command.h"
#include "proxy/base/result_set.h"

using namespace pgrelay;
using namespace pgrelay::proxy;
using V = AdminCommand::Verb;

namespace {

AdminCommand ok(std::string_view text) {
  auto c = parse_admin_command(text);
  REQUIRE_MESSAGE(c.ok(), text << ": " << (c.ok() ? "" : c.error().message));
  return *c;
}

std::string error_of(std::string_view text) {
  auto c = parse_admin_command(text);
  REQUIRE_MESSAGE(!c.ok(), "expected an error for: " << text);
  CHECK(c.error().sqlstate == "42601");
  return c.error().message;
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("SHOW: every subject, any case, the tag is SHOW") {
  for (const auto& s : show_subjects()) {
    auto c = ok("show " + std::string(s.name));
    CHECK(c.verb == V::kShow);
    CHECK(c.subject == s.name);
    CHECK(c.tag() == "SHOW");
    CHECK(c.read_only());
  }
  CHECK(ok("  SHOW\tPools  ").subject == "POOLS");
  CHECK(show_subjects().size() == 24);
}

TEST_CASE("RESET QUERIES: the analyzer's statistics, admins only") {
  auto c = ok("reset queries");
  CHECK(c.verb == V::kResetQueries);
  CHECK(c.tag() == "RESET");
  CHECK_FALSE(c.read_only());
  CHECK(contains(error_of("RESET"), "RESET takes QUERIES"));
  CHECK(contains(error_of("RESET stats"), "RESET takes QUERIES"));
  CHECK(contains(error_of("RESET QUERIES now"), "RESET takes QUERIES"));
}

TEST_CASE("CACHE FLUSH: all, a table, or a fingerprint; admins only") {
  auto all = ok("cache flush");
  CHECK(all.verb == V::kCacheFlush);
  CHECK(all.subject == "ALL");
  CHECK(all.tag() == "CACHE FLUSH");
  CHECK_FALSE(all.read_only());
  CHECK(ok("CACHE FLUSH ALL").subject == "ALL");
  auto table = ok("CACHE FLUSH TABLE public.items");
  CHECK(table.subject == "TABLE");
  CHECK(table.argument == "public.items");
  auto query = ok("cache flush query 00ab12cd34ef5678");
  CHECK(query.subject == "QUERY");
  CHECK(query.argument == "00ab12cd34ef5678");
  CHECK(contains(error_of("CACHE"), "CACHE takes FLUSH"));
  CHECK(contains(error_of("CACHE CLEAR"), "CACHE takes FLUSH"));
  CHECK(contains(error_of("CACHE FLUSH TABLE"), "CACHE takes FLUSH"));
  CHECK(contains(error_of("CACHE FLUSH QUERY xyz"), "16 hex digits"));
  CHECK(contains(error_of("CACHE FLUSH ALL now"), "CACHE takes FLUSH"));
}

TEST_CASE("CACHE ENABLE and CACHE DISABLE take a fingerprint; admins only") {
  auto off = ok("cache disable 00ab12cd34ef5678");
  CHECK(off.verb == V::kCacheDisable);
  CHECK(off.argument == "00ab12cd34ef5678");
  CHECK(off.tag() == "CACHE DISABLE");
  CHECK_FALSE(off.read_only());
  auto on = ok("CACHE ENABLE 00AB12CD34EF5678");
  CHECK(on.verb == V::kCacheEnable);
  CHECK(on.argument == "00AB12CD34EF5678");
  CHECK(on.tag() == "CACHE ENABLE");
  CHECK(contains(error_of("CACHE DISABLE"), "CACHE DISABLE takes a fingerprint (16 hex digits"));
  CHECK(contains(error_of("CACHE ENABLE xyz"), "CACHE ENABLE takes a fingerprint (16 hex digits, SHOW CACHES' fingerprint column), got \"xyz\""));
  CHECK(contains(error_of("CACHE ENABLE 00ab12cd34ef56789"), "takes a fingerprint"));
  CHECK(contains(error_of("CACHE DISABLE 00ab 12"), "takes a fingerprint"));
  CHECK(contains(error_of("CACHE DISABLE '00ab'"), "takes a fingerprint"));
  CHECK(contains(error_of("CACHE TOGGLE 00ab"), "CACHE takes FLUSH"));
}

TEST_CASE("CACHE WARM takes at most a database; admins only") {
  auto all = ok("cache warm");
  CHECK(all.verb == V::kCacheWarm);
  CHECK(all.argument.empty());
  CHECK(all.tag() == "CACHE WARM");
  CHECK_FALSE(all.read_only());
  CHECK(ok("CACHE WARM shop").argument == "shop");
  CHECK(ok("CACHE WARM \"Shop\"").argument == "Shop");
  CHECK(contains(error_of("CACHE WARM a b"), "CACHE WARM takes at most one database name"));
  CHECK(contains(error_of("CACHE WARM 'shop'"), "CACHE WARM takes at most one database name"));
}

TEST_CASE("commands with and without a database") {
  CHECK(ok("PAUSE").verb == V::kPause);
  CHECK(ok("PAUSE").argument.empty());
  CHECK(ok("pause appdb").argument == "appdb");
  CHECK(ok("PAUSE \"My DB\"").argument == "My DB");
  CHECK(ok("RESUME appdb").verb == V::kResume);
  CHECK(ok("SUSPEND").verb == V::kSuspend);
  CHECK(ok("DISABLE appdb").verb == V::kDisable);
  CHECK(ok("ENABLE appdb").verb == V::kEnable);
  CHECK(ok("RECONNECT").verb == V::kReconnect);
  CHECK(ok("KILL appdb").verb == V::kKill);
  CHECK(ok("KILL_CLIENT 42").argument == "42");
  CHECK(ok("KILL_CLIENT 42").tag() == "KILL_CLIENT");
  CHECK(ok("WAIT_CLOSE").verb == V::kWaitClose);
  CHECK(ok("reload").verb == V::kReload);
  CHECK(ok("SHUTDOWN").tag() == "SHUTDOWN");
  CHECK_FALSE(ok("PAUSE").read_only());
}

TEST_CASE("SET key = value: the value becomes a TOML literal") {
  auto c = ok("SET query_timeout = '30s'");
  CHECK(c.verb == V::kSet);
  CHECK(c.subject == "query_timeout");
  CHECK(c.argument == "\"30s\"");
  CHECK(ok("set MAX_CLIENT_CONN to 500").argument == "500");
  CHECK(ok("SET max_client_conn=500").subject == "max_client_conn");
  CHECK(ok("SET log_level = debug").argument == "\"debug\"");
  CHECK(ok("SET server_check_query = 'select ''x'''").argument == "\"select 'x'\"");
  CHECK(ok("SET server_check_query = 'a\"b\\\\c'").argument == "\"a\\\"b\\\\\\\\c\"");
  CHECK(ok("SET x = -1.5").argument == "-1.5");
  CHECK(ok("SET x = true").argument == "true");
  CHECK(ok("SET q = 'line\nbreak'").argument == "\"line\\u000abreak\"");
}

TEST_CASE("errors: unknown commands, wrong argument counts, bad ids, bad quoting (42601)") {
  CHECK(contains(error_of("FOO"), "unknown command \"FOO\""));
  CHECK(contains(error_of("SHOW"), "SHOW takes one subject"));
  CHECK(contains(error_of("SHOW FDS"), "unknown SHOW subject \"FDS\""));
  CHECK(contains(error_of("SHOW POOLS now"), "SHOW takes one subject"));
  CHECK(contains(error_of("PAUSE a b"), "at most one database name, got 2"));
  CHECK(contains(error_of("KILL"), "a database name, got 0"));
  CHECK(contains(error_of("DISABLE"), "a database name"));
  CHECK(contains(error_of("RELOAD now"), "no arguments"));
  CHECK(contains(error_of("KILL_CLIENT abc"), "client id"));
  CHECK(contains(error_of("KILL_CLIENT 99999999999999999999"), "client id"));
  CHECK(contains(error_of("PAUSE 'db'"), "a name"));
  CHECK(contains(error_of("SET x"), "SET takes key = value"));
  CHECK(contains(error_of("SET x = "), "SET takes key = value"));
  CHECK(contains(error_of("SET = 1"), "SET takes key = value"));
  CHECK(contains(error_of("SET x = 1 2"), "SET takes key = value"));
  CHECK(contains(error_of("SHOW \"POOLS"), "unterminated"));
  CHECK(contains(error_of("SET x = 'abc"), "unterminated"));
  CHECK(contains(error_of("= 1"), "expected a command"));
  CHECK(contains(error_of(""), "empty"));
  CHECK(std::string(kConsoleHint).find("SHOW HELP") != std::string::npos);
}

TEST_CASE("split_statements: on ';' outside quotes, blanks dropped") {
  using S = std::vector<std::string>;
  CHECK(split_statements("SHOW POOLS") == S{"SHOW POOLS"});
  CHECK(split_statements("SHOW POOLS;") == S{"SHOW POOLS"});
  CHECK(split_statements(" ; ;  ") == S{});
  CHECK(split_statements("PAUSE; RESUME") == S{"PAUSE", " RESUME"});
  CHECK(split_statements("SET q = 'a;b'; SHOW \"x;y\"") == S{"SET q = 'a;b'", " SHOW \"x;y\""});
  CHECK(split_statements("SET q = 'it''s;'") == S{"SET q = 'it''s;'"});
}

TEST_CASE("random bytes never crash the parser") {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> byte(0, 255), len(0, 64);
  for (int i = 0; i < 20000; ++i) {
    std::string text(size_t(len(rng)), '\0');
    for (char& c : text) c = char(byte(rng));
    for (const auto& statement : split_statements(text)) {
      auto c = parse_admin_command(statement);
      if (!c.ok()) CHECK(c.error().sqlstate == "42601");
    }
  }
}

TEST_CASE("ResultSet: RowDescription, DataRows with NULLs, CommandComplete") {
  ResultSet rs({{"name", ResultSet::Type::kText}, {"n", ResultSet::Type::kInt}, {"x", ResultSet::Type::kFloat}});
  rs.row().text("a").num(int64_t(-3)).num(0.5);
  rs.row().null().num(int64_t(7));   // short: padded with NULL
  rs.row().text("b").num(int64_t(1)).num(2.0).text("extra");   // long: the extra value is dropped
  protocol::Buffer out;
  rs.encode("SHOW", out);

  std::vector<std::pair<char, protocol::Buffer>> messages;
  protocol::Framer framer(1 << 20);
  framer.inspect_all();
  auto consumed = framer.feed(out, [&](const protocol::Frame& f, size_t) {
    messages.emplace_back(f.type, protocol::Buffer(f.body.begin(), f.body.end()));
    return protocol::FrameAction::kContinue;
  });
  REQUIRE(consumed.ok());
  CHECK(*consumed == out.size());
  REQUIRE(messages.size() == 5);
  auto desc = protocol::decode_row_description(messages[0].second);
  REQUIRE(desc.ok());
  REQUIRE(desc->fields.size() == 3);
  CHECK(desc->fields[0].name == "name");
  CHECK(desc->fields[0].type_oid == 25);
  CHECK(desc->fields[1].type_oid == 20);
  CHECK(desc->fields[2].type_oid == 701);
  auto row1 = protocol::decode_data_row(messages[1].second);
  REQUIRE(row1.ok());
  REQUIRE(row1->values.size() == 3);
  CHECK(protocol::as_string_view(*row1->values[0]) == "a");
  CHECK(protocol::as_string_view(*row1->values[1]) == "-3");
  CHECK(protocol::as_string_view(*row1->values[2]) == "0.5");
  auto row2 = protocol::decode_data_row(messages[2].second);
  REQUIRE(row2.ok());
  REQUIRE(row2->values.size() == 3);
  CHECK_FALSE(row2->values[0].has_value());
  CHECK_FALSE(row2->values[2].has_value());
  auto row3 = protocol::decode_data_row(messages[3].second);
  REQUIRE(row3.ok());
  CHECK(row3->values.size() == 3);
  CHECK(protocol::as_string_view(*row3->values[2]) == "2");
  auto done = protocol::decode_command_complete(messages[4].second);
  REQUIRE(done.ok());
  CHECK(done->tag == "SHOW");
}

TEST_CASE("format_utc: PgBouncer's time format") {
  CHECK(format_utc(0) == "1970-01-01 00:00:00 UTC");
  CHECK(format_utc(1764073387) == "2025-11-25 12:23:07 UTC");
  CHECK(format_utc(1764073387, 42) == "2025-11-25 12:23:07.042 UTC");   // SHOW QUERIES, SHOW SLOW
  CHECK(format_utc(0, 0) == "1970-01-01 00:00:00.000 UTC");
}
