// Fuzz target: RESP2 replies as the Redis tier reads them (proxy/net/resp_reader: hiredis'
// reader, copied into RedisReply), from a Redis server trusted only so far.
//
// Input: the bytes Redis sends. They are read whole and in chunks whose sizes come from the
// input; both must give the same replies and fail at the same point.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "proxy/net/resp_reader.h"

namespace px = pgrelay::proxy;
using pgrelay::fuzz::check;

namespace {

bool same(const px::RedisReply& a, const px::RedisReply& b) {
  if (a.type != b.type || a.integer != b.integer || a.str != b.str || a.elements.size() != b.elements.size()) return false;
  for (size_t i = 0; i < a.elements.size(); ++i) {
    if (!same(a.elements[i], b.elements[i])) return false;
  }
  return true;
}

// Replies until the input ends or the reader fails; true when it failed.
bool read_all(const char* data, size_t size, size_t chunk_seed, std::vector<px::RedisReply>& replies) {
  px::RespReader reader;
  size_t pos = 0, step = chunk_seed;
  while (pos < size) {
    const size_t n = chunk_seed == 0 ? size - pos : std::min<size_t>(1 + step % 23, size - pos);
    step = step * 31 + 7;
    if (!reader.feed(data + pos, n)) return true;
    pos += n;
    for (;;) {
      px::RedisReply r;
      const px::RespReader::Next next = reader.next(r);
      if (next == px::RespReader::Next::kError) {
        check(!reader.error().empty());
        return true;
      }
      if (next == px::RespReader::Next::kNeedMore) break;
      replies.push_back(std::move(r));
    }
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const char* in = reinterpret_cast<const char*>(data);
  std::vector<px::RedisReply> whole, chunked;
  const bool whole_failed = read_all(in, size, 0, whole);
  const bool chunked_failed = read_all(in, size, size | 1, chunked);
  check(whole_failed == chunked_failed);
  if (!whole_failed) {
    check(whole.size() == chunked.size());
    for (size_t i = 0; i < whole.size(); ++i) check(same(whole[i], chunked[i]));
  }
  return 0;
}
