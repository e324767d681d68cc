// Prepared statements under transaction pooling: the server LRU, the reply queue, and the routing of client messages.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "protocol/framer.h"
#include "protocol/messages.h"
#include "proxy/request/prepared_statements.h"
#include "proxy/request/request_reader.h"
#include "test_util.h"

using namespace pgrelay;
using namespace pgrelay::proxy;
namespace pr = pgrelay::protocol;

namespace {

using test::Message;
using test::frames;
using test::str;

template <class M>
pr::Buffer encoded(const M& m) {
  pr::Buffer b;
  pr::encode(m, b);
  return b;
}

// A client as a session has it: RequestReader knows its names, StatementRouter rewrites.
struct Client {
  AnalysisCache analyses;
  RequestReader reader{analyses, server_names()};
  static RequestReader::Options server_names() {
    RequestReader::Options o;
    o.server_names = true;
    return o;
  }
  std::vector<std::byte> buf;

  bool route(char type, pr::Bytes body, ServerStatements& server, ReplyQueue& replies, pr::Buffer& out) {
    buf.clear();
    pr::Writer w(buf);
    const size_t mark = w.begin(type);
    w.bytes(body);
    w.end(mark);
    REQUIRE(reader.scan(std::span(buf), buf.size()).ok());
    REQUIRE(reader.messages().size() == 1);
    return StatementRouter::route(type, body, reader.messages()[0].statement, server, replies, out);
  }
  size_t size() const { return reader.named_statements(); }
};

// Routes one encoded client message; `out` is cleared first.
bool route(Client& router, const pr::Buffer& message, ServerStatements& server, ReplyQueue& replies,
           pr::Buffer& out) {
  out.clear();
  return router.route(char(message[0]), pr::Bytes(message).subspan(5), server, replies, out);
}

// A route() that passes the message through: false, nothing written.
void route_through(Client& router, const pr::Buffer& message, ServerStatements& server, ReplyQueue& replies) {
  pr::Buffer out;
  CHECK_FALSE(route(router, message, server, replies, out));
  CHECK(out.empty());
}

pr::Parse parse_of(const Message& m) {
  REQUIRE(m.type == 'P');
  auto p = pr::decode_parse(pr::as_bytes(m.body));
  REQUIRE(p.ok());
  return *p;
}

pr::Close close_of(const Message& m) {
  REQUIRE(m.type == 'C');
  auto c = pr::decode_close(pr::as_bytes(m.body));
  REQUIRE(c.ok());
  return *c;
}

ExpectedReply expect(char request, ReplyAction action = ReplyAction::kForward, std::string prepares = {}) {
  return {request, action, std::move(prepares)};
}

bool is_server_name(std::string_view name) {
  if (name.size() != 24 || name.substr(0, 8) != "pgrelay_") return false;
  return name.substr(8).find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

}  // namespace

// ---- ServerStatements ----

TEST_CASE("ServerStatements: evicts the least recently used; touch and re-insert count as use") {
  ServerStatements s(3);
  CHECK_FALSE(s.insert("a"));
  CHECK_FALSE(s.insert("b"));
  CHECK_FALSE(s.insert("c"));
  CHECK(s.size() == 3);
  CHECK(s.insert("d") == std::optional<std::string>("a"));   // order now d c b
  CHECK_FALSE(s.contains("a"));
  s.touch("b");                                               // b d c
  CHECK(s.insert("e") == std::optional<std::string>("c"));   // e b d
  CHECK_FALSE(s.insert("d"));                                 // already there: d e b, nothing evicted
  CHECK(s.size() == 3);
  CHECK(s.insert("f") == std::optional<std::string>("b"));   // f d e
  CHECK(s.insert("g") == std::optional<std::string>("e"));
  CHECK(s.contains("d"));
  CHECK(s.contains("f"));
  CHECK(s.contains("g"));
  s.touch("nope");   // unknown: no effect
  CHECK(s.size() == 3);
}

TEST_CASE("ServerStatements: erase, clear and capacity") {
  ServerStatements s(2);
  CHECK_FALSE(s.insert("a"));
  CHECK_FALSE(s.insert("b"));
  s.erase("a");
  s.erase("never");
  CHECK(s.size() == 1);
  CHECK_FALSE(s.contains("a"));
  CHECK_FALSE(s.insert("c"));   // room again after the erase
  CHECK(s.insert("d") == std::optional<std::string>("b"));
  s.clear();
  CHECK(s.size() == 0);
  CHECK_FALSE(s.contains("c"));
  CHECK_FALSE(s.contains("d"));
  CHECK_FALSE(s.insert("a"));
  CHECK_FALSE(s.insert("b"));
  s.set_capacity(3);
  CHECK_FALSE(s.insert("c"));
  CHECK(s.insert("d") == std::optional<std::string>("a"));
  ServerStatements one(1);
  CHECK_FALSE(one.insert("x"));
  CHECK(one.insert("y") == std::optional<std::string>("x"));
  CHECK(one.size() == 1);
}

// ---- ReplyQueue ----

TEST_CASE("ReplyQueue: a simple query pops at ReadyForQuery only") {
  ServerStatements server;
  ReplyQueue q;
  q.push(expect('Q'));
  q.push(expect('Q'));
  for (char t : {'T', 'D', 'D', 'C', 'N', 'A', 'S', 'E', 'I'}) {
    CAPTURE(t);
    CHECK(q.on_reply(t, server) == ReplyAction::kForward);
    CHECK(q.size() == 2);
  }
  CHECK(q.on_reply('Z', server) == ReplyAction::kForward);
  CHECK(q.size() == 1);
  CHECK(q.on_reply('Z', server) == ReplyAction::kForward);
  CHECK(q.empty());
  CHECK(q.on_reply('Z', server) == ReplyAction::kForward);   // unexpected: forwarded
  CHECK(q.on_reply('1', server) == ReplyAction::kForward);
}

TEST_CASE("ReplyQueue: extended-protocol replies pop in order; notices, notifications, ParameterStatus never pop") {
  ServerStatements server;
  ReplyQueue q;
  q.push(expect('P', ReplyAction::kForward, "pgrelay_x"));
  q.push(expect('B'));
  q.push(expect('D'));
  q.push(expect('E'));
  q.push(expect('D'));
  q.push(expect('E'));
  q.push(expect('C'));
  q.push(expect('S'));
  struct Step {
    char reply;
    size_t left;
  };
  for (Step st : std::vector<Step>{{'N', 8}, {'1', 7}, {'A', 7}, {'2', 6}, {'t', 6}, {'T', 5}, {'D', 5},
                                   {'S', 5}, {'D', 5}, {'C', 4}, {'n', 3}, {'s', 2}, {'3', 1}, {'N', 1}, {'Z', 0}}) {
    CAPTURE(st.reply);
    CHECK(q.on_reply(st.reply, server) == ReplyAction::kForward);
    CHECK(q.size() == st.left);
  }
}

TEST_CASE("ReplyQueue: an error skips to the Sync and forgets the statements skipped Parses were to create") {
  ServerStatements server;
  server.insert("pgrelay_kept");
  server.insert("pgrelay_bound");
  server.insert("pgrelay_later");
  ReplyQueue q;
  q.push(expect('P', ReplyAction::kDrop, "pgrelay_bound"));   // hidden Parse in front of the Bind
  q.push(expect('B'));
  q.push(expect('P', ReplyAction::kForward, "pgrelay_later"));
  q.push(expect('E'));
  q.push(expect('S'));
  q.push(expect('Q'));
  CHECK(q.on_reply('1', server) == ReplyAction::kDrop);
  CHECK(q.on_reply('N', server) == ReplyAction::kForward);
  CHECK(q.size() == 5);
  CHECK(q.on_reply('E', server) == ReplyAction::kForward);   // the Bind failed
  CHECK(q.size() == 2);                                       // Sync and Query left
  CHECK(server.contains("pgrelay_bound"));                    // it did get prepared
  CHECK_FALSE(server.contains("pgrelay_later"));              // skipped: never prepared
  CHECK(server.contains("pgrelay_kept"));
  CHECK(q.on_reply('Z', server) == ReplyAction::kForward);
  CHECK(q.size() == 1);
  CHECK(q.on_reply('E', server) == ReplyAction::kForward);   // an error in a simple query ends at Z
  CHECK(q.size() == 1);
  CHECK(q.on_reply('Z', server) == ReplyAction::kForward);
  CHECK(q.empty());
}

TEST_CASE("ReplyQueue: a failed Parse forgets its own statement; a hidden Parse's error reaches the client") {
  ServerStatements server;
  server.insert("pgrelay_bad");
  ReplyQueue q;
  q.push(expect('P', ReplyAction::kDrop, "pgrelay_bad"));
  q.push(expect('B'));
  q.push(expect('E'));
  q.push(expect('S'));
  CHECK(q.on_reply('E', server) == ReplyAction::kForward);
  CHECK_FALSE(server.contains("pgrelay_bad"));
  CHECK(q.size() == 1);
  CHECK(q.on_reply('Z', server) == ReplyAction::kForward);
  CHECK(q.empty());
}

TEST_CASE("ReplyQueue: after an extended-protocol error the server skips a Query too, up to the Sync") {
  // PostgreSQL's ignore_till_sync is cleared by Sync only (postgres.c, SocketBackend): a
  // Query sent before the Sync gets no reply at all.
  ServerStatements server;
  server.insert("pgrelay_x");
  ReplyQueue q;
  q.push(expect('P', ReplyAction::kForward, "pgrelay_x"));
  q.push(expect('B'));
  q.push(expect('E'));
  q.push(expect('Q'));
  q.push(expect('S'));
  q.push(expect('P', ReplyAction::kDrop, "pgrelay_y"));
  CHECK(q.on_reply('E', server) == ReplyAction::kForward);
  CHECK(q.size() == 2);   // the Sync and what came after it
  CHECK(q.on_reply('Z', server) == ReplyAction::kForward);
  CHECK(q.size() == 1);
  CHECK(q.on_reply('1', server) == ReplyAction::kDrop);   // still in step
}

TEST_CASE("ReplyQueue: kDrop and kAsParseComplete come back for the replies they were pushed for") {
  ServerStatements server;
  ReplyQueue q;
  q.push(expect('C', ReplyAction::kDrop));              // an eviction Close
  q.push(expect('P', ReplyAction::kDrop, "pgrelay_a"));  // a hidden Parse
  q.push(expect('B'));
  q.push(expect('C', ReplyAction::kAsParseComplete));   // a no-op Close standing for a Parse
  q.push(expect('F'));
  CHECK(q.on_reply('3', server) == ReplyAction::kDrop);
  CHECK(q.on_reply('1', server) == ReplyAction::kDrop);
  CHECK(q.on_reply('2', server) == ReplyAction::kForward);
  CHECK(q.on_reply('S', server) == ReplyAction::kForward);
  CHECK(q.on_reply('3', server) == ReplyAction::kAsParseComplete);
  CHECK(q.on_reply('V', server) == ReplyAction::kForward);
  CHECK(q.size() == 1);
  CHECK(q.on_reply('Z', server) == ReplyAction::kForward);
  CHECK(q.empty());
}

// ---- StatementRouter ----

TEST_CASE("StatementRouter: server names are pgrelay_<16 hex> per (query text, parameter types)") {
  Client a, b;
  ServerStatements server;
  ReplyQueue q;
  pr::Buffer out;
  auto name_of = [&](Client& r, const pr::Parse& p) {
    REQUIRE(route(r, encoded(p), server, q, out));
    auto f = frames(out);
    REQUIRE(!f.empty());
    if (f.back().type == 'P') return std::string(parse_of(f.back()).name);
    return std::string();
  };
  std::string int_name = name_of(a, {"s1", "select $1", {23}});
  CHECK(is_server_name(int_name));
  std::string text_name = name_of(a, {"s2", "select $1", {25}});
  CHECK(is_server_name(text_name));
  CHECK(text_name != int_name);
  std::string untyped = name_of(a, {"s3", "select $1", {}});
  CHECK(untyped != int_name);
  CHECK(untyped != text_name);
  std::string other_text = name_of(a, {"s4", "select $1 ", {23}});
  CHECK(other_text != int_name);
  CHECK(is_server_name(other_text));

  std::string types_raw("\0\1\0\0\0\x17", 6);
  CHECK(StatementRouter::server_name_for("select $1", pr::as_bytes(types_raw)) == int_name);
  CHECK(StatementRouter::server_name_for("select $1", pr::as_bytes(types_raw)) ==
        StatementRouter::server_name_for("select $1", pr::as_bytes(types_raw)));
  // Another client, same text and types, on a server without it: the same name.
  ServerStatements other;
  out.clear();
  REQUIRE(b.route('P', pr::Bytes(encoded(pr::Parse{"mine", "select $1", {23}})).subspan(5), other, q, out));
  auto f = frames(out);
  REQUIRE(f.size() == 1);
  CHECK(parse_of(f[0]).name == int_name);
}

TEST_CASE("StatementRouter: Parse and Sync on an empty server, then Bind on another, then Parse where it exists") {
  const pr::Parse client_parse{"s1", "select $1::int + $2", {23, 0}};
  Client a;
  ServerStatements server1;
  ReplyQueue q1;
  pr::Buffer out;

  // Client A prepares s1 on server 1: a Parse under the server name, whose reply the client sees.
  REQUIRE(route(a, encoded(client_parse), server1, q1, out));
  auto f = frames(out);
  REQUIRE(f.size() == 1);
  pr::Parse sent = parse_of(f[0]);
  const std::string name(sent.name);
  CHECK(is_server_name(name));
  CHECK(sent.query == client_parse.query);
  CHECK(sent.param_types == client_parse.param_types);
  CHECK(server1.contains(name));
  CHECK(a.size() == 1);
  route_through(a, encoded(pr::Sync{}), server1, q1);
  CHECK(q1.size() == 2);
  CHECK(q1.on_reply('1', server1) == ReplyAction::kForward);
  CHECK(q1.on_reply('Z', server1) == ReplyAction::kForward);
  CHECK(q1.empty());
  CHECK(server1.contains(name));

  // Next transaction on server 2, which lacks it: a hidden Parse, then the Bind renamed.
  ServerStatements server2;
  ReplyQueue q2;
  const pr::Bind client_bind{"portal", "s1", {0, 1}, {pr::Value(pr::as_bytes("7")), std::nullopt}, {1}};
  REQUIRE(route(a, encoded(client_bind), server2, q2, out));
  f = frames(out);
  REQUIRE(f.size() == 2);
  pr::Parse hidden = parse_of(f[0]);
  CHECK(hidden.name == name);
  CHECK(hidden.query == client_parse.query);
  CHECK(hidden.param_types == client_parse.param_types);
  REQUIRE(f[1].type == 'B');
  auto bind = pr::decode_bind(pr::as_bytes(f[1].body));
  REQUIRE(bind.ok());
  CHECK(bind->portal == "portal");
  CHECK(bind->statement == name);
  CHECK(bind->param_formats == client_bind.param_formats);
  REQUIRE(bind->params.size() == 2);
  REQUIRE(bind->params[0]);
  CHECK(str(*bind->params[0]) == "7");
  CHECK_FALSE(bind->params[1]);
  CHECK(bind->result_formats == client_bind.result_formats);
  CHECK(server2.contains(name));
  route_through(a, encoded(pr::Execute{"portal", 0}), server2, q2);
  route_through(a, encoded(pr::Sync{}), server2, q2);
  CHECK(q2.on_reply('1', server2) == ReplyAction::kDrop);
  CHECK(q2.on_reply('2', server2) == ReplyAction::kForward);
  CHECK(q2.on_reply('D', server2) == ReplyAction::kForward);
  CHECK(q2.on_reply('C', server2) == ReplyAction::kForward);
  CHECK(q2.on_reply('Z', server2) == ReplyAction::kForward);
  CHECK(q2.empty());

  // A Bind on a server that has it: no Parse in front.
  REQUIRE(route(a, encoded(client_bind), server2, q2, out));
  f = frames(out);
  REQUIRE(f.size() == 1);
  CHECK(f[0].type == 'B');
  CHECK(q2.on_reply('2', server2) == ReplyAction::kForward);
  CHECK(q2.empty());

  // Client B parses the same text and types on server 1, which has it: a no-op Close, shown as ParseComplete.
  Client b;
  REQUIRE(route(b, encoded(pr::Parse{"b_stmt", client_parse.query, client_parse.param_types}), server1, q1, out));
  CHECK(out == encoded(pr::Close{'S', kNoopStatement}));
  CHECK(q1.on_reply('3', server1) == ReplyAction::kAsParseComplete);
  CHECK(q1.empty());
  // And B's Bind of its own name uses the shared statement.
  REQUIRE(route(b, encoded(pr::Bind{"", "b_stmt", {}, {}, {}}), server1, q1, out));
  f = frames(out);
  REQUIRE(f.size() == 1);
  auto b_bind = pr::decode_bind(pr::as_bytes(f[0].body));
  REQUIRE(b_bind.ok());
  CHECK(b_bind->statement == name);
}

TEST_CASE("StatementRouter: Describe of a statement the server lacks gets the hidden Parse too") {
  Client a;
  ServerStatements server1, server2;
  ReplyQueue q1, q2;
  pr::Buffer out;
  REQUIRE(route(a, encoded(pr::Parse{"s1", "select 1", {}}), server1, q1, out));
  const std::string name(parse_of(frames(out)[0]).name);
  REQUIRE(route(a, encoded(pr::Describe{'S', "s1"}), server2, q2, out));
  auto f = frames(out);
  REQUIRE(f.size() == 2);
  CHECK(parse_of(f[0]).name == name);
  REQUIRE(f[1].type == 'D');
  auto d = pr::decode_describe(pr::as_bytes(f[1].body));
  REQUIRE(d.ok());
  CHECK(d->kind == 'S');
  CHECK(d->name == name);
  CHECK(q2.on_reply('1', server2) == ReplyAction::kDrop);
  CHECK(q2.on_reply('t', server2) == ReplyAction::kForward);
  CHECK(q2.size() == 1);
  CHECK(q2.on_reply('T', server2) == ReplyAction::kForward);
  CHECK(q2.empty());
  // Describe of a portal, or of an unknown statement, passes through.
  route_through(a, encoded(pr::Describe{'P', "s1"}), server2, q2);
  route_through(a, encoded(pr::Describe{'S', "unknown"}), server2, q2);
  CHECK(q2.size() == 2);
  // The client has no unnamed statement: the connection's (another client's) is closed first,
  // so the server answers 26000 as PostgreSQL would.
  REQUIRE(route(a, encoded(pr::Describe{'S', ""}), server2, q2, out));
  f = frames(out);
  REQUIRE(f.size() == 2);
  CHECK(f[0].type == 'C');
  CHECK(f[1].type == 'D');
  CHECK(q2.size() == 4);
}

TEST_CASE("StatementRouter: Bind of the unnamed statement by a client without one closes the connection's first") {
  Client a, b;
  ServerStatements server;
  ReplyQueue q;
  route_through(b, encoded(pr::Parse{"", "select 'b'", {}}), server, q);   // another client's
  CHECK(server.unnamed != 0);
  pr::Buffer out;
  REQUIRE(route(a, encoded(pr::Bind{"", "", {}, {}, {}}), server, q, out));
  auto f = frames(out);
  REQUIRE(f.size() == 2);
  const pr::Close c = close_of(f[0]);
  CHECK(c.kind == 'S');
  CHECK(c.name == "");
  CHECK(f[1].type == 'B');
  CHECK(server.unnamed == 0);
  CHECK(q.on_reply('1', server) == ReplyAction::kForward);   // b's ParseComplete
  CHECK(q.on_reply('3', server) == ReplyAction::kDrop);      // the Close: the client never asked
  ReplyFailures failures;
  CHECK(q.on_reply('E', server, &failures) == ReplyAction::kForward);   // 26000 from the server
  CHECK(q.empty());
  CHECK(failures.skipped_requests == 0);
  CHECK(failures.parses.empty());
}

TEST_CASE("ReplyQueue: an extended-protocol error reports the Queries it skips and the client Parses it cost") {
  Client a;
  ServerStatements server;
  ReplyQueue q;
  pr::Buffer out;
  REQUIRE(route(a, encoded(pr::Parse{"s1", "select 1", {}}), server, q, out));
  const ClientStatementPtr s1 = a.reader.statement("s1");
  REQUIRE(s1);
  q.clear();
  // As the session pushes them: Parse s1 (the client's), Query, Parse "" (the client's), Query, Sync, Query.
  q.push({'P', ReplyAction::kForward, "pgrelay_s1", false, s1});
  q.expect('Q');
  q.expect('P', a.reader.statement("s1"));
  q.expect('F');
  q.expect('S');
  q.expect('Q');
  q.expect('H');   // Flush: nothing expected
  CHECK(q.size() == 6);
  ReplyFailures failures;
  CHECK(q.on_reply('E', server, &failures) == ReplyAction::kForward);
  CHECK(failures.skipped_requests == 2);   // the Query and the FunctionCall before the Sync
  REQUIRE(failures.parses.size() == 2);
  CHECK(failures.parses[0] == s1);
  CHECK(q.size() == 2);
  // An error in a simple Query costs nothing else.
  CHECK(q.on_reply('Z', server) == ReplyAction::kForward);
  ReplyFailures none;
  CHECK(q.on_reply('E', server, &none) == ReplyAction::kForward);
  CHECK(none.skipped_requests == 0);
  CHECK(none.parses.empty());
  CHECK(q.size() == 1);
}

TEST_CASE("StatementRouter: unnamed statements and unknown names pass through, their replies forwarded") {
  Client a;
  ServerStatements server;
  ReplyQueue q;
  route_through(a, encoded(pr::Parse{"", "select 1", {}}), server, q);
  route_through(a, encoded(pr::Bind{"", "", {}, {}, {}}), server, q);
  route_through(a, encoded(pr::Bind{"", "unknown", {}, {}, {}}), server, q);
  route_through(a, encoded(pr::Execute{"", 0}), server, q);
  route_through(a, encoded(pr::Sync{}), server, q);
  route_through(a, encoded(pr::Flush{}), server, q);   // no reply of its own
  route_through(a, encoded(pr::Query{"select 1"}), server, q);
  CHECK(a.size() == 0);
  CHECK(server.size() == 0);
  CHECK(q.size() == 6);
  for (char t : {'1', '2', '2', 'C', 'Z', 'T', 'D', 'C', 'Z'}) CHECK(q.on_reply(t, server) == ReplyAction::kForward);
  CHECK(q.empty());
}

TEST_CASE("StatementRouter: Close forgets the client's name and goes through; forget_all forgets every name") {
  Client a;
  ServerStatements server;
  ReplyQueue q;
  pr::Buffer out;
  REQUIRE(route(a, encoded(pr::Parse{"s1", "select 1", {}}), server, q, out));
  REQUIRE(route(a, encoded(pr::Parse{"s2", "select 2", {}}), server, q, out));
  CHECK(a.size() == 2);
  route_through(a, encoded(pr::Close{'S', "s1"}), server, q);
  CHECK(a.size() == 1);
  CHECK(server.size() == 2);   // shared on the server: still there
  route_through(a, encoded(pr::Bind{"", "s1", {}, {}, {}}), server, q);
  route_through(a, encoded(pr::Close{'P', "s2"}), server, q);   // a portal: the statement stays
  CHECK(route(a, encoded(pr::Bind{"", "s2", {}, {}, {}}), server, q, out));
  CHECK(q.on_reply('1', server) == ReplyAction::kForward);
  CHECK(q.on_reply('1', server) == ReplyAction::kForward);
  CHECK(q.on_reply('3', server) == ReplyAction::kForward);   // the client's own Close
  a.reader.forget_statements();
  CHECK(a.size() == 0);
  route_through(a, encoded(pr::Bind{"", "s2", {}, {}, {}}), server, q);
}

TEST_CASE("StatementRouter: capacity 1: a second statement evicts the first with a Close the client never sees") {
  Client a;
  ServerStatements server(1);
  ReplyQueue q;
  pr::Buffer out;
  REQUIRE(route(a, encoded(pr::Parse{"s1", "select 1", {}}), server, q, out));
  const std::string first(parse_of(frames(out)[0]).name);
  CHECK(q.on_reply('1', server) == ReplyAction::kForward);

  REQUIRE(route(a, encoded(pr::Parse{"s2", "select 2", {}}), server, q, out));
  auto f = frames(out);
  REQUIRE(f.size() == 2);
  const pr::Close close = close_of(f[0]);
  CHECK(close.kind == 'S');
  CHECK(close.name == first);
  const std::string second(parse_of(f[1]).name);
  CHECK(second != first);
  CHECK(server.contains(second));
  CHECK_FALSE(server.contains(first));
  CHECK(server.size() == 1);
  CHECK(q.on_reply('3', server) == ReplyAction::kDrop);
  CHECK(q.on_reply('1', server) == ReplyAction::kForward);
  CHECK(q.empty());

  // Binding the first again: close the second, prepare the first hidden, then the Bind.
  REQUIRE(route(a, encoded(pr::Bind{"", "s1", {}, {}, {}}), server, q, out));
  f = frames(out);
  REQUIRE(f.size() == 3);
  CHECK(f[0].type == 'C');
  CHECK(pr::decode_close(pr::as_bytes(f[0].body))->name == second);
  CHECK(parse_of(f[1]).name == first);
  CHECK(f[2].type == 'B');
  CHECK(q.on_reply('3', server) == ReplyAction::kDrop);
  CHECK(q.on_reply('1', server) == ReplyAction::kDrop);
  CHECK(q.on_reply('2', server) == ReplyAction::kForward);
  CHECK(q.empty());
}

TEST_CASE("StatementRouter: the unnamed statement moves to a connection that has another one") {
  Client a, b;
  ServerStatements server;
  ReplyQueue q;
  pr::Buffer out;
  // a's unnamed Parse goes as it is; the connection now has a's.
  CHECK_FALSE(route(a, encoded(pr::Parse{"", "select $1::int", {23}}), server, q, out));
  CHECK(server.unnamed != 0);
  CHECK(q.on_reply('1', server) == ReplyAction::kForward);
  route_through(a, encoded(pr::Bind{"", "", {}, {}, {}}), server, q);   // still a's: nothing to add
  CHECK(q.on_reply('2', server) == ReplyAction::kForward);
  // b replaces it; a's next Bind gets a's Parse first, its ParseComplete hidden.
  CHECK_FALSE(route(b, encoded(pr::Parse{"", "select 'b'", {}}), server, q, out));
  CHECK(q.on_reply('1', server) == ReplyAction::kForward);
  REQUIRE(route(a, encoded(pr::Bind{"p", "", {}, {}, {}}), server, q, out));
  auto f = frames(out);
  REQUIRE(f.size() == 2);
  CHECK(parse_of(f[0]).name == "");
  CHECK(parse_of(f[0]).query == "select $1::int");
  CHECK(parse_of(f[0]).param_types == std::vector<int32_t>{23});
  CHECK(f[1].type == 'B');
  CHECK(q.on_reply('1', server) == ReplyAction::kDrop);
  CHECK(q.on_reply('2', server) == ReplyAction::kForward);
  // Describe of it, where it is now: as it came.
  route_through(a, encoded(pr::Describe{'S', ""}), server, q);
  // A simple Query destroys the unnamed statement: the next Describe brings it back.
  route_through(b, encoded(pr::Query{"select 1"}), server, q);
  CHECK(server.unnamed == 0);
  REQUIRE(route(a, encoded(pr::Describe{'S', ""}), server, q, out));
  f = frames(out);
  REQUIRE(f.size() == 2);
  CHECK(parse_of(f[0]).query == "select $1::int");
  CHECK(f[1].type == 'D');
  // A failed injected Parse leaves the connection with no known unnamed statement.
  ReplyQueue q2;
  ServerStatements other;
  REQUIRE(route(a, encoded(pr::Bind{"", "", {}, {}, {}}), other, q2, out));
  CHECK(other.unnamed != 0);
  CHECK(q2.on_reply('E', other) == ReplyAction::kForward);
  CHECK(other.unnamed == 0);
}
