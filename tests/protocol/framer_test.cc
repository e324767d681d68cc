// Framer: any split of a byte stream gives the same frames; skipped bodies stream in constant memory.
#include <doctest/doctest.h>

#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "protocol/framer.h"
#include "protocol/messages.h"
#include "protocol/sqlstate.h"

using namespace pgrelay;
using namespace pgrelay::protocol;

namespace {

struct Seen {
  char type;
  uint32_t body_length;
  std::string body;
  bool inspected;
  bool operator==(const Seen&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Seen& s) {
  return os << "{'" << s.type << "', " << s.body_length << ", " << s.body.size() << " body bytes, "
            << (s.inspected ? "inspected" : "skipped") << "}";
}

// Feeds `stream` cut at the given offsets; fails the test on any error.
std::vector<Seen> feed_split(Framer& f, Bytes stream, const std::vector<size_t>& cuts) {
  std::vector<Seen> out;
  size_t start = 0;
  auto on_frame = [&](const Frame& fr, size_t) {
    out.push_back({fr.type, fr.body_length, std::string(as_string_view(fr.body)), fr.inspected});
    return FrameAction::kContinue;
  };
  for (size_t i = 0; i <= cuts.size(); ++i) {
    size_t end = i < cuts.size() ? cuts[i] : stream.size();
    auto chunk = stream.subspan(start, end - start);
    auto r = f.feed(chunk, on_frame);
    REQUIRE(r.ok());
    CHECK(*r == chunk.size());
    start = end;
  }
  return out;
}

// A backend stream: RowDescription, two DataRows, CommandComplete, ReadyForQuery, plus an
// empty-bodied message, so splits land in headers, bodies and between messages.
Buffer sample_stream() {
  Buffer b;
  encode(RowDescription{{FieldDescription{"n", 0, 0, 23, 4, -1, 0}}}, b);
  encode(DataRow{{Value(as_bytes("1"))}}, b);
  encode(DataRow{{Value(as_bytes("22")), std::nullopt}}, b);
  encode(ParseComplete{}, b);
  encode(CommandComplete{"SELECT 2"}, b);
  encode(ReadyForQuery{'I'}, b);
  return b;
}

Buffer header(char type, uint32_t length) {
  Buffer b{std::byte(type)};
  for (int s = 24; s >= 0; s -= 8) b.push_back(std::byte((length >> s) & 0xff));
  return b;
}

}  // namespace

TEST_CASE("Framer: whole buffer, inspected and skipped types") {
  Buffer stream = sample_stream();
  Framer f;
  f.inspect(backend::kCommandComplete);
  f.inspect(backend::kReadyForQuery);
  auto seen = feed_split(f, stream, {});
  REQUIRE(seen.size() == 6);
  CHECK(seen[0] == Seen{'T', 22, "", false});
  CHECK(seen[1] == Seen{'D', 7, "", false});
  CHECK(seen[2] == Seen{'D', 12, "", false});
  CHECK(seen[3] == Seen{'1', 0, "", false});
  CHECK(seen[4] == Seen{'C', 9, std::string("SELECT 2\0", 9), true});
  CHECK(seen[5] == Seen{'Z', 1, "I", true});
  CHECK(f.at_boundary());
}

TEST_CASE("Framer: a peeked type's body comes when it is whole in the chunk, and it still streams") {
  Buffer stream = sample_stream();
  Framer f;
  f.peek(backend::kDataRow);
  auto seen = feed_split(f, stream, {});
  REQUIRE(seen.size() == 6);
  CHECK(seen[1] == Seen{'D', 7, std::string("\0\1\0\0\0\x01" "1", 7), false});
  CHECK(seen[0].body.empty());   // not peeked
  // Cut inside the second DataRow's body: it is skipped (no body, nothing held back), the first
  // is whole in its chunk.
  const size_t second_row_body = 27 + 12 + 5 + 3;   // RowDescription, first DataRow, header, 3 bytes in
  Framer g;
  g.peek(backend::kDataRow);
  size_t held_at_cut = 99;
  {
    auto first = Bytes(stream).subspan(0, second_row_body);
    std::vector<Seen> out;
    REQUIRE(g.feed(first, [&](const Frame& fr, size_t) {
      out.push_back({fr.type, fr.body_length, std::string(as_string_view(fr.body)), fr.inspected});
      return FrameAction::kContinue;
    }).ok());
    held_at_cut = g.pending_bytes();
    REQUIRE(out.size() == 2);
    CHECK(out[1].body.size() == 7);
  }
  CHECK(held_at_cut == 0);   // streams: nothing held back for a peeked type
  std::vector<Seen> rest;
  REQUIRE(g.feed(Bytes(stream).subspan(second_row_body), [&](const Frame& fr, size_t) {
    rest.push_back({fr.type, fr.body_length, std::string(as_string_view(fr.body)), fr.inspected});
    return FrameAction::kContinue;
  }).ok());
  REQUIRE(rest.size() == 4);
  CHECK(rest[0] == Seen{'D', 12, "", false});   // straddled: no body, and no copy was made
  CHECK(g.buffered() == 0);
}

TEST_CASE("Framer: every single split offset gives the same frames") {
  Buffer stream = sample_stream();
  Framer whole;
  whole.inspect_all();
  auto expected = feed_split(whole, stream, {});
  REQUIRE(expected.size() == 6);
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    CAPTURE(cut);
    Framer f;
    f.inspect_all();
    CHECK(feed_split(f, stream, {cut}) == expected);
    CHECK(f.at_boundary());
  }
}

TEST_CASE("Framer: every pair of split offsets, and byte-at-a-time") {
  Buffer stream = sample_stream();
  Framer whole;
  whole.inspect('D');
  whole.inspect('Z');
  auto expected = feed_split(whole, stream, {});
  for (size_t a = 0; a <= stream.size(); ++a) {
    for (size_t b = a; b <= stream.size(); ++b) {
      Framer f;
      f.inspect('D');
      f.inspect('Z');
      if (feed_split(f, stream, {a, b}) != expected) FAIL("split at " << a << "," << b);
    }
  }
  std::vector<size_t> every;
  for (size_t i = 1; i < stream.size(); ++i) every.push_back(i);
  Framer f;
  f.inspect('D');
  f.inspect('Z');
  CHECK(feed_split(f, stream, every) == expected);
}

TEST_CASE("Framer: many messages in one buffer") {
  Buffer stream;
  for (int i = 0; i < 1000; ++i) encode(DataRow{{Value(as_bytes(std::to_string(i)))}}, stream);
  encode(ReadyForQuery{'T'}, stream);
  Framer f;
  f.inspect('D');
  f.inspect('Z');
  auto seen = feed_split(f, stream, {});
  REQUIRE(seen.size() == 1001);
  auto row = decode_data_row(as_bytes(seen[999].body));
  REQUIRE(row.ok());
  CHECK(as_string_view(*row->values.at(0)) == "999");
  CHECK(seen[1000].body == "T");
}

TEST_CASE("Framer: end offsets point just past each message") {
  Buffer stream = sample_stream();
  Framer f;
  std::vector<size_t> ends;
  auto r = f.feed(stream, [&](const Frame&, size_t end) { ends.push_back(end); return FrameAction::kContinue; });
  REQUIRE(r.ok());
  REQUIRE(ends.size() == 6);
  CHECK(ends[0] == 1 + 4 + 22);   // count 2 + "n\0" 2 + 18 fixed bytes
  CHECK(ends.back() == stream.size());
}

TEST_CASE("Framer: kStop returns the consumed count and a later feed continues") {
  Buffer stream = sample_stream();
  Framer whole;
  whole.inspect_all();
  auto expected = feed_split(whole, stream, {});
  for (size_t stop_at = 0; stop_at < expected.size(); ++stop_at) {
    CAPTURE(stop_at);
    Framer f;
    f.inspect_all();
    std::vector<Seen> seen;
    size_t count = 0, stop_end = 0;
    auto r = f.feed(stream, [&](const Frame& fr, size_t end) {
      seen.push_back({fr.type, fr.body_length, std::string(as_string_view(fr.body)), fr.inspected});
      if (count++ == stop_at) { stop_end = end; return FrameAction::kStop; }
      return FrameAction::kContinue;
    });
    REQUIRE(r.ok());
    CHECK(*r == stop_end);
    CHECK(f.at_boundary());
    auto rest = Bytes(stream).subspan(*r);
    auto more = feed_split(f, rest, {});
    seen.insert(seen.end(), more.begin(), more.end());
    CHECK(seen == expected);
  }
}

TEST_CASE("Framer: kStop on a message assembled across chunks") {
  Buffer stream = sample_stream();
  Framer f;
  f.inspect_all();
  // Cut inside the RowDescription body; stop on it when the second chunk completes it.
  auto first = Bytes(stream).first(10);
  auto r1 = f.feed(first, [](const Frame&, size_t) { return FrameAction::kContinue; });
  REQUIRE(r1.ok());
  CHECK(*r1 == 10);
  CHECK_FALSE(f.at_boundary());
  auto second = Bytes(stream).subspan(10);
  auto r2 = f.feed(second, [](const Frame& fr, size_t) {
    CHECK(fr.type == 'T');
    CHECK(fr.body.size() == 22);
    return FrameAction::kStop;
  });
  REQUIRE(r2.ok());
  CHECK(*r2 == 27 - 10);
  CHECK(f.at_boundary());
}

TEST_CASE("Framer: lengths below 4 and above the limit fail, and stay failed") {
  SUBCASE("length 3") {
    Framer f;
    Buffer b = header('Q', 3);
    auto r = f.feed(b, [](const Frame&, size_t) { return FrameAction::kContinue; });
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().sqlstate == sqlstate::kProtocolViolation);
    Buffer good;
    encode(Sync{}, good);
    auto again = f.feed(good, [](const Frame&, size_t) { FAIL("frame after failure"); return FrameAction::kContinue; });
    REQUIRE_FALSE(again.ok());
    CHECK(again.error().message == r.error().message);
  }
  SUBCASE("length 0 split across feeds (slow header path)") {
    Framer f;
    Buffer b = header('X', 0);
    auto r1 = f.feed(Bytes(b).first(2), [](const Frame&, size_t) { return FrameAction::kContinue; });
    REQUIRE(r1.ok());
    auto r2 = f.feed(Bytes(b).subspan(2), [](const Frame&, size_t) { return FrameAction::kContinue; });
    REQUIRE_FALSE(r2.ok());
    CHECK(r2.error().sqlstate == sqlstate::kProtocolViolation);
  }
  SUBCASE("over the limit") {
    Framer f(1024);
    Buffer b = header('D', 1025);
    auto r = f.feed(b, [](const Frame&, size_t) { return FrameAction::kContinue; });
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().sqlstate == sqlstate::kProgramLimitExceeded);
    CHECK(r.error().message.find("1025") != std::string::npos);
    CHECK_FALSE(f.feed(b, [](const Frame&, size_t) { return FrameAction::kContinue; }).ok());
  }
  SUBCASE("exactly the limit is fine") {
    Framer f(1024);
    Buffer b = header('D', 1024);
    b.resize(b.size() + 1020);
    int frames = 0;
    auto r = f.feed(b, [&](const Frame& fr, size_t) { frames++; CHECK(fr.body_length == 1020); return FrameAction::kContinue; });
    REQUIRE(r.ok());
    CHECK(frames == 1);
  }
  SUBCASE("a non-printable type is named in hex") {
    Framer f;
    Buffer b = header('\x01', 2);
    auto r = f.feed(b, [](const Frame&, size_t) { return FrameAction::kContinue; });
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("0x1") != std::string::npos);
  }
}

TEST_CASE("Framer: a 1 MiB skipped DataRow in 4 KiB chunks keeps buffered() small") {
  const uint32_t body = 1u << 20;
  Buffer stream = header('D', body + 4);
  stream.resize(stream.size() + body, std::byte{'x'});
  encode(ReadyForQuery{'I'}, stream);
  Framer f;
  f.inspect('Z');
  std::vector<Seen> seen;
  size_t max_buffered = 0;
  for (size_t pos = 0; pos < stream.size(); pos += 4096) {
    auto chunk = Bytes(stream).subspan(pos, std::min<size_t>(4096, stream.size() - pos));
    auto r = f.feed(chunk, [&](const Frame& fr, size_t) {
      seen.push_back({fr.type, fr.body_length, std::string(as_string_view(fr.body)), fr.inspected});
      return FrameAction::kContinue;
    });
    REQUIRE(r.ok());
    max_buffered = std::max(max_buffered, f.buffered());
  }
  REQUIRE(seen.size() == 2);
  CHECK(seen[0] == Seen{'D', body, "", false});
  CHECK(seen[1] == Seen{'Z', 1, "I", true});
  CHECK(max_buffered < 64);
}

TEST_CASE("Framer: an inspected message straddling chunks is assembled, then memory can be released") {
  Buffer stream;
  std::string big(100000, 'q');
  encode(Query{big}, stream);
  Framer f;
  f.inspect('Q');
  std::vector<size_t> cuts;
  for (size_t c = 1000; c < stream.size(); c += 1000) cuts.push_back(c);
  auto seen = feed_split(f, stream, cuts);
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].body == big + '\0');
  CHECK(f.buffered() >= big.size());
  f.release_memory();
  CHECK(f.buffered() == 0);
}

TEST_CASE("Framer: random bytes never crash it (fixed seed)") {
  std::mt19937 rng(20240601);
  for (int iter = 0; iter < 5000; ++iter) {
    Buffer junk(rng() % 200);
    for (auto& b : junk) b = std::byte(rng() & 0xff);
    // Keep some lengths plausible so bodies are actually walked, not just rejected.
    if (junk.size() >= 5 && (iter & 1)) {
      junk[1] = junk[2] = std::byte{0};
      junk[3] = std::byte(rng() % 2);
    }
    Framer f(1u << 16);
    if (iter % 3 == 0) f.inspect_all();
    size_t pos = 0;
    while (pos < junk.size()) {
      size_t n = 1 + rng() % 40;
      auto chunk = Bytes(junk).subspan(pos, std::min(n, junk.size() - pos));
      auto r = f.feed(chunk, [&](const Frame& fr, size_t end) {
        CHECK(end <= chunk.size());
        if (fr.inspected) CHECK(fr.body.size() == fr.body_length);
        return rng() % 8 == 0 ? FrameAction::kStop : FrameAction::kContinue;
      });
      if (!r.ok()) break;
      CHECK(*r <= chunk.size());
      // A frame always ends after at least one byte of this chunk, so kStop never returns 0.
      CHECK(*r > 0);
      if (*r == 0) break;
      pos += *r;
    }
  }
}

TEST_CASE("Framer::pending_bytes: what a whole-message forwarder must hold back") {
  Framer f;
  f.inspect('Z');
  auto none = [](const Frame&, size_t) { return FrameAction::kContinue; };
  // 'D' (skipped) with a 6-byte body, then 'Z' (inspected) with a 1-byte body.
  const unsigned char stream[] = {'D', 0, 0, 0, 10, 1, 2, 3, 4, 5, 6, 'Z', 0, 0, 0, 5, 'I'};
  auto bytes = [&](size_t from, size_t to) { return Bytes(reinterpret_cast<const std::byte*>(stream) + from, to - from); };
  REQUIRE(f.feed(bytes(0, 3), none).ok());
  CHECK(f.pending_bytes() == 3);            // partial header: type not known yet
  REQUIRE(f.feed(bytes(3, 8), none).ok());
  CHECK(f.pending_bytes() == 0);            // inside a skipped body: streams
  REQUIRE(f.feed(bytes(8, 14), none).ok());
  CHECK(f.pending_bytes() == 3);            // 'Z' header partly here
  REQUIRE(f.feed(bytes(14, 16), none).ok());
  CHECK(f.pending_bytes() == 5);            // 'Z' header complete, body not yet
  REQUIRE(f.feed(bytes(16, 17), none).ok());
  CHECK(f.pending_bytes() == 0);
  CHECK(f.at_boundary());
}
