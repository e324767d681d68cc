// HandoffState (online restart): the encoding round-trips, refuses what is damaged, and a
// RequestReader's prepared statements cross to a new reader with the same server-side names.
#include <doctest/doctest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "protocol/messages.h"
#include "proxy/request/handoff_state.h"
#include "proxy/request/request_reader.h"
#include "test_util.h"

using namespace pgrelay;
using namespace pgrelay::proxy;
namespace pr = pgrelay::protocol;

namespace {

HandoffState sample() {
  HandoffState s;
  s.client_id = 0x1234567890abcdefULL;
  s.user = "app";
  s.database = "shop";
  s.key = {.pid = 424242, .secret = -17};
  s.startup = {{"application_name", "web"}, {"search_path", "s2, public"}};
  s.reported = {{"TimeZone", "UTC"}, {"client_encoding", "UTF8"}, {"application_name", "web"}};
  s.sets = {{"work_mem", WantedValue{.value = "'64MB'", .sql = true}},
            {"statement_timeout", WantedValue{.value = "5s", .sql = false}}};
  pr::Buffer types;
  pr::Writer w(types);
  w.i16(1);
  w.i32(23);   // int4: contains zero bytes
  s.statements = {{.name = "P0_1", .query = "select $1::int", .param_types = types},
                  {.name = "", .query = "select 1", .param_types = {}}};
  s.credential = "SCRAM-SHA-256$4096:c2FsdA==$a2V5:a2V5";
  return s;
}

pr::Buffer encoded(const HandoffState& s) {
  pr::Buffer out;
  encode(s, out);
  return out;
}

// A reader that has seen `bytes` from its client.
struct Reader {
  AnalysisCache analyses;
  RequestReader reader;
  explicit Reader(bool server_names) : reader(analyses, options(server_names)) {}
  static RequestReader::Options options(bool server_names) {
    RequestReader::Options o;
    o.server_names = server_names;
    return o;
  }
  void read(const std::string& bytes) {
    std::vector<std::byte> buf(bytes.size());
    std::memcpy(buf.data(), bytes.data(), bytes.size());
    REQUIRE(reader.scan(std::span(buf), bytes.size()).ok());
  }
};

template <class M>
std::string msg(const M& m) { return test::encoded(m); }

}  // namespace

TEST_CASE("HandoffState: encode then decode gives the same state") {
  const HandoffState s = sample();
  auto back = decode_handoff(pr::Bytes(encoded(s)));
  REQUIRE_MESSAGE(back.ok(), back.error().message);
  CHECK(*back == s);
  CHECK(back->sets.at("work_mem").sql);
  CHECK_FALSE(back->sets.at("statement_timeout").sql);
  CHECK(back->statements[0].param_types.size() == 6);

  HandoffState empty;
  empty.user = "u";
  auto e = decode_handoff(pr::Bytes(encoded(empty)));
  REQUIRE(e.ok());
  CHECK(*e == empty);
}

TEST_CASE("HandoffState: another version, truncation, trailing bytes and no user are refused") {
  pr::Buffer bytes = encoded(sample());
  SUBCASE("another version") {
    bytes[4] = std::byte(2);
    auto r = decode_handoff(pr::Bytes(bytes));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("version 2") != std::string::npos);
  }
  SUBCASE("not one at all") {
    bytes[0] = std::byte('X');
    CHECK_FALSE(decode_handoff(pr::Bytes(bytes)).ok());
  }
  SUBCASE("every truncation") {
    for (size_t n = 0; n < bytes.size(); ++n) CHECK_FALSE(decode_handoff(pr::Bytes(bytes.data(), n)).ok());
  }
  SUBCASE("a byte after the last field") {
    bytes.push_back(std::byte(0));
    auto r = decode_handoff(pr::Bytes(bytes));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("after the last field") != std::string::npos);
  }
  SUBCASE("no user") {
    HandoffState s = sample();
    s.user.clear();
    CHECK_FALSE(decode_handoff(pr::Bytes(encoded(s))).ok());
  }
}

TEST_CASE("HandoffState: random damage never crashes and huge counts are refused") {
  const pr::Buffer good = encoded(sample());
  std::mt19937 rng(18);
  for (int round = 0; round < 2000; ++round) {
    pr::Buffer b = good;
    for (int flips = 1 + int(rng() % 4); flips > 0; --flips) b[5 + rng() % (b.size() - 5)] = std::byte(rng());
    auto r = decode_handoff(pr::Bytes(b));
    if (r.ok()) CHECK_FALSE(r->user.empty());
  }
  // A count of 2^31 statements after a valid prefix: refused, not allocated.
  HandoffState s;
  s.user = "u";
  pr::Buffer b = encoded(s);
  // The statements count sits right before the credential's length (the last 4 bytes).
  const size_t at = b.size() - 8;
  b[at] = std::byte(0x7f);
  CHECK_FALSE(decode_handoff(pr::Bytes(b)).ok());
}

TEST_CASE("HandoffState: a reader's statements cross to a new reader with their server names") {
  Reader old_side(/*server_names=*/true);
  old_side.read(msg(pr::Parse{"P0_1", "select abalance from pgbench_accounts where aid = $1", {23}}) +
                msg(pr::Parse{"", "select 42", {}}) + msg(pr::Sync{}));
  auto exported = old_side.reader.export_statements();
  REQUIRE(exported);
  REQUIRE(exported->size() == 2);

  Reader new_side(/*server_names=*/true);
  for (const auto& st : *exported) new_side.reader.adopt_statement(st);
  auto before = old_side.reader.statement("P0_1");
  auto after = new_side.reader.statement("P0_1");
  REQUIRE(after);
  CHECK(after->key == before->key);
  CHECK(after->server_name == before->server_name);
  CHECK(after->server_parse == before->server_parse);
  CHECK(after->analysis->text == before->analysis->text);
  REQUIRE(new_side.reader.statement(""));
  CHECK(new_side.reader.statement("")->analysis->text == "select 42");
  CHECK(new_side.reader.named_statements() == 1);

  // A Bind of the adopted name is tagged with it, as if the client had parsed it here.
  new_side.read(msg(pr::Bind{"", "P0_1", {}, {pr::Value(pr::as_bytes("7"))}, {}}) + msg(pr::Execute{"", 0}) + msg(pr::Sync{}));
  REQUIRE(new_side.reader.messages().size() == 3);
  CHECK(new_side.reader.messages()[0].statement == after);
}

TEST_CASE("HandoffState: a statement known only by a cut text cannot be exported") {
  Reader r(/*server_names=*/false);   // no server-side Parse keeps the whole text
  std::string long_query = "select '" + std::string(AnalysisCache::kMaxKeptText + 10, 'x') + "'";
  r.read(msg(pr::Parse{"big", long_query, {}}) + msg(pr::Sync{}));
  CHECK_FALSE(r.reader.export_statements());

  Reader routed(/*server_names=*/true);   // with one, it can
  routed.read(msg(pr::Parse{"big", long_query, {}}) + msg(pr::Sync{}));
  auto exported = routed.reader.export_statements();
  REQUIRE(exported);
  CHECK((*exported)[0].query == long_query);
}
