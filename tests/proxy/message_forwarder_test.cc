// MessageForwarder: any split of reads gives the same stream out, with messages passed, replaced, dropped or stopped.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "protocol/error_fields.h"
#include "protocol/messages.h"
#include "proxy/request/message_forwarder.h"

using namespace pgrelay;
using namespace pgrelay::proxy;
namespace pr = pgrelay::protocol;

namespace {

std::string str(pr::Bytes b) { return std::string(pr::as_string_view(b)); }

// A stream kept one message per entry, so expected outputs can be built message by message.
struct Stream {
  std::vector<std::string> messages;

  template <class M>
  Stream& add(const M& m) {
    pr::Buffer b;
    pr::encode(m, b);
    messages.push_back(str(b));
    return *this;
  }
  Stream& error(const std::string& message) {
    pr::Buffer b;
    pr::encode_error_response({"ERROR", "42P01", message, "", ""}, b);
    messages.push_back(str(b));
    return *this;
  }
  std::string bytes() const {
    std::string s;
    for (auto& m : messages) s += m;
    return s;
  }
  // Each message mapped through f (return "" to leave it out).
  std::string map(const std::function<std::string(const std::string&)>& f) const {
    std::string s;
    for (auto& m : messages) s += f(m);
    return s;
  }
};

std::string encoded_parse_complete() {
  pr::Buffer b;
  pr::encode(pr::ParseComplete{}, b);
  return str(b);
}

struct Outcome {
  std::string out;                                   // every chunk sent, in order
  std::vector<std::string> chunks;                   // one per read
  std::vector<std::pair<char, std::string>> seen;    // decide() calls: type, body if inspected
  bool stopped = false;
  bool copied = false;                               // some chunk did not point into the read buffer
  std::optional<Error> error;
};

using Decide = std::function<Verdict(const pr::Frame&, pr::Buffer&)>;

Verdict pass(const pr::Frame&, pr::Buffer&) { return Verdict::kPass; }

// Reads `input` in pieces ending at `cuts` (ascending; input.size() is added), as a session
// does: each read lands at buf + held(), the chunk is written, then keep_held(buf). Bytes past
// the held ones are scribbled over before each read, so nothing else there can be relied on.
Outcome run(MessageForwarder& fwd, const std::string& input, std::vector<size_t> cuts, const Decide& decide) {
  if (cuts.empty() || cuts.back() != input.size()) cuts.push_back(input.size());
  Outcome o;
  std::vector<std::byte> buf(input.size() + 16);
  size_t from = 0;
  for (size_t cut : cuts) {
    const size_t n = cut - from;
    const size_t held = fwd.held();
    std::fill(buf.begin() + long(held), buf.end(), std::byte{0xEE});
    std::memcpy(buf.data() + held, input.data() + from, n);
    from = cut;
    auto chunk = fwd.process(std::span(buf), n, [&](const pr::Frame& f, pr::Buffer& replacement) {
      CHECK(replacement.empty());
      o.seen.emplace_back(f.type, str(f.body));
      return decide(f, replacement);
    });
    if (!chunk.ok()) {
      o.error = chunk.error();
      return o;
    }
    const pr::Bytes send = chunk->send;
    if (!send.empty() && (send.data() < buf.data() || send.data() + send.size() > buf.data() + buf.size()))
      o.copied = true;
    o.chunks.push_back(str(send));
    o.out += o.chunks.back();
    if (chunk->stopped) {
      o.stopped = true;
      return o;
    }
    fwd.keep_held(std::span(buf));
  }
  return o;
}

// Calls check(cuts) for every split of [0, size) into 1, 2 and 3 non-empty reads.
template <class Check>
void for_every_split(size_t size, Check check) {
  check(std::vector<size_t>{});
  for (size_t i = 1; i < size; ++i) check(std::vector<size_t>{i});
  for (size_t i = 1; i < size; ++i)
    for (size_t j = i + 1; j < size; ++j) check(std::vector<size_t>{i, j});
}

std::string describe(const std::vector<size_t>& cuts) {
  std::string s = "reads end at";
  for (size_t c : cuts) s += " " + std::to_string(c);
  return s;
}

// A server's answer to an extended-protocol batch and a simple query: zero-length bodies,
// short and long ones, inspected and skipped, so cuts land everywhere.
Stream backend_stream() {
  Stream s;
  s.add(pr::ParseComplete{})
      .add(pr::BindComplete{})
      .add(pr::ParameterStatus{"application_name", "psql"})
      .add(pr::RowDescription{{pr::FieldDescription{"n", 0, 0, 23, 4, -1, 0}, pr::FieldDescription{"t", 0, 0, 25, -1, -1, 0}}})
      .add(pr::DataRow{{pr::Value(pr::as_bytes("1")), pr::Value(pr::as_bytes("one"))}})
      .add(pr::DataRow{{pr::Value(pr::as_bytes("22")), std::nullopt}})
      .add(pr::CommandComplete{"SELECT 2"})
      .add(pr::CloseComplete{})
      .add(pr::ParseComplete{})
      .add(pr::ParseComplete{})
      .add(pr::ReadyForQuery{'I'})
      .error("relation \"t\" does not exist")
      .add(pr::ReadyForQuery{'E'});
  return s;
}

std::vector<std::pair<char, std::string>> expected_seen(const Stream& s, const std::string& inspected) {
  std::vector<std::pair<char, std::string>> v;
  for (auto& m : s.messages) v.emplace_back(m[0], inspected.find(m[0]) != std::string::npos ? m.substr(5) : "");
  return v;
}

}  // namespace

TEST_CASE("MessageForwarder: everything passes: the same bytes out at every split, straight from the read buffer") {
  const Stream s = backend_stream();
  const std::string in = s.bytes();
  for_every_split(in.size(), [&](const std::vector<size_t>& cuts) {
    CAPTURE(describe(cuts));
    MessageForwarder fwd;
    Outcome o = run(fwd, in, cuts, pass);
    REQUIRE_FALSE(o.error);
    CHECK(o.out == in);
    CHECK_FALSE(o.copied);
    CHECK(o.seen == expected_seen(s, ""));
    CHECK(fwd.held() == 0);
    CHECK(fwd.framer().at_boundary());
  });
}

TEST_CASE("MessageForwarder: inspected types straddling reads pass whole and unchanged at every split") {
  const Stream s = backend_stream();
  const std::string in = s.bytes();
  const std::string inspected = "Z13ECS";
  for_every_split(in.size(), [&](const std::vector<size_t>& cuts) {
    CAPTURE(describe(cuts));
    MessageForwarder fwd;
    for (char t : inspected) fwd.framer().inspect(t);
    Outcome o = run(fwd, in, cuts, pass);
    REQUIRE_FALSE(o.error);
    CHECK(o.out == in);
    CHECK(o.seen == expected_seen(s, inspected));
    CHECK(fwd.held() == 0);
  });
}

TEST_CASE("MessageForwarder: a partial header is held, and keep_held moves it to the buffer front") {
  Stream s;
  s.add(pr::ReadyForQuery{'I'});
  const std::string in = s.bytes();   // Z 00 00 00 05 I
  MessageForwarder fwd;
  fwd.framer().inspect('Z');
  std::vector<std::byte> buf(64, std::byte{0});
  // Two bytes of something complete-looking first, so the header does not start at the front.
  Stream prefix;
  prefix.add(pr::ParseComplete{});
  std::string first = prefix.bytes() + in.substr(0, 3);
  std::memcpy(buf.data(), first.data(), first.size());
  auto c1 = fwd.process(std::span(buf), first.size(), pass);
  REQUIRE(c1.ok());
  CHECK(str(c1->send) == prefix.bytes());
  CHECK(fwd.held() == 3);
  fwd.keep_held(std::span(buf));
  CHECK(str(pr::Bytes(buf.data(), 3)) == in.substr(0, 3));
  std::memcpy(buf.data() + 3, in.data() + 3, in.size() - 3);
  auto c2 = fwd.process(std::span(buf), in.size() - 3, pass);
  REQUIRE(c2.ok());
  CHECK(str(c2->send) == in);
  CHECK(fwd.held() == 0);
}

TEST_CASE("MessageForwarder: a 200 KiB skipped DataRow streams, read by read, in constant memory") {
  std::string big(200 << 10, 'x');
  Stream s;
  s.add(pr::RowDescription{{pr::FieldDescription{"big", 0, 0, 25, -1, -1, 0}}})
      .add(pr::DataRow{{pr::Value(pr::as_bytes(big))}})
      .add(pr::CommandComplete{"SELECT 1"})
      .add(pr::ReadyForQuery{'I'});
  const std::string in = s.bytes();
  const size_t row_begin = s.messages[0].size();
  const size_t row_end = row_begin + s.messages[1].size();
  for (size_t first : {1, 2, 4, 5, 17, 31, 32, 33, 36, 37, 4095, 4096, 8191}) {
    for (size_t step : {size_t(4096), size_t(65536), size_t(7)}) {
      if (step == 7 && first > 40) continue;   // many small reads: enough for a few offsets
      CAPTURE(first);
      CAPTURE(step);
      std::vector<size_t> cuts{first};
      while (cuts.back() + step < in.size()) cuts.push_back(cuts.back() + step);
      MessageForwarder fwd;
      for (char t : std::string("TCZE")) fwd.framer().inspect(t);
      Outcome o = run(fwd, in, cuts, pass);
      REQUIRE_FALSE(o.error);
      CHECK(o.out == in);
      CHECK(fwd.framer().buffered() < 1024);   // only the small inspected messages were assembled
      cuts.push_back(in.size());
      REQUIRE(o.chunks.size() == cuts.size());
      size_t from = 0;
      for (size_t i = 0; i < cuts.size(); ++i) {
        // A read wholly past the DataRow's header and before its end goes out as read.
        if (from >= row_begin + 5 && cuts[i] <= row_end) {
          CAPTURE(i);
          CHECK(o.chunks[i] == in.substr(from, cuts[i] - from));
        }
        from = cuts[i];
      }
    }
  }
}

TEST_CASE("MessageForwarder: dropping ParseComplete (empty replacement) at every split") {
  const Stream s = backend_stream();
  const std::string in = s.bytes();
  const std::string expected = s.map([](const std::string& m) { return m[0] == '1' ? "" : m; });
  REQUIRE(expected.size() + 3 * 5 == in.size());
  for_every_split(in.size(), [&](const std::vector<size_t>& cuts) {
    CAPTURE(describe(cuts));
    MessageForwarder fwd;
    for (char t : std::string("Z13E")) fwd.framer().inspect(t);
    Outcome o = run(fwd, in, cuts, [](const pr::Frame& f, pr::Buffer&) {
      return f.type == '1' ? Verdict::kReplace : Verdict::kPass;
    });
    REQUIRE_FALSE(o.error);
    CHECK(o.out == expected);
    CHECK(fwd.held() == 0);
  });
}

TEST_CASE("MessageForwarder: dropping the first and the last message, and a stream of nothing but drops") {
  Stream s;
  s.add(pr::ParseComplete{}).add(pr::CommandComplete{"SELECT 1"}).add(pr::ParseComplete{});
  const std::string in = s.bytes();
  for_every_split(in.size(), [&](const std::vector<size_t>& cuts) {
    CAPTURE(describe(cuts));
    MessageForwarder fwd;
    fwd.framer().inspect('1');
    fwd.framer().inspect('C');
    Outcome o = run(fwd, in, cuts, [](const pr::Frame& f, pr::Buffer&) {
      return f.type == '1' ? Verdict::kReplace : Verdict::kPass;
    });
    CHECK(o.out == s.messages[1]);
    MessageForwarder all;
    all.framer().inspect_all();
    Outcome none = run(all, in, cuts, [](const pr::Frame&, pr::Buffer&) { return Verdict::kReplace; });
    CHECK(none.out.empty());
  });
}

TEST_CASE("MessageForwarder: replacing CloseComplete with ParseComplete at every split") {
  const Stream s = backend_stream();
  const std::string in = s.bytes();
  const std::string pc = encoded_parse_complete();
  const std::string expected = s.map([&](const std::string& m) { return m[0] == '3' ? pc : m; });
  for_every_split(in.size(), [&](const std::vector<size_t>& cuts) {
    CAPTURE(describe(cuts));
    MessageForwarder fwd;
    for (char t : std::string("Z13E")) fwd.framer().inspect(t);
    Outcome o = run(fwd, in, cuts, [&](const pr::Frame& f, pr::Buffer& r) {
      if (f.type != '3') return Verdict::kPass;
      r.assign(reinterpret_cast<const std::byte*>(pc.data()), reinterpret_cast<const std::byte*>(pc.data()) + pc.size());
      return Verdict::kReplace;
    });
    REQUIRE_FALSE(o.error);
    CHECK(o.out == expected);
  });
}

TEST_CASE("MessageForwarder: renaming the statement of a Bind (longer replacement) between skipped messages") {
  Stream s;
  s.add(pr::Parse{"s1", "select $1::int", {23}})
      .add(pr::Bind{"", "s1", {0}, {pr::Value(pr::as_bytes("42"))}, {}})
      .add(pr::Execute{"", 0})
      .add(pr::Bind{"p", "s1", {}, {std::nullopt}, {1}})
      .add(pr::Sync{});
  const std::string in = s.bytes();
  auto rename = [](const std::string& m) {
    auto b = pr::decode_bind(pr::as_bytes(m).subspan(5));
    REQUIRE(b.ok());
    pr::Bind renamed = *b;
    renamed.statement = "pgrelay_0123456789abcdef";
    pr::Buffer out;
    pr::encode(renamed, out);
    return str(out);
  };
  const std::string expected = s.map([&](const std::string& m) { return m[0] == 'B' ? rename(m) : m; });
  for_every_split(in.size(), [&](const std::vector<size_t>& cuts) {
    CAPTURE(describe(cuts));
    MessageForwarder fwd;
    for (char t : std::string("PBDC")) fwd.framer().inspect(t);
    Outcome o = run(fwd, in, cuts, [&](const pr::Frame& f, pr::Buffer& r) {
      if (f.type != 'B') return Verdict::kPass;
      std::string renamed = rename("B0000" + str(f.body));
      r.assign(reinterpret_cast<const std::byte*>(renamed.data()),
               reinterpret_cast<const std::byte*>(renamed.data()) + renamed.size());
      return Verdict::kReplace;
    });
    REQUIRE_FALSE(o.error);
    CHECK(o.out == expected);
  });
}

TEST_CASE("MessageForwarder: kStop sends what came before the stopped message, at every split") {
  const Stream s = backend_stream();
  const std::string in = s.bytes();
  size_t error_at = 0;
  while (s.messages[error_at][0] != 'E') ++error_at;
  std::string before;
  for (size_t i = 0; i < error_at; ++i) before += s.messages[i];
  std::string before_without_pc;
  for (size_t i = 0; i < error_at; ++i)
    if (s.messages[i][0] != '1') before_without_pc += s.messages[i];

  for_every_split(in.size(), [&](const std::vector<size_t>& cuts) {
    CAPTURE(describe(cuts));
    {
      MessageForwarder fwd;
      for (char t : std::string("Z13E")) fwd.framer().inspect(t);
      Outcome o = run(fwd, in, cuts, [](const pr::Frame& f, pr::Buffer&) {
        return f.type == 'E' ? Verdict::kStop : Verdict::kPass;
      });
      REQUIRE_FALSE(o.error);
      CHECK(o.stopped);
      CHECK(o.out == before);
      CHECK(o.seen.back().first == 'E');
      CHECK(o.seen.size() == error_at + 1);   // nothing after the stopped message was looked at
    }
    {
      // Stopping while rewriting: the dropped messages stay dropped.
      MessageForwarder fwd;
      for (char t : std::string("Z13E")) fwd.framer().inspect(t);
      Outcome o = run(fwd, in, cuts, [](const pr::Frame& f, pr::Buffer&) {
        return f.type == 'E' ? Verdict::kStop : f.type == '1' ? Verdict::kReplace : Verdict::kPass;
      });
      CHECK(o.stopped);
      CHECK(o.out == before_without_pc);
    }
    {
      // Stopping at the very first message sends nothing.
      MessageForwarder fwd;
      fwd.framer().inspect('1');
      Outcome o = run(fwd, in, cuts, [](const pr::Frame&, pr::Buffer&) { return Verdict::kStop; });
      CHECK(o.stopped);
      CHECK(o.out.empty());
    }
  });
}

TEST_CASE("MessageForwarder: a bad length is the Framer's error, whole or split, and stays an error") {
  // 'Z' with length 3, after a good message.
  Stream s;
  s.add(pr::ReadyForQuery{'I'});
  const std::string bad = s.bytes() + std::string("Z\0\0\0\3", 5);
  for_every_split(bad.size(), [&](const std::vector<size_t>& cuts) {
    CAPTURE(describe(cuts));
    MessageForwarder fwd;
    fwd.framer().inspect('Z');
    Outcome o = run(fwd, bad, cuts, pass);
    REQUIRE(o.error);
    CHECK(o.error->sqlstate == "08P01");
    // Once failed, always failed.
    std::vector<std::byte> buf(16);
    auto again = fwd.process(std::span(buf), 0, pass);
    REQUIRE_FALSE(again.ok());
    CHECK(again.error().sqlstate == "08P01");
  });
  // Over the limit: 54000.
  MessageForwarder small(1024);
  std::string big("D\0\0\x10\0", 5);
  std::vector<std::byte> buf(big.size());
  std::memcpy(buf.data(), big.data(), big.size());
  auto r = small.process(std::span(buf), buf.size(), pass);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().sqlstate == "54000");
}

TEST_CASE("MessageForwarder: random streams, random reads, random verdicts match a message-by-message model") {
  std::mt19937 rng(20261125);
  const std::string inspected = "Z1C3";
  const std::string pc = encoded_parse_complete();
  for (int round = 0; round < 300; ++round) {
    Stream s;
    int count = 1 + int(rng() % 12);
    for (int i = 0; i < count; ++i) {
      switch (rng() % 6) {
        case 0: s.add(pr::ReadyForQuery{'T'}); break;
        case 1: s.add(pr::ParseComplete{}); break;
        case 2: s.add(pr::CommandComplete{std::string(rng() % 40, 'c')}); break;
        case 3: s.add(pr::CloseComplete{}); break;
        case 4: s.add(pr::DataRow{{pr::Value(pr::as_bytes(std::string(rng() % 3000, 'd')))}}); break;
        default: s.add(pr::NoData{}); break;
      }
    }
    // The verdict for each inspected message, by its position among them.
    std::vector<int> verdicts(s.messages.size());
    for (auto& v : verdicts) v = int(rng() % 3);   // 0 pass, 1 drop, 2 replace with ParseComplete
    std::string expected;
    for (size_t i = 0; i < s.messages.size(); ++i) {
      const std::string& m = s.messages[i];
      bool ins = inspected.find(m[0]) != std::string::npos;
      expected += !ins || verdicts[i] == 0 ? m : verdicts[i] == 1 ? "" : pc;
    }
    const std::string in = s.bytes();
    std::vector<size_t> cuts;
    for (size_t at = 1 + rng() % 64; at < in.size(); at += 1 + rng() % 700) cuts.push_back(at);
    CAPTURE(round);
    CAPTURE(describe(cuts));
    MessageForwarder fwd;
    for (char t : inspected) fwd.framer().inspect(t);
    size_t index = 0;
    Outcome o = run(fwd, in, cuts, [&](const pr::Frame& f, pr::Buffer& r) {
      int v = verdicts[index++];
      if (!f.inspected || v == 0) return Verdict::kPass;
      if (v == 2) r.assign(reinterpret_cast<const std::byte*>(pc.data()), reinterpret_cast<const std::byte*>(pc.data()) + pc.size());
      return Verdict::kReplace;
    });
    REQUIRE_FALSE(o.error);
    CHECK(index == s.messages.size());
    CHECK(o.out == expected);
  }
}
