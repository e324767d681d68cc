// Reading a client's messages into requests: framing, classification, prepared statements and portals.
//
// The client direction of a session reads a chunk, calls scan(), decides each request of the
// chunk (ClientSession::decide), and then, for what goes to a server, builds the bytes to send
// with forwarder().emit() after it has a server connection. The reader remembers, in every pool
// mode, what each of the client's prepared statements and portals stands for, so an Execute is
// known as the statement it runs and carries its analysis from the Parse.
//
// Pure: no I/O. Used from the session's own thread only.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "analyzer/lexer.h"
#include "protocol/error_fields.h"
#include "proxy/request/message_forwarder.h"
#include "proxy/request/handoff_state.h"
#include "proxy/request/request.h"
#include "proxy/request/statement_analysis.h"

namespace pgrelay::proxy {

class RequestReader {
 public:
  struct Options {
    uint32_t max_message_size = protocol::kDefaultMaxMessageSize;
    // Give named statements a shared server-side name and Parse (transaction/statement pooling).
    bool server_names = false;
    analyzer::LexOptions lex;
    // Statements and portals remembered per client; beyond, the oldest bookkeeping is dropped
    // (the server still has them; events then name no text).
    size_t max_names = 10000;
  };

  RequestReader(AnalysisCache& analyses, Options options);

  // Frames and classifies buf[0, held() + n) after n new bytes were read at buf + held().
  // Stops before a Terminate (terminated()) or a message no client may send (violation()).
  // Errors are the Framer's (bad length, too large); the stream is then unusable.
  Result<void> scan(std::span<std::byte> buf, size_t n);

  // The requests of the last scan, in order, and what is known of each message (parallel to
  // forwarder().scanned()).
  const std::vector<Request>& requests() const { return requests_; }
  std::vector<Request>& requests() { return requests_; }
  const std::vector<ClientMessage>& messages() const { return messages_; }
  bool terminated() const { return terminated_; }
  const std::optional<protocol::ErrorSpec>& violation() const { return violation_; }

  // A request is open: it began and its Sync has not come yet.
  bool request_open() const { return open_; }

  MessageForwarder& forwarder() { return fwd_; }
  const MessageForwarder& forwarder() const { return fwd_; }
  size_t held() const { return fwd_.held(); }

  // The client's protocol-level statement `name` (null when unknown), and forgetting it (SQL
  // DEALLOCATE of it, answered by pgrelay in transaction pooling).
  ClientStatementPtr statement(const std::string& name) const {
    auto it = statements_.find(name);
    return it == statements_.end() ? nullptr : it->second;
  }
  void forget_statement(const std::string& name) { statements_.erase(name); }
  // The server refused or skipped the Parse that made `s`: its name is the client's no more
  // (unless a later Parse made it stand for another statement since).
  void forget_failed(const ClientStatementPtr& s) {
    auto it = statements_.find(s->name);
    if (it != statements_.end() && it->second == s) statements_.erase(it);
  }
  // DISCARD ALL / DEALLOCATE ALL ran: every prepared statement of the client is gone.
  void forget_statements() { statements_.clear(); }
  // Online restart (HandoffState): the client's statements with their whole texts, nullopt when
  // one is known only by a cut text; and, in the process that adopts the client, each made again
  // under its name (no server has it yet: routing prepares it where it is first used).
  std::optional<std::vector<HandoffState::Statement>> export_statements() const;
  void adopt_statement(const HandoffState::Statement& statement);
  // Named prepared statements it knows (the unnamed one not counted).
  size_t named_statements() const { return statements_.size() - statements_.count(std::string()); }

 private:
  void classify(const protocol::Frame& f, ClientMessage& m);
  Request& current(RequestKind kind);
  // A statement `name` stands for; with server_names, its shared server-side name and Parse.
  ClientStatementPtr make_statement(std::string_view name, std::string_view query, protocol::Bytes param_types);

  AnalysisCache& analyses_;
  Options options_;
  MessageForwarder fwd_;
  std::vector<Request> requests_;
  std::vector<ClientMessage> messages_;
  bool terminated_ = false;
  std::optional<protocol::ErrorSpec> violation_;
  bool open_ = false;                 // an extended request continues from an earlier read
  uint32_t open_statements_ = 0;
  uint64_t scan_ = 0;                 // which scan() this is, for Bind indexes

  struct Portal {
    ClientStatementPtr statement;
    uint64_t scan = 0;                // the scan() its Bind came in
    uint32_t bind = kNoIndex;         // its index there
  };
  std::unordered_map<std::string, ClientStatementPtr> statements_;   // "" is the unnamed one
  std::unordered_map<std::string, Portal> portals_;
};

}  // namespace pgrelay::proxy
