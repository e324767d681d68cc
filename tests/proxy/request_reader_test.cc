// RequestReader: client bytes framed into requests, each message tagged with its request, analysis, statement and Bind.
#include <doctest/doctest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "protocol/messages.h"
#include "proxy/request/request_reader.h"
#include "test_util.h"

using namespace pgrelay;
using namespace pgrelay::proxy;
namespace pr = pgrelay::protocol;

namespace {

using test::str;
template <class M>
std::string msg(const M& m) { return test::encoded(m); }
std::string copy_data(const std::string& data) {
  pr::Buffer b;
  pr::encode_frontend(pr::CopyData{pr::as_bytes(data)}, b);
  return str(b);
}
std::string copy_done() {
  pr::Buffer b;
  pr::encode_frontend(pr::CopyDone{}, b);
  return str(b);
}

const std::string kSync = msg(pr::Sync{});

// A session's client direction: each read lands at buf + held(), after keep_held() of the last.
struct Client {
  AnalysisCache analyses;
  RequestReader reader;
  std::vector<std::byte> buf = std::vector<std::byte>(1 << 16);

  explicit Client(RequestReader::Options options = {}) : reader(analyses, options) {}

  [[nodiscard]] Result<void> read(const std::string& bytes) {
    reader.forwarder().keep_held(std::span(buf));
    const size_t held = reader.held();
    REQUIRE(held + bytes.size() <= buf.size());
    std::memcpy(buf.data() + held, bytes.data(), bytes.size());
    auto r = reader.scan(std::span(buf), bytes.size());
    if (r.ok()) {
      CHECK(reader.messages().size() == reader.forwarder().scanned().size());
    }
    return r;
  }
  const std::vector<Request>& requests() const { return reader.requests(); }
  const ClientMessage& message(size_t i) const { return reader.messages().at(i); }
  char type(size_t i) const { return reader.forwarder().scanned().at(i).frame.type; }
};

// An extended batch with the unnamed statement and portal.
std::string unnamed_batch(const std::string& sql) {
  return msg(pr::Parse{"", sql, {}}) + msg(pr::Bind{"", "", {}, {}, {}}) + msg(pr::Describe{'P', ""}) +
         msg(pr::Execute{"", 0}) + kSync;
}

}  // namespace

TEST_CASE("RequestReader: a simple Query is one request with its text's statements") {
  Client c;
  REQUIRE(c.read(msg(pr::Query{"select 1"})).ok());
  REQUIRE(c.requests().size() == 1);
  const Request& r = c.requests()[0];
  CHECK(r.kind == RequestKind::kQuery);
  CHECK(r.first == 0);
  CHECK(r.end == 1);
  CHECK(r.complete);
  CHECK_FALSE(r.continued);
  CHECK_FALSE(r.flush);
  CHECK(r.statements == 1);
  CHECK(c.message(0).request == 0);
  REQUIRE(c.message(0).analysis);
  CHECK(c.message(0).analysis->text == "select 1");
  CHECK_FALSE(c.reader.request_open());

  REQUIRE(c.read(msg(pr::Query{"select 1; select 2; select 3"})).ok());
  REQUIRE(c.requests().size() == 1);
  CHECK(c.requests()[0].statements == 3);
  CHECK(c.message(0).analysis->statement_text(2) == "select 3");
}

TEST_CASE("RequestReader: an extended batch with the unnamed statement and portal is one request to its Sync") {
  Client c;
  REQUIRE(c.read(unnamed_batch("select $1::int")).ok());
  REQUIRE(c.requests().size() == 1);
  const Request& r = c.requests()[0];
  CHECK(r.kind == RequestKind::kExtended);
  CHECK(r.first == 0);
  CHECK(r.end == 5);
  CHECK(r.complete);
  CHECK_FALSE(r.continued);
  CHECK(r.statements == 1);
  for (size_t i = 0; i < 5; ++i) CHECK(c.message(i).request == 0);
  const ClientStatementPtr parsed = c.message(0).statement;
  REQUIRE(parsed);
  REQUIRE(parsed->analysis);
  CHECK(parsed->analysis->text == "select $1::int");
  CHECK(c.message(0).analysis == parsed->analysis);
  CHECK(c.message(1).statement == parsed);   // Bind names it
  CHECK(c.message(2).statement == parsed);   // Describe 'P' of the portal it made
  CHECK(c.message(3).statement == parsed);   // Execute runs it
  CHECK(c.message(3).analysis == parsed->analysis);
  CHECK(c.message(3).bind == 1);
  CHECK(c.message(1).bind == kNoIndex);
  CHECK(parsed->server_name.empty());   // only with Options::server_names
  CHECK(c.reader.named_statements() == 0);
  CHECK_FALSE(c.reader.request_open());
}

TEST_CASE("RequestReader: a named statement and portal carry the Parse's analysis to a later Execute") {
  Client c;
  REQUIRE(c.read(msg(pr::Parse{"s1", "select $1::text", {25}}) + kSync).ok());
  const ClientStatementPtr s1 = c.message(0).statement;
  REQUIRE(s1);
  CHECK(s1->param_types_raw.size() == 2 + 4);   // count and one OID, as sent
  CHECK(c.reader.named_statements() == 1);
  CHECK(c.requests()[0].statements == 0);

  REQUIRE(c.read(msg(pr::Describe{'S', "s1"}) + msg(pr::Bind{"p1", "s1", {}, {std::nullopt}, {}}) +
                 msg(pr::Execute{"p1", 5}) + kSync)
              .ok());
  CHECK(c.message(0).statement == s1);
  CHECK(c.message(1).statement == s1);
  CHECK(c.message(2).statement == s1);
  CHECK(c.message(2).analysis == s1->analysis);
  CHECK(c.message(2).bind == 1);

  // Bound here, executed in the next read: the statement is known, the Bind is not in this read.
  REQUIRE(c.read(msg(pr::Bind{"p2", "s1", {}, {std::nullopt}, {}}) + msg(pr::Flush{})).ok());
  REQUIRE(c.read(msg(pr::Execute{"p2", 0}) + kSync).ok());
  CHECK(c.message(0).statement == s1);
  CHECK(c.message(0).bind == kNoIndex);
  CHECK(c.requests()[0].continued);

  // A new Parse of the name is a new statement; what was tagged with the old one keeps it.
  REQUIRE(c.read(msg(pr::Close{'S', "s1"}) + msg(pr::Parse{"s1", "select 2", {}}) + kSync).ok());
  CHECK(c.message(1).statement != s1);
  CHECK(c.message(1).statement->analysis->text == "select 2");
  CHECK(s1->analysis->text == "select $1::text");
}

TEST_CASE("RequestReader: Close of a statement or a portal forgets its name") {
  Client c;
  REQUIRE(c.read(msg(pr::Parse{"s1", "select 1", {}}) + msg(pr::Bind{"p1", "s1", {}, {}, {}}) + kSync).ok());
  CHECK(c.reader.named_statements() == 1);
  REQUIRE(c.read(msg(pr::Close{'P', "p1"}) + msg(pr::Execute{"p1", 0}) + kSync).ok());
  CHECK_FALSE(c.message(1).statement);
  CHECK_FALSE(c.message(1).analysis);
  CHECK(c.message(1).bind == kNoIndex);
  CHECK(c.requests()[0].statements == 1);   // still an Execute the server answers
  REQUIRE(c.read(msg(pr::Close{'S', "s1"}) + msg(pr::Bind{"", "s1", {}, {}, {}}) + kSync).ok());
  CHECK(c.reader.named_statements() == 0);
  CHECK_FALSE(c.message(1).statement);
}

TEST_CASE("RequestReader: Flush asks for answers before the Sync; the batch continues in the next read") {
  Client c;
  REQUIRE(c.read(msg(pr::Parse{"", "select 1", {}}) + msg(pr::Bind{"", "", {}, {}, {}}) + msg(pr::Execute{"", 0}) +
                 msg(pr::Flush{}))
              .ok());
  REQUIRE(c.requests().size() == 1);
  CHECK(c.requests()[0].flush);
  CHECK_FALSE(c.requests()[0].complete);
  CHECK(c.reader.request_open());
  REQUIRE(c.read(kSync).ok());
  REQUIRE(c.requests().size() == 1);
  CHECK(c.requests()[0].continued);
  CHECK(c.requests()[0].complete);
  CHECK(c.requests()[0].statements == 1);   // the Execute of the earlier read
  CHECK_FALSE(c.reader.request_open());
}

TEST_CASE("RequestReader: pipelined Syncs and Queries are several requests of one read, in order") {
  Client c;
  const std::string in = unnamed_batch("select 1") + msg(pr::Query{"select 2; select 3"}) + unnamed_batch("select 4") +
                         msg(pr::FunctionCall{1598, {}, {}, 0});
  REQUIRE(c.read(in).ok());
  REQUIRE(c.requests().size() == 4);
  const uint32_t bounds[][2] = {{0, 5}, {5, 6}, {6, 11}, {11, 12}};
  const RequestKind kinds[] = {RequestKind::kExtended, RequestKind::kQuery, RequestKind::kExtended,
                               RequestKind::kFunctionCall};
  for (uint32_t i = 0; i < 4; ++i) {
    CAPTURE(i);
    const Request& r = c.requests()[i];
    CHECK(r.kind == kinds[i]);
    CHECK(r.first == bounds[i][0]);
    CHECK(r.end == bounds[i][1]);
    CHECK(r.complete);
    CHECK_FALSE(r.continued);
    for (uint32_t m = r.first; m < r.end; ++m) CHECK(c.message(m).request == i);
  }
  CHECK(c.requests()[1].statements == 2);
  CHECK(c.message(9).analysis->text == "select 4");
  CHECK(c.message(9).bind == 7);
}

TEST_CASE("RequestReader: a Query after an unsynced batch ends it; the next batch is a new request") {
  const std::string open = msg(pr::Parse{"", "select 1", {}}) + msg(pr::Bind{"", "", {}, {}, {}}) + msg(pr::Execute{"", 0});
  const std::string query = msg(pr::Query{"select 2"});
  const std::string next = unnamed_batch("select 3");
  SUBCASE("in one read") {
    Client c;
    REQUIRE(c.read(open + query + next).ok());
    REQUIRE(c.requests().size() == 3);
    CHECK(c.requests()[0].complete);
    CHECK(c.requests()[1].kind == RequestKind::kQuery);
    CHECK_FALSE(c.requests()[2].continued);
    CHECK(c.requests()[2].statements == 1);
  }
  SUBCASE("over three reads") {
    Client c;
    REQUIRE(c.read(open).ok());
    CHECK(c.reader.request_open());
    REQUIRE(c.read(query).ok());
    CHECK_FALSE(c.requests()[0].continued);
    CHECK_FALSE(c.reader.request_open());
    REQUIRE(c.read(next).ok());
    REQUIRE(c.requests().size() == 1);
    CHECK_FALSE(c.requests()[0].continued);
    CHECK(c.requests()[0].statements == 1);
  }
}

TEST_CASE("RequestReader: a batch split across two reads at every offset keeps its requests and tags") {
  const std::string in = msg(pr::Parse{"s", "select $1::int", {23}}) +
                         msg(pr::Bind{"p", "s", {0}, {pr::Value(pr::as_bytes("7"))}, {}}) + msg(pr::Describe{'P', "p"}) +
                         msg(pr::Execute{"p", 0}) + kSync + msg(pr::Query{"select 9"});
  const std::string types = "PBDESQ";
  for (size_t cut = 0; cut <= in.size(); ++cut) {
    CAPTURE(cut);
    Client c;
    std::string seen;                       // message types over both reads
    std::vector<ClientMessage> kept;
    kept.reserve(types.size());
    for (const std::string& part : {in.substr(0, cut), in.substr(cut)}) {
      REQUIRE(c.read(part).ok());
      const size_t before = seen.size();
      for (size_t i = 0; i < c.reader.messages().size(); ++i) {
        seen += c.type(i);
        kept.push_back(c.message(i));
        CHECK(c.message(i).request < c.requests().size());
      }
      const size_t here = seen.size() - before;
      // Which requests this read holds: the batch (complete once the Sync is here), the Query.
      const bool has_batch = before < 5 && here > 0;
      const bool has_query = seen.size() == 6 && here > 0;
      REQUIRE(c.requests().size() == size_t(has_batch) + size_t(has_query));
      if (has_batch) {
        const Request& r = c.requests()[0];
        CHECK(r.kind == RequestKind::kExtended);
        CHECK(r.continued == (before > 0));
        CHECK(r.complete == (seen.size() >= 5));
        CHECK(r.statements == (seen.size() >= 4 ? 1u : 0u));
      }
      if (has_query) CHECK(c.requests().back().kind == RequestKind::kQuery);
      // The Execute names the Parse's statement, and its Bind when the Bind came in this read.
      for (size_t i = 0; i < c.reader.messages().size(); ++i) {
        if (c.type(i) != 'E') continue;
        REQUIRE(c.message(i).analysis);
        CHECK(c.message(i).analysis->text == "select $1::int");
        CHECK(c.message(i).bind == (before <= 1 ? uint32_t(1 - before) : kNoIndex));
      }
    }
    CHECK(seen == types);
    REQUIRE(kept.size() == 6);
    CHECK(kept[0].statement == kept[3].statement);
    CHECK(kept[5].analysis->text == "select 9");
    CHECK_FALSE(c.reader.request_open());
  }
}

TEST_CASE("RequestReader: a Parse the server will reject still heads one request to its Sync") {
  Client c;
  REQUIRE(c.read(msg(pr::Parse{"", "selec oops from", {}}) + msg(pr::Bind{"", "", {}, {}, {}}) +
                 msg(pr::Execute{"", 0}) + kSync + msg(pr::Query{"select 1"}))
              .ok());
  REQUIRE(c.requests().size() == 2);
  CHECK(c.requests()[0].end == 4);
  CHECK(c.requests()[0].complete);
  CHECK(c.requests()[0].statements == 1);
  REQUIRE(c.message(0).analysis);
  CHECK(c.message(0).analysis->text == "selec oops from");
  CHECK(c.message(2).analysis == c.message(0).analysis);
  CHECK(c.message(4).request == 1);
}

TEST_CASE("RequestReader: COPY data belongs to no request") {
  Client c;
  pr::Buffer fail;
  pr::encode(pr::CopyFail{"stop"}, fail);
  REQUIRE(c.read(msg(pr::Query{"copy t from stdin"}) + copy_data("1\n") + copy_data("2\n") + copy_done() +
                 msg(pr::Query{"copy t from stdin"}) + str(fail) + msg(pr::Query{"select 1"}))
              .ok());
  REQUIRE(c.reader.messages().size() == 7);
  REQUIRE(c.requests().size() == 3);
  for (size_t i : {1, 2, 3, 5}) CHECK(c.message(i).request == kNoIndex);
  CHECK(c.message(0).request == 0);
  CHECK(c.message(4).request == 1);
  CHECK(c.message(6).request == 2);
  CHECK(c.requests()[0].end == 1);
  CHECK(c.requests()[2].first == 6);
}

TEST_CASE("RequestReader: a Terminate stops the read before it") {
  Client c;
  REQUIRE(c.read(msg(pr::Query{"select 1"}) + msg(pr::Terminate{}) + msg(pr::Query{"select 2"})).ok());
  CHECK(c.reader.terminated());
  CHECK_FALSE(c.reader.violation());
  CHECK(c.reader.messages().size() == 1);
  CHECK(c.requests().size() == 1);
}

TEST_CASE("RequestReader: a message no client sends after startup is a FATAL protocol violation") {
  Client c;
  pr::Buffer password;
  pr::encode(pr::PasswordMessage{"secret"}, password);
  REQUIRE(c.read(msg(pr::Query{"select 1"}) + str(password) + msg(pr::Query{"select 2"})).ok());
  REQUIRE(c.reader.violation());
  CHECK(c.reader.violation()->severity == "FATAL");
  CHECK(c.reader.violation()->sqlstate == "08P01");
  CHECK_FALSE(c.reader.terminated());
  CHECK(c.reader.messages().size() == 1);
  // A bad length is the Framer's error instead.
  Client d;
  auto r = d.read(std::string("Q\0\0\0\2", 5));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().sqlstate == "08P01");
}

TEST_CASE("RequestReader: a text seen again is one shared analysis") {
  Client c;
  REQUIRE(c.read(msg(pr::Query{"select 1"}) + msg(pr::Query{"select 1"}) + msg(pr::Query{"select 1"}) +
                 msg(pr::Parse{"", "select 1", {}}) + msg(pr::Parse{"", "select 2", {}}) + kSync)
              .ok());
  REQUIRE(c.message(0).analysis);
  // The first sighting is analyzed but not kept (AnalysisCache's doorkeeper); the second is kept.
  CHECK(c.message(1).analysis.get() == c.message(2).analysis.get());
  CHECK(c.message(3).analysis.get() == c.message(1).analysis.get());
  CHECK(c.message(4).analysis.get() != c.message(1).analysis.get());
  const auto stats = c.analyses.stats();
  CHECK(stats.misses == 3);
  CHECK(stats.hits == 2);
  CHECK(stats.entries == 1);
}

TEST_CASE("RequestReader: a second Parse of a name is a duplicate; a failed Parse loses its name") {
  Client c;
  REQUIRE(c.read(msg(pr::Parse{"s1", "select 1", {}}) + msg(pr::Parse{"s1", "select 2", {}}) +
                 msg(pr::Bind{"", "s1", {}, {}, {}}) + kSync)
              .ok());
  const ClientStatementPtr first = c.message(0).statement;
  REQUIRE(first);
  CHECK_FALSE(c.message(0).duplicate);
  CHECK(c.message(1).duplicate);                      // PostgreSQL answers 42P05
  REQUIRE(c.message(1).statement);
  CHECK(c.message(1).statement->analysis->text == "select 2");
  CHECK(c.message(2).statement == first);             // the name still stands for the first
  CHECK(c.reader.statement("s1") == first);
  // The duplicate's failure costs the name nothing; the first Parse's failure loses it.
  c.reader.forget_failed(c.message(1).statement);
  CHECK(c.reader.statement("s1") == first);
  c.reader.forget_failed(first);
  CHECK_FALSE(c.reader.statement("s1"));
  REQUIRE(c.read(msg(pr::Parse{"s1", "select 3", {}}) + kSync).ok());
  CHECK_FALSE(c.message(0).duplicate);                // a new statement, no more a duplicate
  // The unnamed statement is replaced by every Parse of it.
  REQUIRE(c.read(msg(pr::Parse{"", "select 1", {}}) + msg(pr::Parse{"", "select 2", {}}) + kSync).ok());
  CHECK_FALSE(c.message(1).duplicate);
  CHECK(c.reader.statement("") == c.message(1).statement);
}

TEST_CASE("RequestReader: beyond max_names the oldest bookkeeping is dropped") {
  RequestReader::Options options;
  options.max_names = 2;
  Client c(options);
  REQUIRE(c.read(msg(pr::Parse{"a", "select 1", {}}) + msg(pr::Parse{"b", "select 2", {}}) + kSync).ok());
  CHECK(c.reader.named_statements() == 2);
  REQUIRE(c.read(msg(pr::Parse{"c", "select 3", {}}) + msg(pr::Bind{"", "a", {}, {}, {}}) +
                 msg(pr::Bind{"", "c", {}, {}, {}}) + kSync)
              .ok());
  CHECK(c.reader.named_statements() <= 2);
  CHECK_FALSE(c.message(1).statement);
  CHECK(c.message(2).statement == c.message(0).statement);
}

TEST_CASE("RequestReader: random messages and random bytes, read in random pieces, never crash") {
  std::mt19937 rng(4242);
  const std::string types = "QPBDESHCFdcfX?";
  for (int round = 0; round < 3000; ++round) {
    CAPTURE(round);
    std::string in;
    const int count = 1 + int(rng() % 10);
    for (int i = 0; i < count; ++i) {
      std::string body(rng() % 24, '\0');
      for (auto& ch : body) ch = char(rng() % 4 == 0 ? 0 : rng());
      if (rng() % 8 == 0) {
        in += body;   // garbage: bad lengths, unknown types
        continue;
      }
      pr::Buffer b;
      pr::Writer w(b);
      const size_t mark = w.begin(types[rng() % types.size()]);
      w.str(body);
      w.end(mark);
      in += str(b);
    }
    Client c;
    size_t from = 0;
    while (from < in.size()) {
      const size_t n = std::min(in.size() - from, size_t(1 + rng() % 40));
      auto r = c.read(in.substr(from, n));
      from += n;
      if (!r.ok() || c.reader.terminated() || c.reader.violation()) break;
      for (const Request& q : c.requests()) {
        CHECK(q.first <= q.end);
        CHECK(q.end <= c.reader.messages().size());
      }
      for (const ClientMessage& m : c.reader.messages()) CHECK((m.request == kNoIndex || m.request < c.requests().size()));
    }
  }
}
