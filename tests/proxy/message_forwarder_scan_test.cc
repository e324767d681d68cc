// MessageForwarder's two passes (scan, emit) give process()'s output; both say where each message ends in it.
#include <doctest/doctest.h>

#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "protocol/messages.h"
#include "proxy/request/message_forwarder.h"
#include "test_util.h"

using namespace pgrelay;
using namespace pgrelay::proxy;
namespace pr = pgrelay::protocol;

namespace {

using test::encoded;
using test::str;

// A stream kept one message per entry, so expected outputs can be built message by message.
struct Stream {
  std::vector<std::string> messages;
  template <class M>
  Stream& add(const M& m) {
    messages.push_back(encoded(m));
    return *this;
  }
  std::string bytes() const {
    std::string s;
    for (auto& m : messages) s += m;
    return s;
  }
};

// A client's pipelined batches: inspected Parse/Bind/Query among skipped CopyData and Sync.
Stream client_stream() {
  Stream s;
  s.add(pr::Parse{"s1", "select $1::int + 1", {23}})
      .add(pr::Bind{"", "s1", {0}, {pr::Value(pr::as_bytes("41"))}, {}})
      .add(pr::Execute{"", 0})
      .add(pr::Sync{})
      .add(pr::Query{"select 1; select 2"})
      .add(pr::Parse{"", "insert into t values ($1)", {}})
      .add(pr::Bind{"p", "", {}, {pr::Value(pr::as_bytes("a longer parameter value"))}, {}})
      .add(pr::Execute{"p", 10})
      .add(pr::Sync{});
  return s;
}
const std::string kInspected = "QPBE";

// The replacement for an inspected message: Bind becomes a longer one, Execute is dropped.
using Replace = std::function<std::optional<std::string>(char type, const std::string& body)>;
std::optional<std::string> keep(char, const std::string&) { return std::nullopt; }
std::optional<std::string> rewrite(char type, const std::string& body) {
  if (type == 'E') return std::string();
  if (type != 'B') return std::nullopt;
  auto b = pr::decode_bind(pr::as_bytes(body));
  REQUIRE(b.ok());
  pr::Bind renamed = *b;
  renamed.statement = "pgrelay_0123456789abcdef";
  return encoded(renamed);
}

struct Outcome {
  std::string out;
  std::vector<size_t> ends;   // each message's end in `out`, from emitted()
  bool stopped = false;
  std::optional<Error> error;
};

// Reads `input` in pieces ending at `cuts`, as the client direction does: scan, emit, keep_held.
// stop_at: on_frame refuses the message with that index.
Outcome run_two_pass(const std::string& input, std::vector<size_t> cuts, const Replace& replace,
                     size_t stop_at = size_t(-1)) {
  if (cuts.empty() || cuts.back() != input.size()) cuts.push_back(input.size());
  MessageForwarder fwd;
  for (char t : kInspected) fwd.framer().inspect(t);
  Outcome o;
  std::vector<std::byte> buf(input.size() + 16);
  size_t from = 0, seen = 0;
  for (size_t cut : cuts) {
    const size_t n = cut - from, held = fwd.held();
    std::fill(buf.begin() + long(held), buf.end(), std::byte{0xEE});
    std::memcpy(buf.data() + held, input.data() + from, n);
    from = cut;
    auto scanned = fwd.scan(std::span(buf), n, [&](const pr::Frame&) { return seen++ != stop_at; });
    if (!scanned.ok()) {
      o.error = scanned.error();
      return o;
    }
    const size_t before = o.out.size();
    size_t next = 0;
    auto chunk = fwd.emit(
        [&](size_t i, const pr::Frame& f, pr::Buffer& r) {
          CHECK(i == next);
          CHECK(r.empty());
          if (!f.inspected) return Verdict::kPass;
          auto with = replace(f.type, str(f.body));
          if (!with) return Verdict::kPass;
          r.assign(pr::as_bytes(*with).begin(), pr::as_bytes(*with).end());
          return Verdict::kReplace;
        },
        [&](size_t i, size_t out_end) {
          CHECK(i == next++);
          o.ends.push_back(before + out_end);
        });
    CHECK(next == fwd.scanned().size());
    o.out += str(chunk.send);
    if (chunk.stopped) {
      o.stopped = true;
      return o;
    }
    fwd.keep_held(std::span(buf));
  }
  return o;
}

// The same through process(), the one-pass reference; `ends` gets its emitted() offsets.
std::string run_one_pass(const std::string& input, std::vector<size_t> cuts, const Replace& replace,
                         std::vector<size_t>* ends = nullptr) {
  if (cuts.empty() || cuts.back() != input.size()) cuts.push_back(input.size());
  MessageForwarder fwd;
  for (char t : kInspected) fwd.framer().inspect(t);
  std::string out;
  std::vector<std::byte> buf(input.size() + 16);
  size_t from = 0;
  for (size_t cut : cuts) {
    const size_t n = cut - from, held = fwd.held();
    std::memcpy(buf.data() + held, input.data() + from, n);
    from = cut;
    const size_t before = out.size();
    auto chunk = fwd.process(
        std::span(buf), n,
        [&](const pr::Frame& f, pr::Buffer& r) {
          if (!f.inspected) return Verdict::kPass;
          auto with = replace(f.type, str(f.body));
          if (!with) return Verdict::kPass;
          r.assign(pr::as_bytes(*with).begin(), pr::as_bytes(*with).end());
          return Verdict::kReplace;
        },
        [&](size_t out_end) {
          if (ends) ends->push_back(before + out_end);
        });
    REQUIRE(chunk.ok());
    out += str(chunk->send);
    fwd.keep_held(std::span(buf));
  }
  return out;
}

// Each message's end in the expected output.
std::vector<size_t> expected_ends(const Stream& s, const Replace& replace) {
  std::vector<size_t> ends;
  size_t at = 0;
  for (auto& m : s.messages) {
    auto with = kInspected.find(m[0]) != std::string::npos ? replace(m[0], m.substr(5)) : std::nullopt;
    at += with ? with->size() : m.size();
    ends.push_back(at);
  }
  return ends;
}

std::string describe(const std::vector<size_t>& cuts) {
  std::string s = "reads end at";
  for (size_t c : cuts) s += " " + std::to_string(c);
  return s;
}

}  // namespace

TEST_CASE("MessageForwarder::scan/emit: pass-through in two reads at every split equals process() and the input") {
  const Stream s = client_stream();
  const std::string in = s.bytes();
  const auto ends = expected_ends(s, keep);
  for (size_t cut = 0; cut <= in.size(); ++cut) {
    const std::vector<size_t> cuts = cut == 0 ? std::vector<size_t>{} : std::vector<size_t>{cut};
    CAPTURE(describe(cuts));
    Outcome o = run_two_pass(in, cuts, keep);
    REQUIRE_FALSE(o.error);
    CHECK_FALSE(o.stopped);
    CHECK(o.out == in);
    std::vector<size_t> one_pass_ends;
    CHECK(o.out == run_one_pass(in, cuts, keep, &one_pass_ends));
    CHECK(o.ends == ends);
    CHECK(one_pass_ends == ends);
  }
}

TEST_CASE("MessageForwarder::scan/emit: replacements and drops in two reads at every split equal process()") {
  const Stream s = client_stream();
  const std::string in = s.bytes();
  const auto ends = expected_ends(s, rewrite);
  std::string expected;
  for (auto& m : s.messages) expected += m[0] == 'E' ? "" : m[0] == 'B' ? *rewrite('B', m.substr(5)) : m;
  REQUIRE(expected.size() != in.size());
  for (size_t cut = 1; cut < in.size(); ++cut) {
    CAPTURE(cut);
    Outcome o = run_two_pass(in, {cut}, rewrite);
    REQUIRE_FALSE(o.error);
    CHECK(o.out == expected);
    std::vector<size_t> one_pass_ends;
    CHECK(o.out == run_one_pass(in, {cut}, rewrite, &one_pass_ends));
    CHECK(o.ends == ends);
    CHECK(one_pass_ends == ends);
  }
}

// The body of a recorded message that straddled reads was once a view of the Framer's assembly
// buffer, which the same scan reuses when the chunk ends inside another inspected body. Here the
// middle read holds the tail of a Bind and a few bytes of the next Parse's body.
TEST_CASE("MessageForwarder::scan/emit: a straddling message's body survives the chunk's partial last one") {
  Stream s;
  s.add(pr::Bind{"", "s1", {}, {pr::Value(pr::as_bytes(std::string(200, 'v')))}, {}})
      .add(pr::Sync{})
      .add(pr::Parse{"s2", "select 2", {}});
  const std::string in = s.bytes();
  const size_t parse_at = s.messages[0].size() + s.messages[1].size();
  const std::vector<size_t> cuts{100, parse_at + 9};
  Outcome o = run_two_pass(in, cuts, keep);
  REQUIRE_FALSE(o.error);
  CHECK(run_one_pass(in, cuts, keep) == in);
  CHECK(o.out == in);
}

TEST_CASE("MessageForwarder::scan/emit: emitted() ends match the output for skipped messages streaming over reads") {
  Stream s;
  s.add(pr::Query{"copy t from stdin"});
  pr::Buffer copy;
  pr::encode_frontend(pr::CopyData{pr::as_bytes(std::string(3000, 'r'))}, copy);
  s.messages.push_back(str(copy));
  copy.clear();
  pr::encode_frontend(pr::CopyDone{}, copy);
  s.messages.push_back(str(copy));
  const std::string in = s.bytes();
  const auto ends = expected_ends(s, keep);
  for (size_t cut : {1, 5, 20, 27, 28, 30, 100, 2000, 3020, 3030, int(in.size()) - 1}) {
    CAPTURE(cut);
    Outcome o = run_two_pass(in, {size_t(cut)}, keep);
    REQUIRE_FALSE(o.error);
    CHECK(o.out == in);
    CHECK(o.ends == ends);
  }
}

TEST_CASE("MessageForwarder::scan: refusing a message stops before it, at every split") {
  const Stream s = client_stream();
  const std::string in = s.bytes();
  for (size_t stop_at : {size_t(0), size_t(4), size_t(6)}) {
    std::string before;
    for (size_t i = 0; i < stop_at; ++i) before += s.messages[i];
    for (size_t cut = 0; cut < in.size(); ++cut) {
      CAPTURE(stop_at);
      CAPTURE(cut);
      Outcome o = run_two_pass(in, cut == 0 ? std::vector<size_t>{} : std::vector<size_t>{cut}, keep, stop_at);
      REQUIRE_FALSE(o.error);
      CHECK(o.stopped);
      CHECK(o.out == before);
      CHECK(o.ends.size() == stop_at);   // nothing recorded at or after the refused message
    }
  }
  // Stopping with replacements before: those stay replaced.
  Outcome o = run_two_pass(in, {}, rewrite, 4);
  CHECK(o.stopped);
  CHECK(o.out == s.messages[0] + *rewrite('B', s.messages[1].substr(5)) + s.messages[3]);
}
