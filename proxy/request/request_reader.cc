// Reading a client's messages into requests.
#include "proxy/request/request_reader.h"

#include <xxhash.h>

#include "protocol/messages.h"
#include "protocol/sqlstate.h"
#include "proxy/request/prepared_statements.h"

namespace pgrelay::proxy {
namespace {

namespace fe = protocol::frontend;

// Message types a client may send after startup.
bool is_frontend_type(char t) {
  switch (t) {
    case fe::kQuery: case fe::kParse: case fe::kBind: case fe::kDescribe: case fe::kExecute:
    case fe::kSync: case fe::kFlush: case fe::kClose: case fe::kTerminate: case fe::kCopyData:
    case fe::kCopyDone: case fe::kCopyFail: case fe::kFunctionCall:
      return true;
    default:
      return false;
  }
}

}  // namespace

RequestReader::RequestReader(AnalysisCache& analyses, Options options)
    : analyses_(analyses), options_(options), fwd_(options.max_message_size) {
  // Statement texts and names live in these: they arrive whole.
  for (char t : {fe::kQuery, fe::kParse, fe::kBind, fe::kDescribe, fe::kExecute, fe::kClose}) fwd_.framer().inspect(t);
}

Result<void> RequestReader::scan(std::span<std::byte> buf, size_t n) {
  ++scan_;
  requests_.clear();
  messages_.clear();
  auto scanned = fwd_.scan(buf, n, [&](const protocol::Frame& f) {
    if (!is_frontend_type(f.type)) {
      violation_ = protocol::ErrorSpec{"FATAL", std::string(sqlstate::kProtocolViolation),
                                       "invalid frontend message type " + std::to_string(uint8_t(f.type)), "", ""};
      return false;
    }
    if (f.type == fe::kTerminate) {
      terminated_ = true;
      return false;
    }
    classify(f, messages_.emplace_back());
    return true;
  });
  if (!scanned.ok()) return scanned.error();
  return {};
}

Request& RequestReader::current(RequestKind kind) {
  const uint32_t index = uint32_t(messages_.size() - 1);
  if (!requests_.empty() && !requests_.back().complete) return requests_.back();
  Request& r = requests_.emplace_back();
  r.kind = kind;
  r.first = index;
  r.end = index;
  if (open_ && kind == RequestKind::kExtended) {
    r.continued = true;   // the rest of a batch an earlier read began
    r.statements = open_statements_;
  }
  return r;
}

ClientStatementPtr RequestReader::make_statement(std::string_view name, std::string_view query,
                                                 protocol::Bytes param_types) {
  auto s = std::make_shared<ClientStatement>();
  s->name = name;
  s->analysis = analyses_.analyze(query, options_.lex);
  s->param_types_raw.assign(param_types.begin(), param_types.end());
  s->key = statement_key(s->analysis->hash, param_types);
  if (options_.server_names && !name.empty()) {
    s->server_name = StatementRouter::server_name_for(s->key);
    protocol::Writer w(s->server_parse);   // the parameter types go on as the client sent them
    const size_t mark = w.begin(fe::kParse);
    w.cstr(s->server_name);
    w.cstr(query);
    w.bytes(s->param_types());
    w.end(mark);
  }
  return s;
}

std::optional<std::vector<HandoffState::Statement>> RequestReader::export_statements() const {
  std::vector<HandoffState::Statement> out;
  out.reserve(statements_.size());
  for (const auto& [name, s] : statements_) {
    HandoffState::Statement st{.name = name, .query = {}, .param_types = s->param_types_raw};
    if (!s->server_parse.empty()) {   // the whole text, where the analysis may hold a cut one
      protocol::Reader rd(protocol::Bytes(s->server_parse).subspan(5));
      std::string_view server_name, query;
      if (!rd.cstr(server_name) || !rd.cstr(query)) return std::nullopt;
      st.query = query;
    } else if (!s->analysis->text_truncated) {
      st.query = s->analysis->text;
    } else {
      return std::nullopt;
    }
    out.push_back(std::move(st));
  }
  return out;
}

void RequestReader::adopt_statement(const HandoffState::Statement& st) {
  statements_[st.name] = make_statement(st.name, st.query, protocol::Bytes(st.param_types));
}

uint64_t statement_key(uint64_t text_hash, protocol::Bytes param_types) {
  return XXH3_64bits_withSeed(param_types.data(), param_types.size(), text_hash) | 1;
}

void RequestReader::classify(const protocol::Frame& f, ClientMessage& m) {
  const uint32_t index = uint32_t(messages_.size() - 1);
  switch (f.type) {
    case fe::kCopyData: case fe::kCopyDone: case fe::kCopyFail:
      return;   // the COPY of a request already sent
    case fe::kQuery: case fe::kFunctionCall: {
      // A Query inside an unsynced batch still ends with its own ReadyForQuery, which ends the
      // batch too: what follows is a new request, also when the batch began in an earlier read.
      if (!requests_.empty() && !requests_.back().complete) requests_.back().complete = true;
      open_ = false;
      Request& r = current(f.type == fe::kQuery ? RequestKind::kQuery : RequestKind::kFunctionCall);
      if (f.type == fe::kQuery) {
        // A simple Query replaces the unnamed statement and portal, as PostgreSQL does.
        statements_.erase(std::string());
        portals_.erase(std::string());
        if (auto q = protocol::decode_query(f.body); q.ok()) {
          m.analysis = analyses_.analyze(q->sql, options_.lex);
          r.statements = uint32_t(m.analysis->statement_count());
        }
      }
      r.end = index + 1;
      r.complete = true;
      m.request = uint32_t(requests_.size() - 1);
      return;
    }
    default:
      break;
  }
  // Extended protocol.
  Request& r = current(RequestKind::kExtended);
  r.end = index + 1;
  m.request = uint32_t(requests_.size() - 1);
  open_ = true;
  switch (f.type) {
    case fe::kParse: {
      protocol::Reader rd(f.body);
      std::string_view name, query;
      if (!rd.cstr(name) || !rd.cstr(query)) break;   // malformed: the server answers it
      auto s = make_statement(name, query, rd.rest());
      m.statement = s;
      m.analysis = s->analysis;
      // A named statement is never replaced: the server refuses the second Parse (42P05).
      if (!name.empty() && statements_.count(std::string(name))) {
        m.duplicate = true;
        break;
      }
      if (statements_.size() >= options_.max_names && !statements_.count(std::string(name))) statements_.clear();
      statements_[std::string(name)] = s;
      break;
    }
    case fe::kBind: {
      protocol::Reader rd(f.body);
      std::string_view portal, name;
      if (!rd.cstr(portal) || !rd.cstr(name)) break;
      auto it = statements_.find(std::string(name));
      if (it != statements_.end()) m.statement = it->second;
      if (portals_.size() >= options_.max_names && !portals_.count(std::string(portal))) portals_.clear();
      portals_[std::string(portal)] = Portal{m.statement, scan_, index};
      break;
    }
    case fe::kDescribe: {
      auto d = protocol::decode_describe(f.body);
      if (!d.ok()) break;
      if (d->kind == 'S') {
        if (auto it = statements_.find(std::string(d->name)); it != statements_.end()) m.statement = it->second;
      } else if (auto it = portals_.find(std::string(d->name)); it != portals_.end()) {
        m.statement = it->second.statement;
      }
      break;
    }
    case fe::kExecute: {
      ++r.statements;
      auto e = protocol::decode_execute(f.body);
      if (!e.ok()) break;
      auto it = portals_.find(std::string(e->portal));
      if (it == portals_.end()) break;
      m.statement = it->second.statement;
      if (m.statement) m.analysis = m.statement->analysis;
      if (it->second.scan == scan_) m.bind = it->second.bind;
      break;
    }
    case fe::kClose: {
      auto c = protocol::decode_close(f.body);
      if (!c.ok()) break;
      if (c->kind == 'S') statements_.erase(std::string(c->name));
      else portals_.erase(std::string(c->name));
      break;
    }
    case fe::kFlush:
      r.flush = true;
      break;
    case fe::kSync:
      r.complete = true;
      open_ = false;
      break;
    default:
      break;
  }
  open_statements_ = r.statements;
}

}  // namespace pgrelay::proxy
