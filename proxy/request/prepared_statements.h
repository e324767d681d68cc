// Prepared statements under transaction and statement pooling: client names -> server names,
// what each server connection has prepared, and which server replies the client must see.
//
// A client's named statement lives on whichever server connection it happened to use, so
// pgrelay renames it: every distinct (query text, parameter types) gets one server-side name,
// "pgrelay_" + 16 hex digits of its hash, shared by all clients. A Bind or Describe of a name
// the current server connection has not prepared gets a Parse injected in front of it, whose
// ParseComplete the client never sees. A Parse of something the server already has becomes a
// no-op Close whose CloseComplete is passed to the client as ParseComplete, so every request
// still gets exactly one real reply, in order. The unnamed statement keeps its empty name, but
// moves the same way: a Bind or Describe of it on a connection whose unnamed statement is
// another (another client parsed one since, or it never had this one) gets the client's Parse
// injected first. Pure: no I/O.
#pragma once

#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "protocol/bytes.h"
#include "proxy/request/request.h"

namespace pgrelay::proxy {

// A name pgrelay never prepares: closing it is a no-op that still gets a CloseComplete.
inline constexpr std::string_view kNoopStatement = "pgrelay_noop";

// The statements prepared on one server connection, least recently used first out.
class ServerStatements {
 public:
  explicit ServerStatements(size_t capacity = 200) : capacity_(capacity) {}
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  void touch(const std::string& name);
  // Adds `name`; returns the name evicted to stay within capacity, if any.
  std::optional<std::string> insert(const std::string& name);
  void erase(const std::string& name);
  void clear() { lru_.clear(); index_.clear(); unnamed = 0; }
  size_t size() const { return index_.size(); }
  // Its statements, most recently used first.
  const std::list<std::string>& names() const { return lru_; }
  // Set once, while empty (the pool does it when it opens the connection).
  void set_capacity(size_t c) { capacity_ = c; }

  // Which statement the connection has as its unnamed one (ClientStatement::key), whoever
  // parsed it; 0 when none or unknown. A simple Query destroys it, as any new unnamed Parse
  // replaces it.
  uint64_t unnamed = 0;

 private:
  size_t capacity_;
  std::list<std::string> lru_;   // front: most recently used
  std::unordered_map<std::string, std::list<std::string>::iterator> index_;
};

enum class ReplyAction : uint8_t { kForward, kDrop, kAsParseComplete };

// One request sent to the server whose reply is still to come.
struct ExpectedReply {
  char request = 0;              // frontend message type
  ReplyAction action = ReplyAction::kForward;
  std::string prepares;          // a Parse: the server name it creates (forgotten if it fails)
  bool unnamed = false;          // a Parse of the unnamed statement (forgotten if it fails)
  ClientStatementPtr parsed{};   // the client's own Parse: what its name stands for (the client
                                 // loses the name if it fails, as PostgreSQL never creates it)
};

// What an extended-protocol error cost, besides the message that failed (ReplyQueue::on_reply).
struct ReplyFailures {
  // Query and FunctionCall requests the server skips up to the Sync: no ReadyForQuery for them.
  uint32_t skipped_requests = 0;
  // The client Parses that failed or were skipped: the names PostgreSQL never created.
  std::vector<ClientStatementPtr> parses;
};

// The requests in flight on one server connection, in order, and what to do with replies.
class ReplyQueue {
 public:
  void push(ExpectedReply r) { q_.push_back(std::move(r)); }
  // A client message of `type` sent as it is: what answers it, if anything does (Flush and COPY
  // traffic get nothing of their own). `parsed`: a Parse's statement.
  void expect(char type, ClientStatementPtr parsed = nullptr);
  bool empty() const { return q_.empty(); }
  size_t size() const { return q_.size(); }
  void clear() { q_.clear(); }
  // The request whose reply comes next; null when none is expected.
  const ExpectedReply* front() const { return q_.empty() ? nullptr : &q_.front(); }

  // What to do with one server message of `type`. Pops the request it completes; after an
  // error in the extended protocol also pops what the server skips up to the next Sync, and
  // erases from `server` any statement those Parses were to create; `failures`, when given,
  // learns what that error cost the client. Messages that are not replies (notices,
  // notifications, ParameterStatus) and anything unexpected are forwarded.
  ReplyAction on_reply(char type, ServerStatements& server, ReplyFailures* failures = nullptr);

 private:
  void forget(const ExpectedReply& r, ServerStatements& server, ReplyFailures* failures);
  std::deque<ExpectedReply> q_;
};

// The rewriting of a client's messages for the server connection in hand. The client's names
// and what they stand for are RequestReader's (ClientStatement, with the server-side name and
// Parse); the router only makes the connection have what a message needs.
class StatementRouter {
 public:
  // For one client message of `type` with `body` (transaction/statement mode), where
  // `statement` is what RequestReader tagged it with (Parse: the statement it creates; Bind and
  // Describe 'S': the one they name; null when unknown or unnamed): records the replies to
  // expect in `replies` and, when the server must get something else than the message itself,
  // appends that to `out` and returns true. False: send the message as is.
  static bool route(char type, protocol::Bytes body, const ClientStatementPtr& statement, ServerStatements& server,
                    ReplyQueue& replies, protocol::Buffer& out);

  // The server name for a statement_key(): "pgrelay_" and its 16 hex digits.
  static std::string server_name_for(uint64_t key);
  // The same for a query text and its parameter types (for tests and tools).
  static std::string server_name_for(std::string_view query, protocol::Bytes param_types_raw);

 private:
  // Makes sure `s` exists on `server`, injecting a hidden Parse (and an eviction Close) if not.
  static void ensure_prepared(const ClientStatement& s, ServerStatements& server, ReplyQueue& replies,
                              protocol::Buffer& out);
  // The same for the client's unnamed statement `s`; true when something was injected: its
  // Parse, or, when the client has none (null), a Close of the connection's.
  static bool ensure_unnamed(const ClientStatement* s, ServerStatements& server, ReplyQueue& replies,
                             protocol::Buffer& out);
};

}  // namespace pgrelay::proxy
