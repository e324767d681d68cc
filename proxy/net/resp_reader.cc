// RESP2 replies through hiredis' reader (Debian libhiredis-dev 0.14), copied into RedisReply.
#include "proxy/net/resp_reader.h"

#include <hiredis/hiredis.h>

namespace pgrelay::proxy {
namespace {

redisReader* as_reader(void* r) { return static_cast<redisReader*>(r); }

// hiredis 0.14 allocates an array's element pointers as soon as it reads "*<count>", before any
// element arrives: "*2147483647\r\n" from a broken or hostile server asked for 16 GiB (found by
// fuzz/redis_reply). pgrelay's commands get small arrays; a larger count fails the reader
// ("Out of memory") and so the connection, like any reply that is not RESP.
constexpr int kMaxArrayElements = 1 << 20;

// hiredis' own functions, with createArray bounded. Filled once, from the first reader.
redisReplyObjectFunctions bounded_functions;
void* (*default_create_array)(const redisReadTask*, int) = nullptr;

void* create_bounded_array(const redisReadTask* task, int elements) {
  if (elements < 0 || elements > kMaxArrayElements) return nullptr;
  return default_create_array(task, elements);
}

redisReader* create_reader() {
  redisReader* r = redisReaderCreate();
  static const bool once = [r] {
    bounded_functions = *r->fn;
    default_create_array = r->fn->createArray;
    bounded_functions.createArray = create_bounded_array;
    return true;
  }();
  (void)once;
  r->fn = &bounded_functions;
  return r;
}

// hiredis' reply tree as an owned value. Nesting is bounded by hiredis' reader (a few levels).
RedisReply convert(const redisReply* r) {
  RedisReply out;
  switch (r->type) {
    case REDIS_REPLY_STRING: out.type = RedisReply::Type::kString; out.str.assign(r->str, r->len); break;
    case REDIS_REPLY_STATUS: out.type = RedisReply::Type::kStatus; out.str.assign(r->str, r->len); break;
    case REDIS_REPLY_ERROR: out.type = RedisReply::Type::kError; out.str.assign(r->str, r->len); break;
    case REDIS_REPLY_INTEGER: out.type = RedisReply::Type::kInteger; out.integer = r->integer; break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::kArray;
      out.elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(convert(r->element[i]));
      break;
    default: out.type = RedisReply::Type::kNil; break;
  }
  return out;
}

}  // namespace

RespReader::RespReader() : reader_(create_reader()) {}

RespReader::~RespReader() { redisReaderFree(as_reader(reader_)); }

bool RespReader::feed(const char* data, size_t n) { return redisReaderFeed(as_reader(reader_), data, n) == REDIS_OK; }

RespReader::Next RespReader::next(RedisReply& out) {
  void* r = nullptr;
  if (redisReaderGetReply(as_reader(reader_), &r) != REDIS_OK) return Next::kError;
  if (r == nullptr) return Next::kNeedMore;
  out = convert(static_cast<const redisReply*>(r));
  freeReplyObject(r);
  return Next::kReply;
}

std::string RespReader::error() const { return as_reader(reader_)->errstr; }

}  // namespace pgrelay::proxy
