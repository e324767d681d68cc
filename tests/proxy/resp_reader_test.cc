// RespReader: RESP2 replies from bytes in any split, and bounded against a server that lies.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "proxy/net/resp_reader.h"

using namespace pgrelay::proxy;
using namespace std::string_literals;

namespace {

// Every reply of `bytes` fed `step` bytes at a time; `failed` when the reader refused them.
std::vector<RedisReply> read(const std::string& bytes, size_t step, bool& failed) {
  RespReader reader;
  std::vector<RedisReply> out;
  failed = false;
  for (size_t pos = 0; pos < bytes.size(); pos += step) {
    REQUIRE(reader.feed(bytes.data() + pos, std::min(step, bytes.size() - pos)));
    for (;;) {
      RedisReply r;
      const RespReader::Next next = reader.next(r);
      if (next == RespReader::Next::kError) {
        failed = true;
        CHECK_FALSE(reader.error().empty());
        return out;
      }
      if (next == RespReader::Next::kNeedMore) break;
      out.push_back(std::move(r));
    }
  }
  return out;
}

}  // namespace

TEST_CASE("RespReader: every kind of reply, in any split") {
  const std::string bytes = "+OK\r\n-ERR no\r\n:42\r\n$5\r\nhe\0lo\r\n$-1\r\n*2\r\n$1\r\na\r\n*1\r\n:7\r\n"s;
  for (size_t step : {size_t(1), size_t(3), bytes.size()}) {
    CAPTURE(step);
    bool failed = false;
    auto replies = read(bytes, step, failed);
    CHECK_FALSE(failed);
    REQUIRE(replies.size() == 6);
    CHECK(replies[0].is_status("OK"));
    CHECK(replies[1].is_error());
    CHECK(replies[2].integer == 42);
    CHECK(replies[3].str == "he\0lo"s);
    CHECK(replies[4].is_nil());
    REQUIRE(replies[5].elements.size() == 2);
    CHECK(replies[5].elements[1].elements[0].integer == 7);
  }
}

TEST_CASE("RespReader: an array count no reply of pgrelay's needs fails the reader before allocating for it") {
  // hiredis alone would allocate 16 GiB for the element pointers of the first (fuzz/redis_reply).
  for (std::string bytes : {"*2147483647\r\n", "*9223372036854775807\r\n", "*1048577\r\n"}) {
    CAPTURE(bytes);
    bool failed = false;
    auto replies = read(bytes, bytes.size(), failed);
    CHECK(failed);
    CHECK(replies.empty());
  }
  bool failed = false;
  auto replies = read("*1048576\r\n", 16, failed);   // the largest allowed: waits for its elements
  CHECK_FALSE(failed);
  CHECK(replies.empty());
}
