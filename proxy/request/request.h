// A request from the client, classified before a server connection is taken.
//
// The unit the proxy decides on is what the server answers with one ReadyForQuery: a simple
// Query (any number of statements), an extended-protocol batch up to its Sync (Parse, Bind,
// Describe, Execute, Close, Flush), or a FunctionCall. RequestReader (request_reader.h) reads
// a client's messages chunk by chunk and tags each with the request it belongs to and the
// statement it names, so the session can decide a whole request (answer it locally or send it
// to a pool) before it takes a server connection, and route it afterwards.
//
// Views (bodies, names, Bind parameters) point into the chunk just read and are valid until the
// next scan; analyses and ClientStatements are shared and immutable.
//
// https://www.postgresql.org/docs/15/protocol-flow.html
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>

#include "protocol/bytes.h"
#include "proxy/request/statement_analysis.h"

namespace pgrelay::proxy {

// A client's protocol-level prepared statement: what its name stands for. Immutable: a new Parse
// of the same name makes a new one, so a message tagged with the old one keeps it.
struct ClientStatement {
  std::string name;                   // the client's name for it ("" = the unnamed statement)
  AnalysisPtr analysis;
  uint64_t key = 0;                   // statement_key(): the same statement anywhere, whoever parsed it
  protocol::Bytes param_types() const { return protocol::Bytes(param_types_raw); }
  protocol::Buffer param_types_raw;   // the Parse's parameter-type list as sent (count and OIDs)
  // Transaction and statement pooling: the shared server-side name for (text, parameter types)
  // and the Parse that creates it under that name (StatementRouter). Empty otherwise.
  std::string server_name;
  protocol::Buffer server_parse;
};
using ClientStatementPtr = std::shared_ptr<const ClientStatement>;

// What identifies a prepared statement across clients and connections: its text (by the
// analysis' XXH3-64 `text_hash`) and its parameter types as sent. Never 0.
uint64_t statement_key(uint64_t text_hash, protocol::Bytes param_types);

enum class RequestKind : uint8_t {
  kQuery,          // simple Query: one ReadyForQuery
  kExtended,       // Parse/Bind/Describe/Execute/Close/Flush ... Sync
  kFunctionCall,   // FunctionCall: one ReadyForQuery
};

inline constexpr uint32_t kNoIndex = std::numeric_limits<uint32_t>::max();

// One request of a chunk: its messages are scanned()[first, end) of the read that found them
// (a request may continue over several reads: then `complete` is false until its last one).
struct Request {
  RequestKind kind = RequestKind::kQuery;
  uint32_t first = 0, end = 0;
  bool complete = false;    // its last message (Query, Sync, FunctionCall) is in this read
  bool continued = false;   // it began in an earlier read, which already decided it
  bool flush = false;       // it asks the server to answer so far (Flush) before its Sync
  uint32_t statements = 0;  // Executes in it, or the statements of its Query text
  char tx_status = 0;       // the transaction status it starts in ('I', 'T', 'E'), set by the
                            // session when it decides the request; 0: unknown (requests ahead)
};

// What RequestReader knows of one client message, parallel to the forwarder's scanned frames.
struct ClientMessage {
  uint32_t request = kNoIndex;     // its request in this read; kNoIndex for COPY traffic
  // Query: its text's analysis. Parse: the query's. Execute: the portal's statement's (null
  // when the portal is unknown, e.g. bound before a reconnect of pgrelay's bookkeeping).
  AnalysisPtr analysis;
  // Parse: the statement it creates. Bind, Describe 'S', Execute: the one it names or runs.
  ClientStatementPtr statement;
  uint32_t bind = kNoIndex;        // Execute: the index of its portal's Bind in this read, if here
  // Parse: of a name the client already has, which PostgreSQL refuses (42P05) once the text
  // parses; `statement` is then the refused one, and the name keeps standing for the old one.
  bool duplicate = false;
};

}  // namespace pgrelay::proxy
