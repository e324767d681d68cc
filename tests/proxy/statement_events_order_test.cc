// StatementEvents: what observers are told besides statements (ReadyForQuery, times), and the
// work skipped for observers that do not want messages or bytes.
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
