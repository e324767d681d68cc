// SCRAM-SHA-256 server side: stored secrets, the exchange, and ClientKey recovery.
#include "protocol/scram_server.h"

#include <cstring>

#include "protocol/scram_detail.h"
#include "protocol/sqlstate.h"

namespace pgrelay::protocol {
namespace {

using namespace scram_detail;

Digest to_digest(std::string_view raw) {
  Digest d{};
  if (raw.size() == d.size()) std::memcpy(d.data(), raw.data(), d.size());
  return d;
}

Error unsupported(std::string what) { return {sqlstate::kFeatureNotSupported, std::move(what)}; }

// Well-formed, but not what this exchange allows (channel binding negotiation).
Error violation(std::string what) { return {sqlstate::kProtocolViolation, std::move(what)}; }

}  // namespace

bool looks_like_scram_secret(std::string_view text) { return text.starts_with(std::string(kScramSha256) + "$"); }

Result<ScramSecret> parse_scram_secret(std::string_view text) {
  auto bad = [](std::string what) {
    return Error{sqlstate::kProtocolViolation, "invalid SCRAM-SHA-256 secret: " + std::move(what)};
  };
  if (!looks_like_scram_secret(text)) return bad("expected SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>");
  text.remove_prefix(kScramSha256.size() + 1);
  const size_t colon1 = text.find(':');
  const size_t dollar = text.find('$');
  if (colon1 == std::string_view::npos || dollar == std::string_view::npos || colon1 > dollar) {
    return bad("expected <iterations>:<salt> after SCRAM-SHA-256$");
  }
  const size_t colon2 = text.find(':', dollar);
  if (colon2 == std::string_view::npos) return bad("expected <StoredKey>:<ServerKey> after the second $");
  ScramSecret s;
  if (!parse_iterations(text.substr(0, colon1), s.iterations)) return bad("the iteration count is not a positive integer");
  auto salt = base64_decode(text.substr(colon1 + 1, dollar - colon1 - 1));
  if (!salt || salt->empty()) return bad("the salt is not base64");
  auto stored = base64_decode(text.substr(dollar + 1, colon2 - dollar - 1));
  if (!stored || stored->size() != SHA256_DIGEST_LENGTH) return bad("StoredKey is not 32 bytes of base64");
  auto server = base64_decode(text.substr(colon2 + 1));
  if (!server || server->size() != SHA256_DIGEST_LENGTH) return bad("ServerKey is not 32 bytes of base64");
  s.salt = std::move(*salt);
  s.stored_key = std::move(*stored);
  s.server_key = std::move(*server);
  return s;
}

ScramSecret scram_secret_from_password(std::string_view password, std::string_view salt, int iterations) {
  Digest salted = salted_password(password, salt, iterations);
  ScramSecret s;
  s.iterations = iterations;
  s.salt = std::string(salt);
  s.stored_key = std::string(as_text(sha256(hmac(salted, "Client Key"))));
  s.server_key = std::string(as_text(hmac(salted, "Server Key")));
  OPENSSL_cleanse(salted.data(), salted.size());
  return s;
}

bool scram_verify_password(const ScramSecret& secret, std::string_view password) {
  if (secret.iterations <= 0 || secret.stored_key.size() != SHA256_DIGEST_LENGTH) return false;
  ScramSecret computed = scram_secret_from_password(password, secret.salt, secret.iterations);
  return equal_digest(to_digest(computed.stored_key), to_digest(secret.stored_key));
}

ScramServer::ScramServer(ScramSecret secret, std::string channel_binding, bool plus)
    : secret_(std::move(secret)), channel_binding_(std::move(channel_binding)), plus_(plus) {}

Result<std::string> ScramServer::handle_client_first(std::string_view client_first, std::string_view server_nonce) {
  if (!server_first_.empty()) return malformed("client-first-message received twice");
  // gs2-header: cbind-flag "," [authzid] ","; checked as PostgreSQL's read_client_first_message.
  if (client_first.empty()) return malformed("empty client-first-message");
  if (plus_ && channel_binding_.empty()) return violation("SCRAM-SHA-256-PLUS selected but not offered");
  std::string_view rest;
  switch (client_first[0]) {
    case 'n':
    case 'y':
      if (client_first.size() < 2 || client_first[1] != ',') return malformed("expected ',' after the channel binding flag");
      if (plus_) {
        return violation("the client selected SCRAM-SHA-256-PLUS, but the SCRAM message does not include "
                         "channel binding data");
      }
      if (client_first[0] == 'y' && !channel_binding_.empty()) {
        // The client could bind but thinks we cannot, while we offered PLUS: someone removed it.
        return violation("SCRAM channel binding negotiation error: the client supports channel binding but "
                         "thinks the server does not, yet this server does support it");
      }
      rest = client_first.substr(2);
      break;
    case 'p': {
      if (channel_binding_.empty()) {
        return unsupported("SCRAM channel binding is only offered over TLS: connect with sslmode=require (or "
                           "better), or channel_binding=disable or prefer");
      }
      if (!plus_) {
        return violation("the client selected SCRAM-SHA-256 without channel binding, but the SCRAM message "
                         "includes channel binding data");
      }
      const size_t comma = client_first.find(',');
      if (client_first.size() < 2 || client_first[1] != '=' || comma == std::string_view::npos) {
        return malformed("expected p=<channel binding type>,");
      }
      const std::string_view type = client_first.substr(2, comma - 2);
      if (type != "tls-server-end-point") {
        return violation("unsupported SCRAM channel binding type \"" + std::string(type) + "\"");
      }
      binding_used_ = true;
      rest = client_first.substr(comma + 1);
      break;
    }
    default:
      return malformed("unexpected channel binding flag");
  }
  if (rest.starts_with("a=")) return unsupported("SCRAM authorization identity (a=) is not supported");
  if (rest.empty() || rest[0] != ',') return malformed("expected ',' after the gs2 header");
  gs2_header_ = std::string(client_first.substr(0, client_first.size() - rest.size() + 1));
  client_first_bare_ = std::string(rest.substr(1));

  auto attrs = split_attributes(client_first_bare_);
  std::string_view user, client_nonce;
  if (!attrs.empty() && attrs[0].starts_with("m=")) return unsupported("SCRAM mandatory extension is not supported");
  // PostgreSQL ignores the SCRAM user name (the startup packet names the role); so do we.
  if (attrs.size() < 2 || !attribute(attrs[0], 'n', user) || !attribute(attrs[1], 'r', client_nonce)) {
    return malformed("client-first-message is not n=...,r=...");
  }
  if (!is_printable_nonce(client_nonce)) return malformed("client nonce is not printable ASCII");
  if (!is_printable_nonce(server_nonce)) return malformed("server nonce is not printable ASCII");
  nonce_ = std::string(client_nonce) + std::string(server_nonce);
  server_first_ = "r=" + nonce_ + ",s=" + base64_encode(secret_.salt) + ",i=" + std::to_string(secret_.iterations);
  return server_first_;
}

Result<std::string> ScramServer::handle_client_final(std::string_view client_final) {
  if (server_first_.empty()) return malformed("client-final-message before client-first-message");
  if (keys_) return malformed("client-final-message received twice");
  auto attrs = split_attributes(client_final);
  std::string_view binding, nonce, proof_b64;
  if (attrs.size() < 3 || !attribute(attrs[0], 'c', binding) || !attribute(attrs[1], 'r', nonce) ||
      !attribute(attrs.back(), 'p', proof_b64)) {
    return malformed("client-final-message is not c=...,r=...,p=...");
  }
  // c= is the gs2 header, followed with "p=" by the binding data of this connection.
  auto header = base64_decode(binding);
  const std::string expected = binding_used_ ? gs2_header_ + channel_binding_ : gs2_header_;
  if (!header || *header != expected) {
    if (binding_used_) return violation("SCRAM channel binding check failed");
    return malformed("channel binding does not match the gs2 header");
  }
  if (nonce != nonce_) return malformed("nonce does not match the one of this exchange");
  auto proof = base64_decode(proof_b64);
  if (!proof || proof->size() != SHA256_DIGEST_LENGTH) return malformed("proof is not 32 bytes of base64");

  const std::string_view without_proof = client_final.substr(0, client_final.size() - attrs.back().size() - 1);
  const std::string auth_message = client_first_bare_ + "," + server_first_ + "," + std::string(without_proof);
  const Digest stored_key = to_digest(secret_.stored_key);
  Digest client_key = xor_digest(to_digest(*proof), hmac(stored_key, auth_message));
  const bool ok = equal_digest(sha256(client_key), stored_key);
  if (!ok) {
    OPENSSL_cleanse(client_key.data(), client_key.size());
    return Error{sqlstate::kInvalidPassword, "SCRAM proof does not match: wrong password"};
  }
  keys_ = ScramKeys{std::string(as_text(client_key)), secret_.server_key, secret_.salt, secret_.iterations};
  OPENSSL_cleanse(client_key.data(), client_key.size());
  return "v=" + base64_encode(as_text(hmac(to_digest(secret_.server_key), auth_message)));
}

}  // namespace pgrelay::protocol
