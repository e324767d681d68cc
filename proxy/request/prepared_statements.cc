// Prepared statements under transaction and statement pooling.
#include "proxy/request/prepared_statements.h"

#include <xxhash.h>

#include <cstdio>

#include "protocol/messages.h"

namespace pgrelay::proxy {
namespace {

namespace fe = protocol::frontend;
namespace be = protocol::backend;

bool is_extended(char request) {
  return request == fe::kParse || request == fe::kBind || request == fe::kDescribe ||
         request == fe::kExecute || request == fe::kClose;
}

void append_close_statement(std::string_view name, protocol::Buffer& out) {
  protocol::encode(protocol::Close{'S', name}, out);
}

}  // namespace

// ---- ServerStatements ----

void ServerStatements::touch(const std::string& name) {
  auto it = index_.find(name);
  if (it != index_.end()) lru_.splice(lru_.begin(), lru_, it->second);
}

std::optional<std::string> ServerStatements::insert(const std::string& name) {
  if (contains(name)) {
    touch(name);
    return std::nullopt;
  }
  lru_.push_front(name);
  index_[name] = lru_.begin();
  if (index_.size() <= capacity_ || lru_.size() <= 1) return std::nullopt;
  std::string evicted = lru_.back();
  index_.erase(evicted);
  lru_.pop_back();
  return evicted;
}

void ServerStatements::erase(const std::string& name) {
  auto it = index_.find(name);
  if (it == index_.end()) return;
  lru_.erase(it->second);
  index_.erase(it);
}

// ---- ReplyQueue ----

void ReplyQueue::expect(char type, ClientStatementPtr parsed) {
  switch (type) {
    case fe::kParse:
      push({type, ReplyAction::kForward, {}, parsed && parsed->name.empty(), std::move(parsed)});
      return;
    case fe::kBind: case fe::kDescribe: case fe::kExecute: case fe::kClose: case fe::kSync: case fe::kQuery:
    case fe::kFunctionCall:
      push({type, ReplyAction::kForward, {}});
      return;
    default:
      return;   // Flush, COPY data, Terminate: no reply of their own
  }
}

void ReplyQueue::forget(const ExpectedReply& r, ServerStatements& server, ReplyFailures* failures) {
  if (!r.prepares.empty()) server.erase(r.prepares);
  if (r.unnamed) server.unnamed = 0;
  if (!failures) return;
  if (r.parsed) failures->parses.push_back(r.parsed);
  if (r.request == fe::kQuery || r.request == fe::kFunctionCall) ++failures->skipped_requests;
}

ReplyAction ReplyQueue::on_reply(char type, ServerStatements& server, ReplyFailures* failures) {
  if (type == be::kNoticeResponse || type == be::kNotificationResponse || type == be::kParameterStatus ||
      q_.empty())
    return ReplyAction::kForward;
  ExpectedReply& head = q_.front();
  auto pop = [&] {
    ReplyAction a = head.action;
    q_.pop_front();
    return a;
  };
  switch (type) {
    case be::kErrorResponse:
      if (!is_extended(head.request)) return ReplyAction::kForward;   // Query/Sync/FunctionCall end at 'Z'
      // The server now skips everything up to the next Sync, a Query included (only Sync clears
      // PostgreSQL's ignore_till_sync): none of it will be answered.
      forget(head, server, failures);
      q_.pop_front();
      while (!q_.empty() && q_.front().request != fe::kSync) {
        forget(q_.front(), server, failures);
        q_.pop_front();
      }
      return ReplyAction::kForward;   // even for a hidden Parse: the client must learn it failed
    case be::kReadyForQuery:
      if (head.request == fe::kSync || head.request == fe::kQuery || head.request == fe::kFunctionCall) pop();
      return ReplyAction::kForward;
    case be::kParseComplete:
      return head.request == fe::kParse ? pop() : ReplyAction::kForward;
    case be::kBindComplete:
      return head.request == fe::kBind ? pop() : ReplyAction::kForward;
    case be::kCloseComplete:
      return head.request == fe::kClose ? pop() : ReplyAction::kForward;
    case be::kRowDescription:
    case be::kNoData:
      // Ends a Describe; a RowDescription inside a simple Query does not.
      return head.request == fe::kDescribe ? pop() : ReplyAction::kForward;
    case be::kCommandComplete:
    case be::kEmptyQueryResponse:
    case be::kPortalSuspended:
      return head.request == fe::kExecute ? pop() : ReplyAction::kForward;
    default:
      return ReplyAction::kForward;   // rows, ParameterDescription, COPY traffic, FunctionCallResponse
  }
}

// ---- StatementRouter ----

std::string StatementRouter::server_name_for(uint64_t key) {
  char name[32];
  std::snprintf(name, sizeof name, "pgrelay_%016llx", static_cast<unsigned long long>(key));
  return name;
}

std::string StatementRouter::server_name_for(std::string_view query, protocol::Bytes param_types_raw) {
  return server_name_for(statement_key(XXH3_64bits(query.data(), query.size()), param_types_raw));
}

void StatementRouter::ensure_prepared(const ClientStatement& s, ServerStatements& server, ReplyQueue& replies,
                                      protocol::Buffer& out) {
  if (server.contains(s.server_name)) {
    server.touch(s.server_name);
    return;
  }
  if (auto evicted = server.insert(s.server_name)) {
    append_close_statement(*evicted, out);
    replies.push({fe::kClose, ReplyAction::kDrop, {}});
  }
  out.insert(out.end(), s.server_parse.begin(), s.server_parse.end());
  replies.push({fe::kParse, ReplyAction::kDrop, s.server_name});
}

bool StatementRouter::ensure_unnamed(const ClientStatement* statement, ServerStatements& server, ReplyQueue& replies,
                                     protocol::Buffer& out) {
  if (!statement) {
    // The client has no unnamed statement (its Parse failed, a Query replaced it): whatever the
    // connection has is another client's. Closed first, the server answers 26000 as it would.
    append_close_statement("", out);
    replies.push({fe::kClose, ReplyAction::kDrop, {}});
    server.unnamed = 0;
    return true;
  }
  const ClientStatement& s = *statement;
  if (server.unnamed == s.key || s.key == 0) return false;
  if (!s.analysis || s.analysis->text_truncated) return false;   // the text is not kept: the server decides
  protocol::Writer w(out);
  const size_t mark = w.begin(fe::kParse);
  w.cstr("");
  w.cstr(s.analysis->text);
  w.bytes(s.param_types());
  w.end(mark);
  replies.push({fe::kParse, ReplyAction::kDrop, {}, true});
  server.unnamed = s.key;
  return true;
}

bool StatementRouter::route(char type, protocol::Bytes body, const ClientStatementPtr& statement, ServerStatements& server,
                            ReplyQueue& replies, protocol::Buffer& out) {
  const bool shared = statement && !statement->server_name.empty();
  const bool unnamed = statement && statement->name.empty();
  switch (type) {
    case fe::kQuery:
      server.unnamed = 0;   // a simple Query destroys the unnamed statement
      break;
    case fe::kParse: {
      if (unnamed) {
        server.unnamed = statement->key;
        replies.expect(fe::kParse, statement);
        return false;
      }
      if (!shared) break;   // malformed: the server decides
      const ClientStatement& s = *statement;
      if (server.contains(s.server_name)) {
        // Already there: a no-op Close answers in its place, shown to the client as ParseComplete.
        server.touch(s.server_name);
        append_close_statement(kNoopStatement, out);
        replies.push({fe::kClose, ReplyAction::kAsParseComplete, {}});
      } else {
        if (auto evicted = server.insert(s.server_name)) {
          append_close_statement(*evicted, out);
          replies.push({fe::kClose, ReplyAction::kDrop, {}});
        }
        out.insert(out.end(), s.server_parse.begin(), s.server_parse.end());
        replies.push({fe::kParse, ReplyAction::kForward, s.server_name, false, statement});
      }
      return true;
    }
    case fe::kBind: {
      protocol::Reader r(body);
      std::string_view portal, name;
      if (!r.cstr(portal) || !r.cstr(name)) break;   // malformed: the server answers
      if (name.empty()) {
        if (!ensure_unnamed(statement.get(), server, replies, out)) break;
        protocol::Writer w(out);   // the Bind itself, as it came
        const size_t mark = w.begin(fe::kBind);
        w.bytes(body);
        w.end(mark);
        replies.push({fe::kBind, ReplyAction::kForward, {}});
        return true;
      }
      if (!shared) break;   // not ours: the server answers
      ensure_prepared(*statement, server, replies, out);
      protocol::Writer w(out);
      size_t mark = w.begin(fe::kBind);
      w.cstr(portal);
      w.cstr(statement->server_name);
      w.bytes(r.rest());
      w.end(mark);
      replies.push({fe::kBind, ReplyAction::kForward, {}});
      return true;
    }
    case fe::kDescribe: {
      auto d = protocol::decode_describe(body);
      if (!d.ok() || d->kind != 'S') break;
      if (d->name.empty()) {
        if (!ensure_unnamed(statement.get(), server, replies, out)) break;
        protocol::encode(protocol::Describe{'S', ""}, out);
        replies.push({fe::kDescribe, ReplyAction::kForward, {}});
        return true;
      }
      if (!shared) break;
      ensure_prepared(*statement, server, replies, out);
      protocol::encode(protocol::Describe{'S', statement->server_name}, out);
      replies.push({fe::kDescribe, ReplyAction::kForward, {}});
      return true;
    }
    case fe::kClose:
      // Server-side statements are shared: the client's Close goes through as it is (closing a
      // name the server lacks is not an error), and RequestReader forgets the client's name.
    default:
      break;
  }
  replies.expect(type);
  return false;
}

}  // namespace pgrelay::proxy
