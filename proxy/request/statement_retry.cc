// Sending a request again after the server rejected a stale shared prepared statement.
#include "proxy/request/statement_retry.h"

#include "protocol/error_fields.h"
#include "protocol/messages.h"

namespace pgrelay::proxy {
namespace {

namespace fe = protocol::frontend;
namespace be = protocol::backend;

}  // namespace

void StatementRetry::begin() {
  messages_.clear();   // capacities stay: no allocation per request once warm
  bodies_.clear();
  answered_ = 0;
  shared_use_ = false;
  armed_ = true;
  stale_ = ready_ = false;
}

void StatementRetry::add(char type, protocol::Bytes body, ClientStatementPtr statement) {
  if ((type == fe::kBind || type == fe::kDescribe) && statement && !statement->server_name.empty())
    shared_use_ = true;
  messages_.push_back({type, bodies_.size(), body.size(), std::move(statement)});
  bodies_.insert(bodies_.end(), body.begin(), body.end());
}

bool StatementRetry::stale_statement_error(protocol::Bytes error_body) {
  auto e = protocol::decode_error_notice(error_body);
  if (!e.ok() || e->is_fatal()) return false;
  // By SQLSTATE, not message text: lc_messages may translate it. Only errors before anything ran
  // get here (see on_server_message), so a different 0A000 costs one more try, nothing else.
  return e->sqlstate == "0A000" || e->sqlstate == "XX000" || e->sqlstate == "26000";
}

bool StatementRetry::marks_stale(protocol::Bytes error_body, const ExpectedReply* next) {
  return next && (next->request == fe::kBind || next->request == fe::kDescribe) && stale_statement_error(error_body);
}

StatementRetry::Step StatementRetry::on_server_message(char type, protocol::Bytes body, const ExpectedReply* next,
                                                       int in_flight) {
  if (type == be::kNoticeResponse || type == be::kNotificationResponse || type == be::kParameterStatus)
    return Step::kPass;   // not replies
  if (stale_) {
    // The server skips the rest up to Sync; its ReadyForQuery ends the failed attempt.
    if (type == be::kReadyForQuery) ready_ = true;
    return Step::kSwallow;
  }
  const bool hidden = next && next->action == ReplyAction::kDrop;   // pgrelay's own Parse or Close
  switch (type) {
    case be::kParseComplete:
    case be::kCloseComplete:
      if (!hidden) ++answered_;
      return Step::kPass;
    case be::kErrorResponse:
      if (in_flight == 1 && stale_statement_error(body)) {
        stale_ = true;
        return Step::kSwallow;
      }
      break;
    default:
      break;
  }
  disarm();   // a reply with content, or the end: from here on it is the client's
  return Step::kPass;
}

void StatementRetry::build(ServerStatements& server, ReplyQueue& replies, protocol::Buffer& out) {
  // Every shared statement may be stale: close them all (closing is never an error).
  for (const std::string& name : server.names()) {
    protocol::encode(protocol::Close{'S', name}, out);
    replies.push({fe::kClose, ReplyAction::kDrop, {}});
  }
  const uint64_t unnamed = server.unnamed;
  server.clear();
  server.unnamed = unnamed;   // the unnamed statement is the client's own, not shared
  // From the message that failed: the first one whose reply the client has not seen (a Flush
  // gets no reply of its own).
  uint32_t skip = answered_;
  for (const Message& m : messages_) {
    if (skip > 0 && m.type != fe::kFlush) {
      --skip;
      continue;
    }
    protocol::Bytes body(bodies_.data() + m.offset, m.length);
    if (StatementRouter::route(m.type, body, m.statement, server, replies, out)) continue;
    protocol::Writer w(out);
    const size_t mark = w.begin(m.type);
    w.bytes(body);
    w.end(mark);
  }
  disarm();
}

}  // namespace pgrelay::proxy
