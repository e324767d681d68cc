// A client's session state on shared server connections: screening statements, pins, refusals,
// and RESET going back to the client's startup values.
#include <algorithm>

#include "analyzer/lexer.h"
#include "analyzer/session_state.h"
#include "protocol/messages.h"
#include "protocol/sqlstate.h"
#include "proxy/session/client_session.h"
#include "proxy/base/log.h"

namespace pgrelay::proxy {
namespace {

namespace fe = protocol::frontend;

bool is_setting(analyzer::EffectKind k) {
  return k == analyzer::EffectKind::kSetParameterFromCurrent || k == analyzer::EffectKind::kSetConfigNonLiteral;
}

}  // namespace

void ClientSession::note_refusal(analyzer::EffectKind kind) {
  pool_->count_refusal();
  log_info("client ", id_, " ", peer_, ": refused ", analyzer::feature_name(kind), " (session_state = \"reject\")");
}

protocol::ErrorSpec ClientSession::refusal(const analyzer::Effect& pin) const {
  const std::string feature(analyzer::feature_name(pin.kind));
  return protocol::ErrorSpec{
      "ERROR", std::string(sqlstate::kFeatureNotSupported),
      feature + " is not supported in " + conf::to_string(mode_) + " pooling mode with session_state = \"reject\"",
      "It would leave state on a server connection that other clients share.",
      is_setting(pin.kind) ? "Use SET LOCAL inside a transaction, or set session_state = \"pin\" for database \"" +
                                 database_ + "\" in pgrelay's configuration."
                           : "Set session_state = \"pin\" (or pool_mode = \"session\") for database \"" + database_ +
                                 "\" in pgrelay's configuration."};
}

bool ClientSession::screen_statement(char type, const StatementAnalysis& analysis, const ClientStatementPtr& statement,
                                     protocol::Buffer& replacement) {
  const auto& effects = analysis.effects;
  if (!effects.any() && analysis.tx_controls.empty()) return false;

  const bool shared = mode_ != conf::PoolMode::kSession;
  if (shared && effects.any() && pool_->settings().session_state == conf::SessionStatePolicy::kReject) {
    if (auto pin = SessionTracker::first_pinning(effects)) {
      // Refused before it runs. Outside a transaction decide() answered it already; here the
      // server gets a statement it rejects at parse time, so the error lands where PostgreSQL's
      // own would (the transaction aborts, the rest of an extended-protocol batch is skipped
      // until Sync); the pump puts ours in its place.
      refuse_at_server(type, refusal(*pin), statement, replacement);
      note_refusal(pin->kind);
      return true;
    }
  }
  const bool newly_pinned =
      session_state_->on_sent(effects, reported_params(), analysis.tx_controls);
  if (shared && newly_pinned && !pinned_out_) {
    pool_->pin_out(session_state_->pin_reason());
    pinned_out_ = true;
    const std::string name = statement ? statement->name : std::string();
    log_info("client ", id_, " ", peer_, ": pinned to server connection ", server_->target().describe(), " by ",
             session_state_->pin_reason(), " (",
             analyzer::class_name(effects.statement_count() > 0 ? effects.statement_class(0)
                                                                : analyzer::StatementClass::kOther),
             " statement", name.empty() ? "" : " \"" + name + "\"", ")");
  }
  return false;
}

void ClientSession::refuse_at_server(char type, protocol::ErrorSpec error, const ClientStatementPtr& parsed,
                                     protocol::Buffer& replacement) {
  const std::string marker = "pgrelay_refused_" + std::to_string(++exchange_->rejections_made);
  exchange_->rejections.emplace_back(marker, std::move(error));
  if (type == fe::kQuery) {
    protocol::encode(protocol::Query{marker}, replacement);
    server_->replies.expect(fe::kQuery);
    server_->statements.unnamed = 0;   // a simple Query destroys the unnamed statement
  } else {
    // It replaces the connection's unnamed statement; the client's Parse is not made.
    protocol::encode(protocol::Parse{"", marker, {}}, replacement);
    server_->replies.push({fe::kParse, ReplyAction::kForward, {}, true, parsed});
    server_->statements.unnamed = 0;
  }
}

void ClientSession::refuse_duplicate_parse(protocol::Bytes body, const ClientStatementPtr& parsed,
                                           protocol::Buffer& replacement) {
  // PostgreSQL parses and analyzes the text before it looks for the name: a text that fails
  // fails with its own error. So the text goes first as the unnamed statement (its
  // ParseComplete dropped), then a Parse the server refuses, whose error becomes 42P05.
  protocol::Reader r(body);
  std::string_view name, query;
  if (r.cstr(name) && r.cstr(query)) {
    protocol::Writer w(replacement);
    const size_t mark = w.begin(fe::kParse);
    w.cstr("");
    w.cstr(query);
    w.bytes(r.rest());
    w.end(mark);
    server_->replies.push({fe::kParse, ReplyAction::kDrop, {}, true});
  }
  protocol::ErrorSpec e{"ERROR", std::string(sqlstate::kDuplicatePreparedStatement),
                        "prepared statement \"" + parsed->name + "\" already exists", "", ""};
  refuse_at_server(fe::kParse, std::move(e), nullptr, replacement);
}

bool ClientSession::rejected_error(protocol::Bytes body, protocol::Buffer& replacement) {
  auto e = protocol::decode_error_notice(body);
  if (!e.ok()) return false;
  for (auto it = exchange_->rejections.begin(); it != exchange_->rejections.end(); ++it) {
    if (e->message.find(it->first) == std::string::npos) continue;
    protocol::encode_error_response(it->second, replacement);
    exchange_->rejections.erase(it);
    return true;
  }
  return false;
}

void ClientSession::settle_session_state(char tx_status, protocol::Bytes rfq_body, protocol::Buffer& replacement) {
  if (server_ && server_->in_flight <= 1) exchange_->rejections.clear();   // skipped ones never answer
  const auto settled = session_state_->on_ready(tx_status);
  if (settled.unpinned && pinned_out_) {
    pool_->pin_in();
    pinned_out_ = false;
    log_info("client ", id_, " ", peer_, ": session state cleared, back to sharing server connections");
  }
  // The SETs it remembers ran here (or were applied when it attached): the server carries them,
  // and the next client of this connection has them RESET unless it wants them too.
  if (settled.sets_changed && server_ && session_state_->sets())
    for (const auto& [name, value] : *session_state_->sets()) server_->applied_settings[name] = value.as_sql();
  if (!settled.reset_all && settled.reset_names.empty()) return;

  // The server went back to its own defaults; PostgreSQL would go back to what the client
  // asked for at startup. pgrelay's SETs on this connection are gone too.
  auto reset = [&](const std::string& name) {
    return settled.reset_all ||
           std::find(settled.reset_names.begin(), settled.reset_names.end(), name) != settled.reset_names.end();
  };
  if (server_) {
    if (settled.reset_all) {
      server_->applied_settings.clear();
    } else {
      for (const auto& name : settled.reset_names) server_->applied_settings.erase(name);
    }
  }
  for (const auto& s : *startup_settings_) {
    if (!reset(s.name)) continue;
    server_stale_ = true;   // resync_server() (or the next attach) SETs it again
    if (!client_params_) continue;
    for (const auto& [name, value] : *client_params_) {
      if (!analyzer::iequals(name, s.name) || value == s.value) continue;   // s.name is lower case
      const std::string reported = name;   // copied: set_client_param replaces the map
      set_client_param(reported, s.value);
      protocol::encode(protocol::ParameterStatus{reported, s.value}, replacement);
      break;
    }
  }
  if (!replacement.empty()) protocol::encode(protocol::ReadyForQuery{rfq_body.empty() ? 'I' : char(rfq_body[0])}, replacement);
}

awaitable<bool> ClientSession::audit_settings(ServerConnection& server) {
  auto rows = co_await server.query_rows(
      "SELECT pg_catalog.lower(name), setting FROM pg_catalog.pg_settings WHERE source = 'session'", {});
  server.statements.unnamed = 0;   // the audit used the unnamed statement
  if (!rows.ok()) {
    log_warning("client ", id_, " ", peer_, ": reading the settings a DO or CALL left failed: ", rows.error().message);
    server.broken = true;   // what it carries is unknown: nobody else may get it
    co_return false;
  }
  SessionSets truth;
  for (const auto& row : *rows) {
    if (row.size() != 2 || !row[0] || !row[1]) continue;
    truth[*row[0]] = WantedValue{*row[1], false};   // set_config's form: the server's canonical value
  }
  if (!session_state_->adopt_settings(std::move(truth), server.parameters())) co_return true;
  const auto& sets = session_state_->sets();
  log_info("client ", id_, " ", peer_, ": a DO or CALL changed the session's settings: ", sets ? sets->size() : 0,
           " now follow the client");
  server.applied_settings.clear();
  if (sets)
    for (const auto& [name, value] : *sets) server.applied_settings[name] = value.as_sql();
  note_server_carries_settings();
  co_return true;
}

std::optional<LocalAnswer> ClientSession::sequence_refusal(const Request& r) const {
  bool any = false;
  for (uint32_t i = r.first; i < r.end && !any; ++i)
    any = reader_->messages()[i].analysis && reader_->messages()[i].analysis->reads_sequences;
  if (!any || r.tx_status == 'E') return std::nullopt;   // in a failed transaction the server refuses anyway
  if (session_state_->pinned() && exchange_->sequences_on_pin) return std::nullopt;   // its own connection
  bool advanced = r.tx_status == 'T' && exchange_->tx_advanced_sequences;
  const auto& scanned = reader_->forwarder().scanned();
  for (uint32_t i = r.first; i < r.end; ++i) {
    const char type = scanned[i].frame.type;
    const StatementAnalysis* a = reader_->messages()[i].analysis.get();
    if (!a || (type != 'Q' && type != 'E')) continue;
    for (size_t k = 0; k < a->statement_count(); ++k) {
      bool reads = false, advances = advances_sequences(a->effects.statement_class(k));
      for (const auto& e : a->effects.effects()) {
        if (e.statement != k) continue;
        reads = reads || e.kind == analyzer::EffectKind::kSequenceRead;
        advances = advances || e.kind == analyzer::EffectKind::kSequenceAdvance;
      }
      // nextval and currval in one statement: PostgreSQL evaluates them in order, on this connection.
      if (reads && !advanced && !advances) {
        protocol::ErrorSpec e{"ERROR", std::string(sqlstate::kFeatureNotSupported),
                              "currval() and lastval() cannot read sequence state left by an earlier transaction "
                              "in " + std::string(mode_ == conf::PoolMode::kStatement ? "statement" : "transaction") +
                                  " pooling mode",
                              {},
                              "Call them in the transaction that called nextval() or ran the INSERT, or use "
                              "INSERT ... RETURNING; pool_mode = \"session\" keeps sequence state."};
        // The error goes where pgrelay can answer for everything before it (ParseComplete,
        // BindComplete): at the Execute, or at a Describe ahead of it.
        uint32_t at = r.first;
        while (at < i && (scanned[at].frame.type == 'P' || scanned[at].frame.type == 'B' ||
                          scanned[at].frame.type == 'C' || scanned[at].frame.type == 'H'))
          ++at;
        return LocalAnswer{.at = at, .error = std::move(e), .refused = analyzer::EffectKind::kSequenceRead};
      }
      advanced = advanced || advances;
    }
  }
  return std::nullopt;
}

}  // namespace pgrelay::proxy
