// StatementEvents: what observers are told besides statements (ReadyForQuery, times), the work
// skipped for observers that do not want messages or bytes, and requests the server skips.
#include <doctest/doctest.h>

#include "statement_events_fixture.h"

using namespace pgrelay;
using namespace pgrelay::proxy;
using namespace pgrelay::proxy::test;

TEST_CASE("StatementEvents: ReadyForQuery is told after the ends of its statements, with its status; times are the caller's") {
  StatementEvents events;
  Recorder rec;
  events.add_observer(&rec);
  send_query(events, "begin; select 1", kT0);
  Backend b;
  b.add(pr::CommandComplete{"BEGIN"}, 1).add(one_column(), 2).add(row("1"), 2).add(pr::CommandComplete{"SELECT 1"}, 2);
  b.add(pr::ReadyForQuery{'T'}, 0);
  Pump pump(events);
  pump.read(b.bytes(), kT0 + 3ms);
  REQUIRE(rec.log.size() >= 3);
  // The last three entries: end 1, end 2, then the ReadyForQuery's status.
  const auto n = rec.log.size();
  CHECK(rec.log[n - 3] == std::pair<char, uint64_t>{'e', 1});
  CHECK(rec.log[n - 2] == std::pair<char, uint64_t>{'e', 2});
  CHECK(rec.log[n - 1] == std::pair<char, uint64_t>{'r', uint64_t('T')});
  REQUIRE(rec.end_times.size() == 2);
  CHECK(rec.end_times[1] == kT0 + 3ms);
}

TEST_CASE("StatementEvents: an observer that wants neither messages nor bytes still gets every start, end and ReadyForQuery") {
  struct Lean : Recorder {
    bool wants_messages() const override { return false; }
    bool wants_response_bytes() const override { return false; }
  };
  StatementEvents events;
  Lean lean;
  events.add_observer(&lean);
  send_query(events, "select 1; select 2");
  Backend b;
  b.add(one_column(), 1).add(row("1"), 1).add(pr::CommandComplete{"SELECT 1"}, 1);
  b.add(one_column(), 2).add(row("2"), 2).add(pr::CommandComplete{"SELECT 1"}, 2).add(pr::ReadyForQuery{'I'}, 0);
  Pump pump(events);
  pump.read(b.bytes(), kT0 + 1ms);
  CHECK(lean.starts.size() == 2);
  REQUIRE(lean.ends.size() == 2);
  CHECK(lean.ends[1].rows == 1);
  CHECK(lean.types.empty());   // no on_message
  CHECK(lean.bytes.empty());   // no on_response_bytes
  CHECK(lean.log.back() == std::pair<char, uint64_t>{'r', uint64_t('I')});
  // With a second observer that wants bytes, both are served by what each asked for.
  StatementEvents both;
  Lean lean2;
  Recorder full;
  both.add_observer(&lean2);
  both.add_observer(&full);
  send_query(both, "select 1");
  Backend c;
  c.add(one_column(), 1).add(row("1"), 1).add(pr::CommandComplete{"SELECT 1"}, 1).add(pr::ReadyForQuery{'I'}, 0);
  Pump pump2(both);
  pump2.read(c.bytes(), kT0 + 1ms);
  CHECK(full.bytes == c.by_owner());
  CHECK(lean2.ends.size() == 1);
}

namespace {

// One backend message's body, as the pump hands it to StatementEvents.
pr::Buffer body_of(const pr::Buffer& message) { return pr::Buffer(message.begin() + 5, message.end()); }

pr::Buffer error_body(const char* sqlstate) {
  pr::Buffer b;
  pr::encode_error_response({"ERROR", sqlstate, "failed", "", ""}, b);
  return body_of(b);
}

void tell(StatementEvents& events, char type, const pr::Buffer& body, uint32_t skipped = 0) {
  events.message(type, pr::Bytes(body), kT0 + 1ms, skipped);
}

// The server's answer to "select N": one row, CommandComplete, ReadyForQuery 'I'.
void answer_select(StatementEvents& events) {
  pr::Buffer b;
  pr::encode(one_column(), b);
  tell(events, 'T', body_of(b));
  b.clear();
  pr::encode(row("3"), b);
  tell(events, 'D', body_of(b));
  b.clear();
  pr::encode(pr::CommandComplete{"SELECT 1"}, b);
  tell(events, 'C', body_of(b));
  tell(events, 'Z', pr::Buffer{std::byte{'I'}});
  events.end_chunk({});
}

}  // namespace

TEST_CASE("StatementEvents: a Query the server skips after an extended-protocol error is skipped; the next one lines up") {
  for (const bool with_execute : {true, false}) {
    CAPTURE(with_execute);
    StatementEvents events;
    Recorder rec;
    events.add_observer(&rec);
    // Parse (fails), Bind, [Execute,] Query "select 2", Sync: no ReadyForQuery for the Query.
    if (with_execute) {
      StatementStart e;
      e.extended = true;
      events.statement_sent(e, kT0);
    }
    send_query(events, "select 2");
    events.request_end_sent();   // the Sync
    tell(events, 'E', error_body("42601"), 1);
    tell(events, 'Z', pr::Buffer{std::byte{'I'}});
    events.end_chunk({});
    REQUIRE(rec.ends.size() == (with_execute ? 2 : 1));
    if (with_execute) CHECK(rec.ends[0].outcome == StatementOutcome::kFailed);
    CHECK(rec.ends.back().outcome == StatementOutcome::kSkipped);   // the Query never ran
    CHECK(rec.ends.back().sqlstate == "42601");
    CHECK(events.open_statements() == 0);
    // The next request's answer is its own.
    send_query(events, "select 3");
    answer_select(events);
    REQUIRE(rec.ends.size() == (with_execute ? 3 : 2));
    CHECK(rec.ends.back().outcome == StatementOutcome::kCompleted);
    CHECK(rec.ends.back().tag == "SELECT 1");
    CHECK(rec.ends.back().rows == 1);
    CHECK(events.open_statements() == 0);
    rec.check_order();
  }
}
