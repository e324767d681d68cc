// The admin console: login, the simple-query message loop, and dispatch to the commands.
#include "proxy/admin/admin_console.h"

#include <openssl/rand.h>
#include <sys/socket.h>

#include "protocol/bytes.h"
#include "protocol/error_fields.h"
#include "protocol/messages.h"
#include "protocol/sqlstate.h"
#include "proxy/session/client_auth.h"
#include "proxy/base/log.h"

namespace pgrelay::proxy {
namespace {

namespace fe = protocol::frontend;

constexpr uint32_t kMaxConsoleMessage = 1u << 20;   // a console command is short; this is generous

protocol::ErrorSpec error_spec(const char* severity, const Error& e) {
  protocol::ErrorSpec spec{severity, e.sqlstate, e.message, "", ""};
  if (e.sqlstate == sqlstate::kSyntaxError) spec.hint = kConsoleHint;
  return spec;
}

// Writes `out` to the client; a client that does not read is closed after a while.
awaitable<bool> write_all(ClientTransport& client, const protocol::Buffer& out) {
  auto ex = co_await asio::this_coro::executor;
  Watchdog timeout(ex, std::chrono::seconds(10), [&client] { error_code ec; client.close(ec); });
  error_code ec;
  co_await client.async_write(asio::buffer(out), ec);
  co_return !ec;
}

awaitable<void> send_fatal(ClientTransport& client, const Error& e) {
  protocol::Buffer out;
  protocol::encode_error_response(error_spec("FATAL", e), out);
  co_await write_all(client, out);
}

// The entry clients of the console authenticate against: where auth_query would run.
conf::DatabaseEntry auth_entry(const conf::Config& config, std::string_view database) {
  if (const conf::DatabaseEntry* fallback = config.find_database("*")) return *fallback;
  if (!config.databases.empty()) return config.databases.begin()->second;
  conf::DatabaseEntry e;
  e.name = std::string(database);
  return e;
}

}  // namespace

awaitable<bool> serve_console_or_refuse(ClientTransport& client, Services& services, const conf::Config& config,
                                        const ClientAuthRequest& login) {
  const std::string database(login.database);
  if (!config.is_admin_database(database)) {
    if (!services.gate.disabled(database)) co_return false;
    services.stats.on_rejected(RejectReason::kDisabled);
    log_info("client ", login.client_id, " ", login.peer, ": database \"", database, "\" is disabled, refusing");
    const Error fatal_error{"55000", "database \"" + database +
                                                   "\" is not currently accepting connections (DISABLE in pgrelay's "
                                                   "admin console)"};
    co_await send_fatal(client, fatal_error);
    co_return true;
  }

  const conf::DatabaseEntry entry = auth_entry(config, database);
  auto auth = co_await authenticate_client(client, services, config, entry, login);
  if (!auth.ok()) {
    if (auth.error().sqlstate.empty()) co_return true;   // gone
    services.stats.on_login_refused(auth.error().sqlstate);
    co_await send_fatal(client, auth.error());
    co_return true;
  }
  const std::string user(login.user);
  if (!config.is_stats(user)) {
    services.stats.on_rejected(RejectReason::kNotAdmin);
    log_warning("client ", login.client_id, " ", login.peer, ": user \"", user,
                "\" may not use the admin console (not in admin_users or stats_users)");
    const Error fatal_error{sqlstate::kInsufficientPrivilege,
                                      "permission denied: user \"" + user + "\" is not in admin_users or stats_users"};
    co_await send_fatal(client, fatal_error);
    co_return true;
  }
  services.stats.console_sessions.fetch_add(1, std::memory_order_relaxed);
  log_info("client ", login.client_id, " ", login.peer, ": admin console session for \"", user, "\" (",
           config.is_admin(user) ? "admin" : "stats", ")");
  AdminConsole console(client, services, user, config.is_admin(user), login.client_id);
  co_await console.run();
  co_return true;
}

AdminConsole::AdminConsole(ClientTransport& client, Services& services, std::string user, bool admin, uint64_t client_id)
    : client_(client), services_(services), user_(std::move(user)), admin_(admin), client_id_(client_id) {}

awaitable<void> AdminConsole::run() {
  protocol::Buffer out;
  protocol::Authentication ok;
  ok.type = protocol::AuthType::kOk;
  protocol::encode(ok, out);
  const std::string version = std::string(PGRELAY_VERSION) + "/pgrelay";   // as PgBouncer's "1.18.0/bouncer"
  for (const auto& [name, value] : {std::pair<std::string_view, std::string_view>{"server_version", version},
                                    {"server_encoding", "UTF8"},
                                    {"client_encoding", "UTF8"},
                                    {"DateStyle", "ISO, MDY"},
                                    {"TimeZone", "UTC"},
                                    {"integer_datetimes", "on"},
                                    {"standard_conforming_strings", "on"},
                                    {"application_name", "pgrelay"}})
    protocol::encode(protocol::ParameterStatus{name, value}, out);
  protocol::BackendKeyData key;   // cancelling a console command does nothing: any key will do
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&key), sizeof key) != 1) key = {1, 1};
  protocol::encode(key, out);
  protocol::encode(protocol::ReadyForQuery{'I'}, out);
  if (!co_await write_all(client_, out)) co_return;

  bool skipping_to_sync = false;   // after an extended-protocol message, until its Sync
  for (;;) {
    std::byte head[5];
    error_code ec;
    co_await client_.async_read(asio::buffer(head), ec);
    if (ec) co_return;
    const char type = char(head[0]);
    const uint32_t length = protocol::load_u32(head + 1);
    if (length < 4 || length - 4 > kMaxConsoleMessage) {
      const Error fatal_error{sqlstate::kProtocolViolation,
                                         "invalid message length " + std::to_string(length)};
      co_await send_fatal(client_, fatal_error);
      co_return;
    }
    std::string body(length - 4, '\0');
    co_await client_.async_read(asio::buffer(body), ec);
    if (ec) co_return;

    out.clear();
    switch (type) {
      case fe::kTerminate:
        co_return;
      case fe::kQuery: {
        if (body.empty() || body.back() != '\0') {
          const Error fatal_error{sqlstate::kProtocolViolation, "Query message without its terminator"};
          co_await send_fatal(client_, fatal_error);
          co_return;
        }
        body.pop_back();
        const auto statements = split_statements(body);
        if (statements.empty()) protocol::encode(protocol::EmptyQueryResponse{}, out);
        for (const std::string& statement : statements) {
          auto command = parse_admin_command(statement);
          if (!command.ok()) {
            protocol::encode_error_response(error_spec("ERROR", command.error()), out);
            break;
          }
          const bool ran = co_await execute(*command, out);
          if (!ran) break;
        }
        protocol::encode(protocol::ReadyForQuery{'I'}, out);
        break;
      }
      case fe::kSync:
        skipping_to_sync = false;
        protocol::encode(protocol::ReadyForQuery{'I'}, out);
        break;
      case fe::kParse: case fe::kBind: case fe::kDescribe: case fe::kExecute: case fe::kClose: case fe::kFlush:
      case fe::kFunctionCall:
        if (!skipping_to_sync) {
          protocol::encode_error_response(
              error_spec("ERROR", Error{sqlstate::kFeatureNotSupported,
                                        "the admin console supports only the simple query protocol"}),
              out);
          skipping_to_sync = true;
        }
        break;
      case fe::kCopyData: case fe::kCopyDone: case fe::kCopyFail:
        break;   // no COPY here; PostgreSQL ignores these outside COPY too
      default:
        const Error fatal_error{sqlstate::kProtocolViolation,
                                           "invalid frontend message type " + std::to_string(uint8_t(type))};
        co_await send_fatal(client_, fatal_error);
        co_return;
    }
    if (!out.empty() && !co_await write_all(client_, out)) co_return;
  }
}

awaitable<bool> AdminConsole::execute(const AdminCommand& command, protocol::Buffer& out) {
  if (!admin_ && !command.read_only()) {
    protocol::encode_error_response(
        error_spec("ERROR", Error{sqlstate::kInsufficientPrivilege,
                                  "permission denied: " + command.tag() + " needs a user in admin_users; \"" + user_ +
                                      "\" is in stats_users, which may only SHOW"}),
        out);
    co_return false;
  }
  if (command.verb == AdminCommand::Verb::kShow) {
    auto result = co_await show(command.subject);
    if (!result.ok()) {
      protocol::encode_error_response(error_spec("ERROR", result.error()), out);
      co_return false;
    }
    result->encode("SHOW", out);
    co_return true;
  }
  auto done = co_await act(command);
  if (!done.ok()) {
    protocol::encode_error_response(error_spec("ERROR", done.error()), out);
    co_return false;
  }
  log_info("admin console: \"", user_, "\" ran ", command.tag(), command.argument.empty() ? "" : " ",
           command.verb == AdminCommand::Verb::kSet ? command.subject + " = " + command.argument : command.argument);
  protocol::encode(protocol::CommandComplete{*done}, out);
  co_return true;
}

bool AdminConsole::client_gone() const {
  char byte;
  // The socket itself, also under TLS: only whether the peer closed it matters here.
  const ssize_t n = ::recv(client_.socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

}  // namespace pgrelay::proxy
