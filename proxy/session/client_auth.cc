// Client authentication: hba decision, then the SCRAM-SHA-256, MD5 or cleartext exchange.
#include "proxy/session/client_auth.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <array>

#include "protocol/md5.h"
#include "protocol/messages.h"
#include "protocol/scram_server.h"
#include "protocol/sqlstate.h"
#include "proxy/session/client_credentials.h"
#include "proxy/base/log.h"
#include "proxy/server/server_connection.h"

namespace pgrelay::proxy {
namespace {

using conf::AuthMethod;
using conf::SecretKind;

constexpr uint32_t kMaxAuthMessage = 65535;   // PostgreSQL's PG_MAX_AUTH_TOKEN_LENGTH

Error client_gone() { return Error{"", ""}; }

bool random_bytes(void* out, size_t n) { return RAND_bytes(static_cast<unsigned char*>(out), int(n)) == 1; }

// How one exchange ended when the messages themselves were fine.
struct Verdict {
  bool ok = false;
  std::string credential;   // on success: what the client proved, for the server login
  std::string why;          // on failure: the reason for the log (never sent to the client)
};

// The user's secret, as the exchanges need it.
struct Known {
  ClientSecret secret;
  SecretKind kind = SecretKind::kEmpty;
  std::string user;
};

// The client side of the socket during authentication: Authentication requests out,
// PasswordMessage / SASLInitialResponse / SASLResponse ('p') in.
class ClientIo {
 public:
  explicit ClientIo(ClientTransport& socket) : socket_(socket) {}

  awaitable<bool> send(const protocol::Authentication& m) {
    protocol::Buffer out;
    protocol::encode(m, out);
    error_code ec;
    co_await socket_.async_write(asio::buffer(out), ec);
    co_return !ec;
  }

  // The body of the next 'p' message.
  awaitable<Result<std::string>> receive() {
    std::byte head[5];
    error_code ec;
    co_await socket_.async_read(asio::buffer(head), ec);
    if (ec) co_return client_gone();
    const char type = char(head[0]);
    const uint32_t length = protocol::load_u32(head + 1);
    if (type == protocol::frontend::kTerminate) co_return client_gone();
    if (type != protocol::frontend::kPassword) {
      co_return Error{sqlstate::kProtocolViolation,
                      "expected password response, got message type " + std::to_string(int(uint8_t(type)))};
    }
    if (length < 4 || length - 4 > kMaxAuthMessage) {
      co_return Error{sqlstate::kProtocolViolation, "invalid password message length " + std::to_string(length)};
    }
    std::string body(length - 4, '\0');
    co_await socket_.async_read(asio::buffer(body), ec);
    if (ec) co_return client_gone();
    co_return body;
  }

 private:
  ClientTransport& socket_;
};

std::string server_nonce() {
  unsigned char raw[18];   // as PostgreSQL's SCRAM_RAW_NONCE_LEN
  if (!random_bytes(raw, sizeof raw)) return {};
  return protocol::base64_encode(std::string_view(reinterpret_cast<const char*>(raw), sizeof raw));
}

// SCRAM-SHA-256 against the user's secret; a fake one when there is none usable. With
// `channel_binding` (TLS), SCRAM-SHA-256-PLUS is offered first.
awaitable<Result<Verdict>> scram_exchange(ClientIo& io, AuthStore& store, const Known& known,
                                          std::string_view channel_binding) {
  protocol::ScramSecret secret;
  std::string why;      // set when the exchange must fail whatever the client proves
  std::string plain;    // forwarded instead of keys when the secret is a password
  if (known.kind == SecretKind::kScram) {
    auto parsed = protocol::parse_scram_secret(known.secret.text);
    if (parsed.ok()) secret = std::move(*parsed);
    else why = "the " + std::string(to_string(known.secret.source)) + " secret is unusable: " + parsed.error().message;
  } else if (known.kind == SecretKind::kPlain) {
    secret = store.scram_secret_for_password(known.user, known.secret.text);
    plain = known.secret.text;
  } else if (known.kind == SecretKind::kMd5) {
    why = "the user has an MD5 secret, which cannot answer SCRAM-SHA-256";
  } else {
    why = known.secret.source == ClientSecret::Source::kNone ? "no such user (or no password)" : "empty password";
  }
  if (!why.empty()) secret = store.fake_scram_secret(known.user);

  protocol::Authentication sasl;
  sasl.type = protocol::AuthType::kSasl;
  if (channel_binding.empty()) sasl.sasl_mechanisms = {protocol::kScramSha256};
  else sasl.sasl_mechanisms = {protocol::kScramSha256Plus, protocol::kScramSha256};
  const bool sent = co_await io.send(sasl);
  if (!sent) co_return client_gone();
  auto first = co_await io.receive();
  if (!first.ok()) co_return first.error();
  auto initial = protocol::decode_sasl_initial_response(protocol::as_bytes(*first));
  if (!initial.ok()) co_return initial.error();
  const bool plus = initial->mechanism == protocol::kScramSha256Plus && !channel_binding.empty();
  if (initial->mechanism != protocol::kScramSha256 && !plus) {
    co_return Error{sqlstate::kProtocolViolation, "client selected an invalid SASL authentication mechanism"};
  }
  if (!initial->data) co_return Error{sqlstate::kProtocolViolation, "malformed SCRAM message: no client-first-message"};

  const std::string nonce = server_nonce();
  if (nonce.empty()) co_return Error{sqlstate::kInternalError, "could not generate a SCRAM nonce"};
  protocol::ScramServer server(std::move(secret), std::string(channel_binding), plus);
  auto server_first = server.handle_client_first(protocol::as_string_view(*initial->data), nonce);
  if (!server_first.ok()) co_return server_first.error();
  protocol::Authentication cont;
  cont.type = protocol::AuthType::kSaslContinue;
  cont.data = protocol::as_bytes(*server_first);
  const bool sent_first = co_await io.send(cont);
  if (!sent_first) co_return client_gone();

  auto client_final = co_await io.receive();
  if (!client_final.ok()) co_return client_final.error();
  auto server_final = server.handle_client_final(*client_final);
  if (!server_final.ok()) {
    if (server_final.error().sqlstate != sqlstate::kInvalidPassword) co_return server_final.error();
    co_return Verdict{false, "", why.empty() ? "wrong password (SCRAM proof does not match)" : why};
  }
  if (!why.empty()) co_return Verdict{false, "", why};   // cannot happen with a fake secret; never let it pass
  protocol::Authentication done;
  done.type = protocol::AuthType::kSaslFinal;
  done.data = protocol::as_bytes(*server_final);
  const bool sent_final = co_await io.send(done);
  if (!sent_final) co_return client_gone();
  co_return Verdict{true, plain.empty() ? forwarded_scram_password(*server.keys()) : plain, ""};
}

// MD5 challenge against an MD5 or plain secret (a fake, never-matching one otherwise).
awaitable<Result<Verdict>> md5_exchange(ClientIo& io, const Known& known) {
  protocol::Authentication challenge;
  challenge.type = protocol::AuthType::kMd5Password;
  if (!random_bytes(challenge.md5_salt.data(), challenge.md5_salt.size())) {
    co_return Error{sqlstate::kInternalError, "could not generate an MD5 salt"};
  }
  const bool sent = co_await io.send(challenge);
  if (!sent) co_return client_gone();
  auto body = co_await io.receive();
  if (!body.ok()) co_return body.error();
  auto message = protocol::decode_password_message(protocol::as_bytes(*body));
  if (!message.ok()) co_return message.error();

  std::string stored;
  std::string why;
  if (known.kind == SecretKind::kMd5) stored = known.secret.text;
  else if (known.kind == SecretKind::kPlain) stored = protocol::md5_stored_secret(known.secret.text, known.user);
  else why = known.secret.source == ClientSecret::Source::kNone ? "no such user (or no password)" : "empty password";
  // The same hashing either way, so the answer takes as long for an unknown user.
  const std::string compared = stored.empty() ? "md5" + std::string(32, '0') : stored;
  const bool ok = protocol::md5_verify_response(compared, challenge.md5_salt, message->password) && why.empty();
  if (!ok) co_return Verdict{false, "", why.empty() ? "wrong password (MD5 response does not match)" : why};
  co_return Verdict{true, known.kind == SecretKind::kPlain ? known.secret.text : std::string(), ""};
}

// Cleartext password (only ever reached over TLS) against any kind of secret.
awaitable<Result<Verdict>> cleartext_exchange(ClientIo& io, AuthStore& store, const Known& known) {
  protocol::Authentication request;
  request.type = protocol::AuthType::kCleartextPassword;
  const bool sent = co_await io.send(request);
  if (!sent) co_return client_gone();
  auto body = co_await io.receive();
  if (!body.ok()) co_return body.error();
  auto message = protocol::decode_password_message(protocol::as_bytes(*body));
  if (!message.ok()) co_return message.error();
  const std::string_view given = message->password;

  bool ok = false;
  if (known.kind == SecretKind::kPlain) {
    ok = given.size() == known.secret.text.size() &&
         CRYPTO_memcmp(given.data(), known.secret.text.data(), given.size()) == 0;
  } else if (known.kind == SecretKind::kMd5) {
    const std::string hashed = protocol::md5_stored_secret(given, known.user);
    ok = hashed.size() == known.secret.text.size() &&
         CRYPTO_memcmp(hashed.data(), known.secret.text.data(), hashed.size()) == 0;
  } else if (known.kind == SecretKind::kScram) {
    auto secret = protocol::parse_scram_secret(known.secret.text);
    ok = secret.ok() && protocol::scram_verify_password(*secret, given);
  } else {
    (void)protocol::scram_verify_password(store.fake_scram_secret(known.user), given);   // same work
  }
  if (!ok) co_return Verdict{false, "", known.kind == SecretKind::kEmpty ? "no such user (or no password)" : "wrong password"};
  co_return Verdict{true, std::string(given), ""};
}

}  // namespace

std::optional<Result<ClientAuthResult>> authenticate_without_exchange(Services& services, const conf::Config& config,
                                                                      const ClientAuthRequest& req) {
  ClientAuthStats& stats = services.auth.stats();
  const conf::HbaRequest hba{req.address, req.is_unix_socket, req.is_tls, req.database, req.user};
  const conf::HbaDecision decision = conf::decide(config.hba, config.auth_type, hba);
  // (Named only when a message needs them: a trust login builds no strings.)
  auto by = [&] {
    return decision.rule ? "pgrelay hba rule " + std::to_string(decision.rule->number)
                         : "pgrelay auth_type \"" + std::string(conf::to_string(decision.method)) + "\"";
  };
  auto reject = [&](const std::string& message) {
    stats.rejected.fetch_add(1);
    log_warning("client ", req.client_id, " ", req.peer, ": ", message,
                decision.rule ? " (config line " + std::to_string(decision.rule->line) + ")" : "");
    return Error{sqlstate::kInvalidAuthorization, message};
  };
  if (!decision.matched) return reject("no pgrelay hba rule for " + conf::describe_connection(hba));
  switch (decision.method) {
    case AuthMethod::kTrust:
      stats.successes.fetch_add(1);
      return ClientAuthResult{AuthMethod::kTrust, ""};
    case AuthMethod::kReject:
      return reject(by() + " rejects connection for " + conf::describe_connection(hba));
    case AuthMethod::kCert:
      if (!req.is_tls) {
        return reject(by() + " requires a client certificate (method \"cert\"), which needs TLS; rejecting "
                             "connection for " + conf::describe_connection(hba));
      }
      if (req.tls_cert_cn.empty()) {
        // None sent, or one that does not verify against client_tls_ca_file (PostgreSQL's words).
        stats.rejected.fetch_add(1);
        log_warning("client ", req.client_id, " ", req.peer, ": ", by(), " (method \"cert\") for user \"", req.user,
                    "\": no verified client certificate");
        return Error{sqlstate::kInvalidAuthorization, "connection requires a valid client certificate"};
      }
      if (req.tls_cert_cn != req.user) {
        stats.failures.fetch_add(1);
        log_warning("client ", req.client_id, " ", req.peer, ": certificate authentication failed for user \"",
                    req.user, "\": the certificate's CN is \"", req.tls_cert_cn, "\" (", by(), ")");
        return Error{sqlstate::kInvalidAuthorization,
                     "certificate authentication failed for user \"" + std::string(req.user) + "\""};
      }
      stats.successes.fetch_add(1);
      return ClientAuthResult{AuthMethod::kCert, ""};
    case AuthMethod::kPassword:
      if (!req.is_tls) {
        return reject(by() + " allows method \"password\" only over TLS; rejecting connection for " +
                      conf::describe_connection(hba));
      }
      break;
    case AuthMethod::kScramSha256:
    case AuthMethod::kMd5:
      break;
  }
  return std::nullopt;
}

awaitable<Result<ClientAuthResult>> authenticate_client(ClientTransport& client, Services& services,
                                                        const conf::Config& config, const conf::DatabaseEntry& entry,
                                                        const ClientAuthRequest& req) {
  if (auto settled = authenticate_without_exchange(services, config, req)) co_return std::move(*settled);
  // A password exchange: the method is scram-sha-256, md5 or password, and allowed here.
  ClientAuthStats& stats = services.auth.stats();
  const conf::HbaRequest hba{req.address, req.is_unix_socket, req.is_tls, req.database, req.user};
  const conf::HbaDecision decision = conf::decide(config.hba, config.auth_type, hba);
  const std::string method_name = conf::to_string(decision.method);
  const std::string by = decision.rule ? "pgrelay hba rule " + std::to_string(decision.rule->number)
                                       : "pgrelay auth_type \"" + method_name + "\"";

  // client_login_timeout covers the exchange too: a client that stops answering is closed.
  auto ex = co_await asio::this_coro::executor;
  Watchdog login_timer(ex, config.client_login_timeout, [&client] { error_code ignored; client.close(ignored); });
  const std::string user(req.user);
  const std::string database(req.database);
  auto secret = co_await find_client_secret(services, config, entry, database, user);
  if (!secret.ok()) {
    log_warning("client ", req.client_id, " ", req.peer, ": cannot authenticate user \"", user, "\": ",
                secret.error().message);
    co_return secret.error();
  }
  const SecretKind kind = conf::classify_secret(secret->text);
  Known known{std::move(*secret), kind, user};
  ClientIo io(client);
  Result<Verdict> verdict = client_gone();
  if (decision.method == AuthMethod::kPassword) {
    verdict = co_await cleartext_exchange(io, services.auth, known);
  } else if (decision.method == AuthMethod::kMd5 && known.kind != SecretKind::kScram) {
    verdict = co_await md5_exchange(io, known);
  } else {
    // scram-sha-256, or md5 over a SCRAM secret
    verdict = co_await scram_exchange(io, services.auth, known, req.tls_endpoint_hash);
  }
  if (!verdict.ok()) {
    if (verdict.error().sqlstate.empty()) {
      log_debug("client ", req.client_id, " ", req.peer, ": left during authentication",
                login_timer.fired() ? " (client_login_timeout)" : "");
    } else {
      stats.failures.fetch_add(1);
      log_warning("client ", req.client_id, " ", req.peer, ": authentication of user \"", user, "\" failed: ",
                  verdict.error().message);
    }
    co_return verdict.error();
  }
  if (!verdict->ok) {
    stats.failures.fetch_add(1);
    log_warning("client ", req.client_id, " ", req.peer, ": password authentication failed for user \"", user,
                "\", database \"", req.database, "\" (", by, ", method ", method_name, ", secret from ",
                to_string(known.secret.source), "): ", verdict->why);
    co_return Error{sqlstate::kInvalidPassword, "password authentication failed for user \"" + user + "\""};
  }
  stats.successes.fetch_add(1);
  log_debug("client ", req.client_id, " ", req.peer, ": authenticated as \"", user, "\" (", method_name,
            ", secret from ", to_string(known.secret.source), ")");
  co_return ClientAuthResult{decision.method, std::move(verdict->credential)};
}

}  // namespace pgrelay::proxy
