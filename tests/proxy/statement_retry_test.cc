// Sending a request again when the server rejects a stale shared prepared statement.
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include "protocol/error_fields.h"
#include "protocol/framer.h"
#include "protocol/messages.h"
#include "proxy/request/statement_retry.h"
#include "test_util.h"

using namespace pgrelay;
using namespace pgrelay::proxy;
namespace pr = pgrelay::protocol;

namespace {

using Step = StatementRetry::Step;

template <class M>
pr::Buffer body_of(const M& m) {
  pr::Buffer b;
  pr::encode(m, b);
  return pr::Buffer(b.begin() + 5, b.end());
}

pr::Buffer error_body(const std::string& sqlstate, const std::string& severity = "ERROR") {
  pr::Buffer b;
  pr::encode_error_response(pr::ErrorSpec{severity, sqlstate, "cached plan must not change result type", {}, {}}, b);
  return pr::Buffer(b.begin() + 5, b.end());
}

// A statement shared under a server name, as RequestReader makes it in transaction pooling.
ClientStatementPtr shared_statement(const std::string& client_name, const std::string& server_name) {
  auto s = std::make_shared<ClientStatement>();
  s->name = client_name;
  s->key = 42;
  s->server_name = server_name;
  pr::encode(pr::Parse{server_name, "select * from t where a = $1", {}}, s->server_parse);
  return s;
}

using test::frames;

// Parse "s" (the server has it: a no-op Close answers), Bind "s", Execute, Sync, as sent.
struct SharedRequest {
  ClientStatementPtr s = shared_statement("s", "pgrelay_00000000000000aa");
  pr::Buffer parse = body_of(pr::Parse{"s", "select * from t where a = $1", {}});
  pr::Buffer bind = body_of(pr::Bind{"", "s", {}, {}, {}});
  pr::Buffer execute = body_of(pr::Execute{"", 0});
  void add_to(StatementRetry& retry) const {
    retry.begin();
    retry.add('P', parse, s);
    retry.add('B', bind, s);
    retry.add('E', execute, s);
    retry.add('S', {}, nullptr);
  }
};

}  // namespace

TEST_CASE("StatementRetry: a stale error after only ParseComplete is swallowed, then the request goes again from its Bind") {
  SharedRequest req;
  StatementRetry retry;
  req.add_to(retry);
  CHECK(retry.worth_keeping());
  ServerStatements server;
  server.insert(req.s->server_name);
  server.insert("pgrelay_00000000000000bb");
  ReplyQueue replies;
  const ExpectedReply as_parse{'C', ReplyAction::kAsParseComplete, {}};
  const ExpectedReply bind{'B', ReplyAction::kForward, {}};
  CHECK(retry.on_server_message('3', {}, &as_parse, 1) == Step::kPass);
  CHECK(retry.on_server_message('N', {}, &bind, 1) == Step::kPass);   // a notice is no reply
  CHECK(retry.on_server_message('E', error_body("0A000"), &bind, 1) == Step::kSwallow);
  CHECK_FALSE(retry.ready());
  CHECK(retry.on_server_message('Z', {}, nullptr, 1) == Step::kSwallow);
  REQUIRE(retry.ready());

  pr::Buffer out;
  retry.build(server, replies, out);
  CHECK_FALSE(retry.armed());
  auto sent = frames(out);
  REQUIRE(sent.size() == 6);
  // Every shared statement closed (replies dropped), then the Bind's statement prepared afresh.
  CHECK(sent[0].type == 'C');
  CHECK(sent[1].type == 'C');
  CHECK(sent[2].type == 'P');
  CHECK(sent[2].body.find(req.s->server_name) == 0);
  CHECK(sent[3].type == 'B');
  CHECK(sent[3].body.find(req.s->server_name) != std::string::npos);
  CHECK(sent[4].type == 'E');
  CHECK(sent[5].type == 'S');
  CHECK(server.contains(req.s->server_name));
  CHECK_FALSE(server.contains("pgrelay_00000000000000bb"));
  REQUIRE(replies.size() == 6);
  CHECK(replies.front()->action == ReplyAction::kDrop);
}

TEST_CASE("StatementRetry: once anything with content reached the client, the error is the client's") {
  SharedRequest req;
  StatementRetry retry;
  const ExpectedReply execute{'E', ReplyAction::kForward, {}};
  SUBCASE("a BindComplete came first (the error is from the Execute)") {
    req.add_to(retry);
    CHECK(retry.on_server_message('2', {}, nullptr, 1) == Step::kPass);
    CHECK_FALSE(retry.armed());
  }
  SUBCASE("another request is in flight behind it") {
    req.add_to(retry);
    CHECK(retry.on_server_message('E', error_body("0A000"), &execute, 2) == Step::kPass);
    CHECK_FALSE(retry.armed());
  }
  SUBCASE("an error that says nothing of stale statements") {
    req.add_to(retry);
    CHECK(retry.on_server_message('E', error_body("42P01"), &execute, 1) == Step::kPass);
    CHECK_FALSE(retry.armed());
  }
  SUBCASE("the request ended normally") {
    req.add_to(retry);
    CHECK(retry.on_server_message('Z', {}, nullptr, 1) == Step::kPass);
    CHECK_FALSE(retry.armed());
  }
  CHECK_FALSE(retry.ready());
}

TEST_CASE("StatementRetry: pgrelay's hidden ParseComplete does not count as answered") {
  SharedRequest req;
  StatementRetry retry;
  retry.begin();   // Bind, Execute, Sync only: the Bind got a hidden Parse in front
  retry.add('B', req.bind, req.s);
  retry.add('E', req.execute, req.s);
  retry.add('S', {}, nullptr);
  const ExpectedReply hidden{'P', ReplyAction::kDrop, req.s->server_name};
  const ExpectedReply bind{'B', ReplyAction::kForward, {}};
  CHECK(retry.on_server_message('1', {}, &hidden, 1) == Step::kPass);
  CHECK(retry.on_server_message('E', error_body("XX000"), &bind, 1) == Step::kSwallow);
  CHECK(retry.on_server_message('Z', {}, nullptr, 1) == Step::kSwallow);
  ServerStatements server;
  ReplyQueue replies;
  pr::Buffer out;
  retry.build(server, replies, out);
  auto sent = frames(out);
  REQUIRE(sent.size() == 4);   // Parse (hidden), Bind, Execute, Sync: the Bind was not skipped
  CHECK(sent[0].type == 'P');
  CHECK(sent[1].type == 'B');
}

TEST_CASE("StatementRetry: what is kept and what counts as stale") {
  StatementRetry retry;
  retry.begin();
  retry.add('P', body_of(pr::Parse{"", "select 1", {}}), nullptr);
  retry.add('S', {}, nullptr);
  CHECK_FALSE(retry.worth_keeping());   // no shared statement: nothing can go stale
  CHECK(StatementRetry::stale_statement_error(error_body("0A000")));
  CHECK(StatementRetry::stale_statement_error(error_body("XX000")));
  CHECK(StatementRetry::stale_statement_error(error_body("26000")));
  CHECK_FALSE(StatementRetry::stale_statement_error(error_body("23505")));
  CHECK_FALSE(StatementRetry::stale_statement_error(error_body("0A000", "FATAL")));
  const ExpectedReply bind{'B', ReplyAction::kForward, {}};
  const ExpectedReply execute{'E', ReplyAction::kForward, {}};
  CHECK(StatementRetry::marks_stale(error_body("0A000"), &bind));
  CHECK_FALSE(StatementRetry::marks_stale(error_body("0A000"), &execute));
  CHECK_FALSE(StatementRetry::marks_stale(error_body("0A000"), nullptr));
}
