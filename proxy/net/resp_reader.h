// RESP2 replies from bytes: hiredis' reader, its reply trees copied into owned RedisReply values.
//
// No Asio and no I/O: RedisConnection feeds it what it reads, and fuzz/redis_reply feeds it
// anything. Used from one thread at a time.
#pragma once

#include <cstddef>
#include <string>

#include "proxy/net/redis_reply.h"

namespace pgrelay::proxy {

class RespReader {
 public:
  RespReader();
  ~RespReader();
  RespReader(const RespReader&) = delete;
  RespReader& operator=(const RespReader&) = delete;

  // Appends bytes read from Redis. False when the reader has failed (error() says why).
  [[nodiscard]] bool feed(const char* data, size_t n);

  enum class Next { kReply, kNeedMore, kError };
  // The next whole reply into `out` (kReply), or kNeedMore until more bytes are fed, or kError
  // when the bytes are not RESP: the reader is then unusable.
  [[nodiscard]] Next next(RedisReply& out);

  // What was wrong, after kError or a failed feed().
  std::string error() const;

 private:
  void* reader_;   // hiredis' redisReader, kept out of this header
};

}  // namespace pgrelay::proxy
