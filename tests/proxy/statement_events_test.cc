// StatementEvents: each statement's start, outcome and exact response bytes, from the messages a pump forwards.
#include <doctest/doctest.h>

#include "statement_events_fixture.h"

using namespace pgrelay;
using namespace pgrelay::proxy;
using namespace pgrelay::proxy::test;

TEST_CASE("StatementEvents: a Query of three statements: three starts, three ends with tags and rows") {
  StatementEvents events;
  Recorder rec;
  events.add_observer(&rec);
  send_query(events, "select 1 union select 2; insert into t select generate_series(1, 5); show work_mem");
  CHECK(events.open_statements() == 3);
  Backend b;
  b.add(one_column(), 1).add(row("1"), 1).add(row("2"), 1).add(pr::CommandComplete{"SELECT 2"}, 1);
  b.add(pr::CommandComplete{"INSERT 0 5"}, 2);
  b.add(one_column(), 3).add(row("4MB"), 3).add(pr::CommandComplete{"SHOW"}, 3).add(pr::ReadyForQuery{'I'}, 0);
  Pump pump(events);
  pump.read(b.bytes(), kT0 + 5ms);
  REQUIRE(rec.starts.size() == 3);
  CHECK(rec.texts == std::vector<std::string>{"select 1 union select 2", "insert into t select generate_series(1, 5)",
                                              "show work_mem"});
  for (uint32_t i = 0; i < 3; ++i) CHECK(rec.starts[i].seq == i + 1);
  CHECK(rec.starts[2].index == 2);
  REQUIRE(rec.ends.size() == 3);
  CHECK(rec.ends[0].outcome == StatementOutcome::kCompleted);
  CHECK(rec.ends[0].tag == "SELECT 2");
  CHECK(rec.ends[0].rows == 2);
  CHECK(rec.ends[1].tag == "INSERT 0 5");
  CHECK(rec.ends[1].rows == 5);   // from the tag
  CHECK(rec.ends[2].tag == "SHOW");
  CHECK(rec.ends[2].rows == 1);   // counted DataRows: the tag has no count
  CHECK(rec.types[1] == "TDDC");
  CHECK(rec.bytes == b.by_owner());
  CHECK(events.open_statements() == 0);
  rec.check_order();
  CHECK(outcome_name(StatementOutcome::kCompleted) == "completed");
}

TEST_CASE("StatementEvents: an error in statement 2 of 3 fails it and skips the third") {
  StatementEvents events;
  Recorder rec;
  events.add_observer(&rec);
  send_query(events, "select 1; select * from missing; select 3");
  Backend b;
  b.add(one_column(), 1).add(row("1"), 1).add(pr::CommandComplete{"SELECT 1"}, 1);
  b.error("42P01", 2).add(pr::ReadyForQuery{'I'}, 0);
  Pump pump(events);
  pump.read(b.bytes(), kT0 + 1ms);
  REQUIRE(rec.ends.size() == 3);
  CHECK(rec.ends[0].outcome == StatementOutcome::kCompleted);
  CHECK(rec.ends[1].outcome == StatementOutcome::kFailed);
  CHECK(rec.ends[1].sqlstate == "42P01");
  CHECK(rec.ends[2].outcome == StatementOutcome::kSkipped);
  CHECK(rec.ends[2].sqlstate == "42P01");
  CHECK(rec.bytes == b.by_owner());
  CHECK(rec.bytes.count(3) == 0);
  rec.check_order();
}

TEST_CASE("StatementEvents: an Execute whose row limit is reached is suspended; the next one completes") {
  StatementEvents events;
  Recorder rec;
  events.add_observer(&rec);
  send_executes(events, 1);
  Backend b;
  b.add(pr::ParseComplete{}, 1).add(pr::BindComplete{}, 1).add(row("1"), 1).add(row("2"), 1);
  b.add(pr::PortalSuspended{}, 1).add(pr::ReadyForQuery{'T'}, 0);
  Pump pump(events);
  pump.read(b.bytes(), kT0 + 1ms);
  send_executes(events, 1, kT0 + 2ms);
  Backend more;
  more.add(row("3"), 2).add(pr::CommandComplete{"SELECT 1"}, 2).add(pr::ReadyForQuery{'T'}, 0);
  pump.read(more.bytes(), kT0 + 3ms);
  REQUIRE(rec.ends.size() == 2);
  CHECK(rec.starts[0].extended);
  CHECK(rec.ends[0].outcome == StatementOutcome::kSuspended);
  CHECK(rec.ends[0].rows == 2);
  CHECK(rec.ends[1].outcome == StatementOutcome::kCompleted);
  CHECK(rec.bytes[1] == b.by_owner()[1]);
  CHECK(rec.bytes[2] == more.by_owner()[2]);
  CHECK(outcome_name(StatementOutcome::kSuspended) == "suspended");
}

TEST_CASE("StatementEvents: two pipelined Syncs end their statements in order; an error stays in its request") {
  StatementEvents events;
  Recorder rec;
  events.add_observer(&rec);
  send_executes(events, 2);
  send_executes(events, 1);
  Backend b;
  b.add(pr::ParseComplete{}, 1).add(pr::BindComplete{}, 1).add(one_column(), 1).add(row("1"), 1);
  b.add(pr::CommandComplete{"SELECT 1"}, 1).add(pr::BindComplete{}, 2).error("22012", 2).add(pr::ReadyForQuery{'I'}, 0);
  b.add(pr::ParseComplete{}, 3).add(pr::BindComplete{}, 3).add(pr::CommandComplete{"UPDATE 3"}, 3);
  b.add(pr::ReadyForQuery{'I'}, 0);
  Pump pump(events);
  pump.read(b.bytes(), kT0 + 1ms);
  REQUIRE(rec.ends.size() == 3);
  CHECK(rec.ends[0].seq == 1);
  CHECK(rec.ends[1].outcome == StatementOutcome::kFailed);
  CHECK(rec.ends[2].seq == 3);
  CHECK(rec.ends[2].outcome == StatementOutcome::kCompleted);   // not skipped by the first request's error
  CHECK(rec.ends[2].rows == 3);
  CHECK(rec.bytes == b.by_owner());
  rec.check_order();
}

TEST_CASE("StatementEvents: an empty query, and a ReadyForQuery that leaves a statement unanswered") {
  StatementEvents events;
  Recorder rec;
  events.add_observer(&rec);
  send_executes(events, 1);
  send_query(events, "select 1; select 2");
  Backend b;
  b.add(pr::ParseComplete{}, 1).add(pr::BindComplete{}, 1).add(pr::EmptyQueryResponse{}, 1).add(pr::ReadyForQuery{'I'}, 0);
  b.add(pr::CommandComplete{"SELECT 0"}, 2).add(pr::ReadyForQuery{'I'}, 0);
  Pump pump(events);
  pump.read(b.bytes(), kT0);
  REQUIRE(rec.ends.size() == 3);
  CHECK(rec.ends[0].outcome == StatementOutcome::kEmpty);
  CHECK(rec.ends[1].outcome == StatementOutcome::kCompleted);
  CHECK(rec.ends[1].rows == 0);
  CHECK(rec.ends[2].outcome == StatementOutcome::kSkipped);
  CHECK(events.open_statements() == 0);
}

TEST_CASE("StatementEvents: abandon_all ends every open statement once") {
  StatementEvents events;
  Recorder rec;
  events.add_observer(&rec);
  send_query(events, "select pg_sleep(10); select 2");
  send_executes(events, 1);
  Backend b;
  b.add(one_column(), 1);
  Pump pump(events);
  pump.read(b.bytes(), kT0 + 1ms);
  CHECK(rec.ends.empty());
  events.abandon_all(kT0 + 2ms);
  REQUIRE(rec.ends.size() == 3);
  for (auto& e : rec.ends) CHECK(e.outcome == StatementOutcome::kAbandoned);
  CHECK(rec.ends[0].duration == 2ms);
  CHECK(events.open_statements() == 0);
  events.abandon_all(kT0 + 3ms);
  CHECK(rec.ends.size() == 3);
  rec.check_order();
}

TEST_CASE("StatementEvents: a statement's duration runs from when it could start") {
  StatementEvents events;
  Recorder rec;
  events.add_observer(&rec);
  send_query(events, "select 1; select 2", kT0);
  Pump pump(events);
  Backend first, second;
  first.add(pr::CommandComplete{"SELECT 1"}, 1);
  second.add(pr::CommandComplete{"SELECT 1"}, 2).add(pr::ReadyForQuery{'I'}, 0);
  pump.read(first.bytes(), kT0 + 10ms);
  pump.read(second.bytes(), kT0 + 15ms);
  // Sent after the last end: from its own send.
  send_query(events, "select 3", kT0 + 20ms);
  Backend third;
  third.add(pr::CommandComplete{"SELECT 1"}, 3).add(pr::ReadyForQuery{'I'}, 0);
  pump.read(third.bytes(), kT0 + 21ms);
  REQUIRE(rec.ends.size() == 3);
  CHECK(rec.ends[0].duration == 10ms);
  CHECK(rec.ends[1].duration == 5ms);
  CHECK(rec.ends[2].duration == 1ms);
}

TEST_CASE("StatementEvents: response bytes per statement are exactly its messages, at every split of the stream") {
  // A long DataRow (skipped, streaming), notices, a ParameterStatus and a pipelined request.
  Backend b;
  b.add(one_column(), 1).add(row(std::string(150, 'r')), 1).notice(1).add(row("x"), 1);
  b.add(pr::CommandComplete{"SELECT 2"}, 1);
  b.add(pr::ParameterStatus{"TimeZone", "UTC"}, 2).add(one_column(), 2).add(row(std::string(90, 'q')), 2);
  b.add(pr::CommandComplete{"SELECT 1"}, 2).add(pr::ReadyForQuery{'I'}, 0);
  b.add(pr::ParseComplete{}, 3).add(pr::BindComplete{}, 3).add(row(std::string(40, 'z')), 3);
  b.add(pr::CommandComplete{"SELECT 1"}, 3).add(pr::ReadyForQuery{'I'}, 0);
  const std::string in = b.bytes();
  // Every split in two reads, and random splits in many.
  std::vector<std::vector<size_t>> splits;
  for (size_t cut = 0; cut <= in.size(); ++cut) splits.push_back({cut});
  std::mt19937 rng(77);
  for (int i = 0; i < 300; ++i) {
    std::vector<size_t> cuts;
    for (size_t at = rng() % 20; at < in.size(); at += 1 + rng() % 60) cuts.push_back(at);
    splits.push_back(cuts);
  }
  auto hide_parse_complete = [](char t) { return t == '1'; };
  for (bool hiding : {false, true}) {
    const auto expected = b.by_owner(hiding ? std::function<bool(char)>(hide_parse_complete) : nullptr);
    for (auto cuts : splits) {
      CAPTURE(hiding);
      CAPTURE(cuts);
      StatementEvents events;
      Recorder rec;
      events.add_observer(&rec);
      send_query(events, "select * from a; select * from b");
      send_executes(events, 1);
      Pump pump(events, hiding ? std::function<bool(char)>(hide_parse_complete) : nullptr);
      cuts.push_back(in.size());
      size_t from = 0;
      for (size_t cut : cuts) {
        pump.read(in.substr(from, cut - from), kT0 + 1ms);
        from = cut;
        // Every end reported so far came after all of its bytes.
        for (auto& e : rec.ends) CHECK(rec.bytes[e.seq] == expected.at(e.seq));
      }
      CHECK(pump.out.size() == in.size() - (hiding ? 5 : 0));
      CHECK(rec.bytes == expected);
      REQUIRE(rec.ends.size() == 3);
      for (auto& e : rec.ends) CHECK(e.outcome == StatementOutcome::kCompleted);
      CHECK(rec.ends[0].rows == 2);
      rec.check_order();
    }
  }
}

TEST_CASE("StatementEvents: a DataRow over three reads goes to the statement it answers") {
  Backend b;
  b.add(pr::CommandComplete{"SELECT 0"}, 1).add(one_column(), 2).add(row(std::string(300, 'd')), 2);
  b.add(pr::CommandComplete{"SELECT 1"}, 2).add(pr::ReadyForQuery{'I'}, 0);
  const std::string in = b.bytes();
  const size_t row_at = b.messages[0].size() + b.messages[1].size();
  StatementEvents events;
  Recorder rec;
  events.add_observer(&rec);
  send_query(events, "select 0; select 1");
  Pump pump(events);
  pump.read(in.substr(0, row_at + 100), kT0);   // statement 1 ends; the row begins
  CHECK(rec.ends.size() == 1);
  CHECK(rec.bytes[2] == in.substr(b.messages[0].size(), row_at + 100 - b.messages[0].size()));
  pump.read(in.substr(row_at + 100, 100), kT0);   // the middle of the row only
  pump.read(in.substr(row_at + 200), kT0);
  CHECK(rec.bytes == b.by_owner());
  CHECK(rec.ends.size() == 2);
  rec.check_order();
}

TEST_CASE("StatementEvents: with no observer every call does nothing") {
  StatementEvents events;
  CHECK_FALSE(events.active());
  send_query(events, "select 1; select 2");
  send_executes(events, 2);
  CHECK(events.open_statements() == 0);
  Backend b;
  b.add(pr::CommandComplete{"SELECT 1"}, 1).add(pr::ReadyForQuery{'I'}, 0);
  Pump pump(events);
  pump.read(b.bytes(), kT0);
  events.abandon_all(kT0);
  CHECK(events.open_statements() == 0);
  CHECK(pump.out == b.bytes());
  // An observer added later sees only what follows.
  Recorder rec;
  events.add_observer(&rec);
  send_query(events, "select 3");
  REQUIRE(rec.starts.size() == 1);
  CHECK(rec.starts[0].seq == 1);
  CHECK(events.open_statements() == 1);
}
