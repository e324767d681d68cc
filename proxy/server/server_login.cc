// Logging in to PostgreSQL: TLS negotiation, the StartupMessage, and authentication (trust, cleartext, md5, SCRAM).
#include <openssl/rand.h>

#include <optional>

#include "protocol/error_fields.h"
#include "protocol/md5.h"
#include "protocol/scram.h"
#include "protocol/sqlstate.h"
#include "protocol/startup.h"
#include "proxy/base/log.h"
#include "proxy/server/server_connection.h"

namespace pgrelay::proxy {
namespace {

Error failed(std::string what) {
  return {sqlstate::kConnectionFailure, "server connection failed: " + std::move(what)};
}

// TLS could not be had as required: not worth retrying (see is_transient_login_failure).
Error tls_failed(std::string what) {
  return {sqlstate::kUnableToEstablishConnection, "server connection failed: " + std::move(what)};
}

std::string random_nonce() {
  unsigned char raw[18];
  if (RAND_bytes(raw, sizeof raw) != 1) {
    // RAND_bytes failing means the CSPRNG is unusable; SCRAM must not continue with a weak nonce.
    return {};
  }
  return protocol::base64_encode(std::string_view(reinterpret_cast<char*>(raw), sizeof raw));
}

constexpr std::string_view kForwardedScramPrefix{"\0pgrelay-forwarded:", 19};

}  // namespace

std::string forwarded_scram_password(const protocol::ScramKeys& keys) {
  return std::string(kForwardedScramPrefix) + protocol::encode_scram_keys(keys);
}

std::optional<protocol::ScramKeys> forwarded_scram_keys(std::string_view password) {
  if (!password.starts_with(kForwardedScramPrefix)) return std::nullopt;
  auto keys = protocol::decode_scram_keys(password.substr(kForwardedScramPrefix.size()));
  if (!keys.ok()) return std::nullopt;
  return std::move(*keys);
}

// SCRAM exchange state across the three Authentication messages.
class ScramState {
 public:
  std::optional<protocol::ScramClient> client;
};

awaitable<Result<void>> ServerConnection::negotiate_tls(const ServerTlsOptions& tls) {
  // https://www.postgresql.org/docs/15/protocol-flow.html#id-1.10.6.7.12
  const std::string mode = "server_tls_sslmode \"" + std::string(conf::to_string(tls.mode)) + "\"";
  const std::string where = target_->endpoint_name();
  if (!target_->host.empty() && target_->host[0] == '/') {
    // PostgreSQL never speaks TLS on a Unix socket (nor does libpq ask): prefer means plain.
    if (tls.mode == conf::ServerTlsMode::kPrefer) co_return Result<void>();
    co_return tls_failed(mode + " cannot be met over the Unix socket " + where + " (set server_tls_sslmode = "
                         "\"disable\" or \"prefer\" for this database)");
  }
  if (!tls.ctx) co_return tls_failed("no TLS context for servers (server_tls_* failed to load)");
  protocol::Buffer out;
  protocol::encode(protocol::SslRequest{}, out);
  if (auto r = co_await write_all(out); !r.ok()) co_return r;
  // Exactly one byte: anything the server sent after it would otherwise be taken as TLS-protected.
  char answer = 0;
  error_code ec;
  co_await io_.async_read(asio::buffer(&answer, 1), ec);
  if (ec) {
    broken = true;
    co_return failed(ec == asio::error::eof ? "server closed the connection after SSLRequest"
                                            : "read: " + ec.message());
  }
  if (answer == 'N') {
    if (tls.mode == conf::ServerTlsMode::kPrefer) co_return Result<void>();
    co_return tls_failed("server " + where + " does not support TLS, but " + mode + " requires it");
  }
  if (answer != 'S') {
    co_return tls_failed(std::string("unexpected answer to SSLRequest from ") + where + ": '" + answer + "'");
  }
  std::string error;
  SSL* ssl = new_server_ssl(tls.ctx.get(), tls.mode, target_->host, error);
  if (!ssl) co_return tls_failed("TLS setup for " + where + ": " + error);
  if (SSL_set_fd(ssl, io_.socket().native_handle()) != 1) {
    SSL_free(ssl);
    co_return tls_failed("TLS setup for " + where + ": SSL_set_fd failed");
  }
  co_await io_.handshake(std::make_unique<TlsStream>(ssl), ec);
  if (ec) {
    broken = true;
    const std::string why = io_.tls() && !io_.tls()->last_error().empty() ? io_.tls()->last_error() : ec.message();
    co_return tls_failed("TLS handshake with " + where + " failed (" + mode + "): " + why);
  }
  log_debug("server connection ", target_->describe(), ": ", SSL_get_version(ssl), " ", SSL_get_cipher_name(ssl));
  co_return Result<void>();
}

awaitable<Result<void>> ServerConnection::login() {
  protocol::Buffer out;
  protocol::StartupMessage startup;
  startup.params = {{"user", target_->user}, {"database", target_->dbname}};
  protocol::encode(startup, out);
  if (auto r = co_await write_all(out); !r.ok()) co_return r;

  ScramState scram;
  for (;;) {
    auto msg = co_await next_message();
    if (!msg.ok()) co_return msg.error();
    switch (msg->type) {
      case protocol::backend::kAuthentication: {
        auto auth = protocol::decode_authentication(msg->body);
        if (!auth.ok()) co_return failed("bad authentication message: " + auth.error().message);
        if (auto r = co_await authenticate(*auth, scram); !r.ok()) co_return r;
        break;
      }
      case protocol::backend::kParameterStatus:
        note_parameter_status(msg->body);
        break;
      case protocol::backend::kBackendKeyData: {
        auto key = protocol::decode_backend_key_data(msg->body);
        if (key.ok()) key_ = *key;
        break;
      }
      case protocol::backend::kReadyForQuery:
        tx_status = 'I';
        co_return Result<void>();
      case protocol::backend::kErrorResponse: {
        // The server's own SQLSTATE goes on (28P01 for a wrong password, 57P03 while it starts
        // up): clients and the pool's retry logic both need it.
        auto err = protocol::decode_error_notice(msg->body);
        if (!err.ok()) co_return failed("unreadable ErrorResponse");
        Error e = failed(std::string(err->message));
        if (!err->sqlstate.empty()) e.sqlstate = std::string(err->sqlstate);
        co_return e;
      }
      case protocol::backend::kNoticeResponse:
      case protocol::backend::kNegotiateProtocolVersion:
        break;
      default:
        co_return failed(std::string("unexpected message type '") + msg->type + "' during login");
    }
  }
}

awaitable<Result<void>> ServerConnection::authenticate(const protocol::Authentication& auth, ScramState& scram) {
  using protocol::AuthType;
  protocol::Buffer out;
  const std::optional<protocol::ScramKeys> keys = forwarded_scram_keys(target_->password);
  auto need_password = [&]() -> Result<void> {
    if (target_->password.empty())
      return failed("server asked for a password for user \"" + target_->user + "\" but none is configured");
    if (keys && auth.type != AuthType::kSasl) {
      // Permanent (28000, not retried): the server wants md5 or cleartext, which keys cannot answer.
      Error e = failed("server asked for a password for user \"" + target_->user + "\" but pgrelay has only the "
                       "client's SCRAM keys, which answer SCRAM-SHA-256 alone");
      e.sqlstate = sqlstate::kInvalidAuthorization;
      return e;
    }
    return {};
  };
  switch (auth.type) {
    case AuthType::kOk:
      co_return Result<void>();
    case AuthType::kCleartextPassword:
      if (auto r = need_password(); !r.ok()) co_return r;
      protocol::encode(protocol::PasswordMessage{target_->password}, out);
      break;
    case AuthType::kMd5Password: {
      if (auto r = need_password(); !r.ok()) co_return r;
      std::string response = protocol::md5_password_response(target_->password, target_->user, auth.md5_salt);
      protocol::encode(protocol::PasswordMessage{response}, out);
      break;
    }
    case AuthType::kSasl: {
      if (auto r = need_password(); !r.ok()) co_return r;
      bool offered = false, offered_plus = false;
      for (auto m : auth.sasl_mechanisms) {
        offered |= (m == protocol::kScramSha256);
        offered_plus |= (m == protocol::kScramSha256Plus);
      }
      // Over TLS, bind the exchange to the server's certificate when it offers PLUS (as libpq's
      // channel_binding=prefer): a man in the middle with another certificate cannot relay it.
      std::string binding;
      if (io_.is_tls()) binding = certificate_endpoint_hash(SSL_get0_peer_certificate(io_.tls()->ssl()));
      const bool plus = offered_plus && !binding.empty();
      if (!offered && !plus) co_return failed("server offers no SASL mechanism pgrelay supports");
      std::string nonce = random_nonce();
      if (nonce.empty()) co_return failed("no randomness for the SCRAM nonce");
      if (keys) scram.client.emplace(*keys, nonce);
      else scram.client.emplace(target_->password, nonce);
      if (!binding.empty()) scram.client->set_channel_binding(binding, plus);
      std::string first = scram.client->client_first_message();
      const std::string_view mechanism = plus ? protocol::kScramSha256Plus : protocol::kScramSha256;
      protocol::encode(protocol::SaslInitialResponse{mechanism, protocol::as_bytes(first)}, out);
      break;
    }
    case AuthType::kSaslContinue: {
      if (!scram.client) co_return failed("SASLContinue before SASL");
      auto final_msg = scram.client->handle_server_first(protocol::as_string_view(auth.data));
      if (!final_msg.ok()) {
        Error e = failed("SCRAM: " + final_msg.error().message);
        if (keys) e.sqlstate = final_msg.error().sqlstate;   // another secret on the server: not worth retrying
        co_return e;
      }
      protocol::encode(protocol::SaslResponse{protocol::as_bytes(*final_msg)}, out);
      break;
    }
    case AuthType::kSaslFinal: {
      if (!scram.client) co_return failed("SASLFinal before SASL");
      auto ok = scram.client->verify_server_final(protocol::as_string_view(auth.data));
      if (!ok.ok()) co_return failed("SCRAM: " + ok.error().message);
      co_return Result<void>();
    }
    default:
      co_return failed("unsupported authentication method " + std::to_string(int(auth.type)) +
                       " requested by the server");
  }
  co_return co_await write_all(out);
}

}  // namespace pgrelay::proxy
