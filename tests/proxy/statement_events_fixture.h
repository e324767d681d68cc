// Test fixture for StatementEvents: a recording observer, a scripted server, and a pump that
// drives the server direction as a session's does. Shared by the statement_events tests.
#pragma once

#include <doctest/doctest.h>

#include <cstring>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "protocol/error_fields.h"
#include "protocol/messages.h"
#include "proxy/request/message_forwarder.h"
#include "proxy/request/statement_events.h"

namespace pgrelay::proxy::test {

using namespace std::chrono_literals;
namespace pr = pgrelay::protocol;

inline std::string str(pr::Bytes b) { return std::string(pr::as_string_view(b)); }

inline const EventClock::time_point kT0 = EventClock::time_point(1h);

struct Recorder : StatementObserver {
  struct End {
    uint64_t seq;
    StatementOutcome outcome;
    std::string tag, sqlstate;
    uint64_t rows;
    EventClock::duration duration;
  };
  std::vector<StatementStart> starts;   // views cleared: only seq, index, extended kept
  std::vector<std::string> texts;
  std::vector<End> ends;
  std::map<uint64_t, std::string> bytes, types;
  std::vector<std::pair<char, uint64_t>> log;   // 's'tart, 'f'irst response, 'b'ytes, 'e'nd

  void on_start(const StatementStart& s) override {
    StatementStart kept;
    kept.seq = s.seq;
    kept.index = s.index;
    kept.extended = s.extended;
    starts.push_back(kept);
    texts.emplace_back(s.text);
    log.emplace_back('s', s.seq);
  }
  void on_first_response(uint64_t seq) override { log.emplace_back('f', seq); }
  void on_message(uint64_t seq, char type, pr::Bytes) override { types[seq] += type; }
  void on_response_bytes(uint64_t seq, pr::Bytes b) override {
    CHECK_FALSE(b.empty());
    bytes[seq] += str(b);
    log.emplace_back('b', seq);
  }
  void on_end(const StatementEnd& e) override {
    ends.push_back({e.seq, e.outcome, std::string(e.tag), std::string(e.sqlstate), e.rows, e.duration});
    log.emplace_back('e', e.seq);
    end_times.push_back(e.ended);
  }
  void on_ready(char status) override { log.emplace_back('r', uint64_t(status)); }
  std::vector<EventClock::time_point> end_times;
  // Every statement ends once, after all of its bytes.
  void check_order() const {
    std::map<uint64_t, int> ended;
    for (auto [kind, seq] : log) {
      if (kind == 'e') CHECK(++ended[seq] == 1);
      if (kind == 'b' || kind == 'f') CHECK(ended[seq] == 0);
    }
  }
};

// A server's answer, message by message, each with the statement it answers (0: none).
struct Backend {
  std::vector<std::string> messages;
  std::vector<uint64_t> owners;
  template <class M>
  Backend& add(const M& m, uint64_t owner) {
    pr::Buffer b;
    pr::encode(m, b);
    messages.push_back(str(b));
    owners.push_back(owner);
    return *this;
  }
  Backend& error(const char* sqlstate, uint64_t owner) {
    pr::Buffer b;
    pr::encode_error_response({"ERROR", sqlstate, "failed", "", ""}, b);
    messages.push_back(str(b));
    owners.push_back(owner);
    return *this;
  }
  Backend& notice(uint64_t owner) {
    pr::Buffer b;
    pr::encode_notice_response({"NOTICE", "00000", "a long notice " + std::string(60, 'n'), "", ""}, b);
    messages.push_back(str(b));
    owners.push_back(owner);
    return *this;
  }
  std::string bytes() const {
    std::string s;
    for (auto& m : messages) s += m;
    return s;
  }
  std::map<uint64_t, std::string> by_owner(const std::function<bool(char)>& dropped = nullptr) const {
    std::map<uint64_t, std::string> m;
    for (size_t i = 0; i < messages.size(); ++i)
      if (owners[i] != 0 && !(dropped && dropped(messages[i][0]))) m[owners[i]] += messages[i];
    return m;
  }
};

// The server direction as a session's pump drives it: frame a read, tell each message, where it
// ends in the output, then the bytes sent. `drop`: types pgrelay hides from the client.
struct Pump {
  StatementEvents& events;
  std::function<bool(char)> drop;
  MessageForwarder fwd;
  std::vector<std::byte> buf = std::vector<std::byte>(1 << 14);
  std::string out;

  explicit Pump(StatementEvents& e, std::function<bool(char)> d = nullptr) : events(e), drop(std::move(d)) {
    for (char t : std::string("ZSEC13")) fwd.framer().inspect(t);
  }
  void read(const std::string& bytes, EventClock::time_point now) {
    fwd.keep_held(std::span(buf));
    const size_t held = fwd.held();
    std::memcpy(buf.data() + held, bytes.data(), bytes.size());
    auto chunk = fwd.process(
        std::span(buf), bytes.size(),
        [&](const pr::Frame& f, pr::Buffer&) {
          events.message(f.type, f.body, now);
          return drop && drop(f.type) ? Verdict::kReplace : Verdict::kPass;
        },
        [&](size_t out_end) { events.emitted(out_end); });
    REQUIRE(chunk.ok());
    out += str(chunk->send);
    events.end_chunk(chunk->send);
  }
};

// The client direction: a Query's statements, or one Execute per entry, then the request's end.
inline void send_query(StatementEvents& events, const char* sql, EventClock::time_point now = kT0) {
  AnalysisPtr a = analyze_statement(sql);
  for (uint32_t i = 0; i < a->statement_count(); ++i) {
    StatementStart s;
    s.analysis = a;
    s.index = i;
    s.text = a->statement_text(i);
    s.tx_status = 'I';
    events.statement_sent(s, now);
  }
  events.request_end_sent();
}
inline void send_executes(StatementEvents& events, int executes, EventClock::time_point now = kT0) {
  for (int i = 0; i < executes; ++i) {
    StatementStart s;
    s.extended = true;
    s.analysis = analyze_statement("select $1");
    events.statement_sent(s, now);
  }
  events.request_end_sent();
}

inline pr::RowDescription one_column() { return {{pr::FieldDescription{"x", 0, 0, 23, 4, -1, 0}}}; }
inline pr::DataRow row(const std::string& v) { return {{pr::Value(pr::as_bytes(v))}}; }

}  // namespace pgrelay::proxy::test
