// Sending a request again after the server rejected a shared prepared statement made stale by
// DDL pgrelay did not see (transaction and statement pooling).
//
// A server-side statement that pgrelay shares between clients was prepared before an ALTER
// TABLE or a DROP/CREATE TYPE made elsewhere; straight to PostgreSQL a new connection would
// prepare afresh and never see the error, so pgrelay must not show it either. When a request that
// starts outside a transaction, alone on its connection, and whose client-visible replies so far
// are only ParseComplete/CloseComplete, fails at the Bind or Describe of a shared statement with
// 0A000 ("cached plan must not change result type"), XX000 ("cache lookup failed for type") or
// 26000, the error and its ReadyForQuery are kept from the client; the session then closes the
// connection's shared statements and sends the request again from the message that failed, its
// statements prepared afresh. Nothing has run yet at that point (an error before any
// BindComplete means no Execute did), so sending again is safe. Once per request.
//
// Pure: no I/O. The session records each eligible request, shows the record every server
// message, and builds the bytes to send again.
#pragma once

#include <cstdint>
#include <vector>

#include "protocol/bytes.h"
#include "proxy/request/prepared_statements.h"
#include "proxy/request/request.h"

namespace pgrelay::proxy {

class StatementRetry {
 public:
  // A new request that may be sent again: forgets the last one.
  void begin();
  // One client message of it, in order (the bytes are copied).
  void add(char type, protocol::Bytes body, ClientStatementPtr statement);
  // Whether what was added can fail on a stale shared statement (a Bind or Describe of one); if
  // not, the record is dropped at once and costs nothing more.
  bool worth_keeping() const { return shared_use_; }
  void disarm() { armed_ = false; stale_ = false; }
  bool armed() const { return armed_; }

  enum class Step : uint8_t {
    kPass,      // handle and forward the message as usual
    kSwallow,   // the client must not see it (the stale error and its ReadyForQuery)
  };
  // A server message of `type` while armed. `next` is what the ReplyQueue expects next (null
  // when nothing), `in_flight` the requests in flight on the connection.
  Step on_server_message(char type, protocol::Bytes body, const ExpectedReply* next, int in_flight);
  // The stale error and its ReadyForQuery have been swallowed: send again.
  bool ready() const { return armed_ && ready_; }

  // The bytes that send the request again from the message that failed, routed for `server`,
  // after Close messages (replies dropped) for every shared statement `server` has, which it then
  // forgets. Disarms.
  void build(ServerStatements& server, ReplyQueue& replies, protocol::Buffer& out);

  // A server error that says a shared statement is stale (or gone): 0A000, XX000, 26000.
  static bool stale_statement_error(protocol::Bytes error_body);
  // The same error answering a Bind or Describe (`next`, the reply the queue expects): shared
  // statements may be stale everywhere.
  static bool marks_stale(protocol::Bytes error_body, const ExpectedReply* next);

 private:
  struct Message {
    char type;
    size_t offset, length;       // its body in bodies_
    ClientStatementPtr statement;
  };
  std::vector<Message> messages_;
  protocol::Buffer bodies_;
  uint32_t answered_ = 0;   // client messages answered with a reply the client has seen
  bool shared_use_ = false;
  bool armed_ = false;
  bool stale_ = false;      // the stale error came: swallowing until its ReadyForQuery
  bool ready_ = false;
};

}  // namespace pgrelay::proxy
