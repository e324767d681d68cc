// Redis replies as owned values, and what a Redis call returns: a reply or why there is none.
//
// hiredis is only the RESP codec here (redis_connection.cc): its redisReply trees are copied
// into RedisReply at once, so no hiredis type or macro leaks into the rest of the proxy.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pgrelay::proxy {

// One RESP2 reply. An error reply (-ERR ...) is a reply like any other: the command reached
// Redis and Redis said no.
struct RedisReply {
  enum class Type { kNil, kInteger, kString, kStatus, kError, kArray };
  Type type = Type::kNil;
  int64_t integer = 0;              // kInteger
  std::string str;                  // kString (bulk), kStatus, kError
  std::vector<RedisReply> elements; // kArray

  bool is_error() const { return type == Type::kError; }
  bool is_nil() const { return type == Type::kNil; }
  // "OK" and the like.
  bool is_status(std::string_view s) const { return type == Type::kStatus && str == s; }
};

// Why a call has no reply. Every failure but kOk leaves the connection closed: the next call
// opens a new one.
enum class RedisStatus {
  kOk,
  kTimeout,          // no reply by the caller's deadline (then the connection is dropped too)
  kConnectionLost,   // could not connect, or the connection broke before the reply came
  kProtocol,         // Redis sent bytes that are not RESP, or a reply no command asked for
  kLogin,            // AUTH or SELECT was refused (see `error`): a configuration problem
};
const char* to_string(RedisStatus s);

struct RedisResult {
  RedisStatus status = RedisStatus::kOk;
  RedisReply reply;    // when ok()
  std::string error;   // when not ok(): what happened, for a log line (never a password)

  bool ok() const { return status == RedisStatus::kOk; }
  static RedisResult failed(RedisStatus status, std::string error) { return {status, {}, std::move(error)}; }
};

}  // namespace pgrelay::proxy
