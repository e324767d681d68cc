// WarmList (cache warming's memory): the hottest statements per database, sessions described
// without secrets, seeds merged with what is counted, and the saved form round-trips and refuses
// what is damaged.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "proxy/request/warm_list.h"

using namespace pgrelay;
using namespace pgrelay::proxy;

namespace {

HandoffState session(const std::string& database, const std::string& user = "app") {
  HandoffState s;
  s.client_id = 77;
  s.user = user;
  s.database = database;
  s.key = {.pid = 5, .secret = 6};
  s.startup = {{"search_path", "s2, public"}};
  s.reported = {{"TimeZone", "UTC"}};
  s.sets = {{"work_mem", WantedValue{.value = "'64MB'", .sql = true}}};
  s.statements = {{.name = "P1", .query = "select 1", .param_types = {}}};
  s.credential = "secret";
  return s;
}

void hits(WarmList& list, uint64_t key, const std::string& text, const std::string& database, int n) {
  for (int i = 0; i < n; ++i) list.hit(key, text, [&] { return session(database); });
}

}  // namespace

TEST_CASE("WarmList keeps the hottest statements of each database, without secrets") {
  WarmList list(2);
  hits(list, 1, "SELECT 1", "shop", 5);
  hits(list, 2, "SELECT 2", "shop", 9);
  hits(list, 3, "SELECT 3", "shop", 1);
  hits(list, 4, "SELECT 4", "blog", 3);
  const auto shop = list.top("shop");
  REQUIRE(shop.size() == 2);
  CHECK(shop[0].text == "SELECT 2");
  CHECK(shop[0].hits == 9);
  CHECK(shop[1].text == "SELECT 1");
  CHECK(shop[0].session->database == "shop");
  CHECK(shop[0].session->credential.empty());
  CHECK(shop[0].session->statements.empty());
  CHECK(shop[0].session->client_id == 0);
  CHECK(shop[0].session->key.pid == 0);
  CHECK(shop[0].session->sets.count("work_mem") == 1);
  CHECK(list.top("").size() == 3);   // two of shop, one of blog
  CHECK(list.top("nope").empty());
  auto databases = list.databases();
  CHECK(databases.size() == 2);
}

TEST_CASE("WarmList: describe is called once per key, off when per_database is 0") {
  WarmList list(10);
  int described = 0;
  for (int i = 0; i < 4; ++i) list.hit(42, "SELECT 1", [&] { ++described; return session("shop"); });
  CHECK(described == 1);
  WarmList off(0);
  off.hit(42, "SELECT 1", [&] { ++described; return session("shop"); });
  CHECK(described == 1);
  CHECK(off.top("").empty());
}

TEST_CASE("WarmList: seeds merge with counted statements by text and session") {
  WarmList list(10);
  hits(list, 1, "SELECT 1", "shop", 3);
  WarmList saved(10);
  hits(saved, 9, "SELECT 1", "shop", 4);
  hits(saved, 8, "SELECT 8", "shop", 1);
  list.seed(saved.top(""));
  const auto top = list.top("shop");
  REQUIRE(top.size() == 2);
  CHECK(top[0].text == "SELECT 1");
  CHECK(top[0].hits == 7);
  CHECK(top[1].text == "SELECT 8");
}

TEST_CASE("WarmList: a full list ages what it counts and stays bounded") {
  WarmList list(1);   // 64 per stripe at least
  for (uint64_t k = 0; k < 100'000; ++k) list.hit(k, "SELECT " + std::to_string(k), [&] { return session("shop"); });
  hits(list, 7'000'000, "SELECT hot", "shop", 50);
  const auto top = list.top("shop");
  REQUIRE(top.size() == 1);
  CHECK(top[0].text == "SELECT hot");
}

TEST_CASE("warm lists round-trip and refuse damage") {
  WarmList list(10);
  hits(list, 1, "SELECT 1", "shop", 3);
  hits(list, 2, std::string("SELECT '\0'", 11), "blog", 2);
  const auto before = list.top("");
  protocol::Buffer bytes;
  encode_warm_list(before, bytes);
  auto after = decode_warm_list(bytes);
  REQUIRE(after.ok());
  REQUIRE(after->size() == before.size());
  for (size_t i = 0; i < before.size(); ++i) {
    CHECK((*after)[i].text == before[i].text);
    CHECK((*after)[i].hits == before[i].hits);
    CHECK(*(*after)[i].session == *before[i].session);
  }
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    CHECK_FALSE(decode_warm_list(protocol::Bytes(bytes.data(), cut)).ok());
  }
  protocol::Buffer padded = bytes;
  padded.push_back(std::byte{0});
  CHECK_FALSE(decode_warm_list(padded).ok());
  protocol::Buffer other = bytes;
  other[4] = std::byte{9};   // another format version
  auto refused = decode_warm_list(other);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().message.find("format 9") != std::string::npos);
}

namespace {

std::shared_ptr<const WarmExtended> bind_of(const std::string& value, bool describe = true) {
  auto e = std::make_shared<WarmExtended>();
  const std::vector<uint8_t> types = {0, 1, 0, 0, 0, 23};   // one parameter, int4
  for (uint8_t b : types) e->param_types.push_back(std::byte{b});
  e->param_formats = {1};
  e->params.emplace_back(protocol::Buffer(reinterpret_cast<const std::byte*>(value.data()),
                                          reinterpret_cast<const std::byte*>(value.data()) + value.size()));
  e->params.emplace_back(std::nullopt);
  e->result_formats = {0, 1};
  e->describe = describe;
  return e;
}

}  // namespace

TEST_CASE("WarmList: extended reads keep their Bind, apart from the same text as a Query, and round-trip") {
  WarmList list(10);
  const std::string text = "SELECT v FROM kv WHERE k = $1";
  int described = 0;
  for (int i = 0; i < 3; ++i) list.hit(1, text, [&] { return session("shop"); }, [&] { ++described; return bind_of(std::string("\0\0\0\1", 4)); });
  for (int i = 0; i < 2; ++i) list.hit(2, text, [&] { return session("shop"); }, [&] { return bind_of(std::string("\0\0\0\2", 4), false); });
  hits(list, 3, text, "shop", 1);   // the same text as a simple Query: another statement
  list.hit(4, text, [&] { return session("shop"); }, [] { return std::shared_ptr<const WarmExtended>(); });   // refused: not kept
  CHECK(described == 1);
  const auto top = list.top("shop");
  REQUIRE(top.size() == 3);
  REQUIRE(top[0].extended);
  CHECK(top[0].hits == 3);
  CHECK(*top[0].extended == *bind_of(std::string("\0\0\0\1", 4)));
  REQUIRE(top[1].extended);
  CHECK_FALSE(top[1].extended->describe);
  CHECK_FALSE(top[2].extended);
  protocol::Buffer bytes;
  encode_warm_list(top, bytes);
  auto after = decode_warm_list(bytes);
  REQUIRE(after.ok());
  REQUIRE(after->size() == 3);
  for (size_t i = 0; i < 3; ++i) {
    CHECK((*after)[i].text == top[i].text);
    CHECK(bool((*after)[i].extended) == bool(top[i].extended));
    if (top[i].extended) CHECK(*(*after)[i].extended == *top[i].extended);
  }
  for (size_t cut = 0; cut < bytes.size(); ++cut) CHECK_FALSE(decode_warm_list(protocol::Bytes(bytes.data(), cut)).ok());
  // Seeded back, each merges with its own: the two Binds stay two statements.
  WarmList again(10);
  again.seed(std::move(after).value());
  again.seed(top);
  const auto merged = again.top("shop");
  REQUIRE(merged.size() == 3);
  CHECK(merged[0].hits == 6);
}

TEST_CASE("warm lists of format 1 (simple Queries only) are still read") {
  // "PGRW", version 1, one statement: hits 5, text "SELECT 1", a session.
  protocol::Buffer session_bytes;
  encode(session("shop"), session_bytes);
  protocol::Buffer bytes;
  protocol::Writer w(bytes);
  w.str("PGRW");
  w.u8(1);
  w.i32(1);
  w.i32(0);
  w.i32(5);
  w.i32(8);
  w.str("SELECT 1");
  w.i32(int32_t(session_bytes.size()));
  w.bytes(session_bytes);
  auto list = decode_warm_list(bytes);
  REQUIRE_MESSAGE(list.ok(), list.error().message);
  REQUIRE(list->size() == 1);
  CHECK((*list)[0].text == "SELECT 1");
  CHECK((*list)[0].hits == 5);
  CHECK_FALSE((*list)[0].extended);
}
