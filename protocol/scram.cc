// SCRAM-SHA-256 client math and stored secrets (RFC 5802 / RFC 7677) over OpenSSL libcrypto.
#include "protocol/scram.h"

#include <cstring>

#include "protocol/scram_detail.h"
#include "protocol/sqlstate.h"

namespace pgrelay::protocol {
namespace {

using namespace scram_detail;

// RFC 5802 saslname: ',' and '=' are escaped so the attribute list stays parseable.
std::string escape_saslname(std::string_view user) {
  std::string out;
  for (char c : user) {
    if (c == ',') out += "=2C";
    else if (c == '=') out += "=3D";
    else out += c;
  }
  return out;
}

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int decode_char(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

}  // namespace

ScramClient::ScramClient(std::string password, std::string client_nonce, std::string user)
    : password_(std::move(password)), client_nonce_(std::move(client_nonce)) {
  client_first_bare_ = "n=" + escape_saslname(user) + ",r=" + client_nonce_;
}

ScramClient::ScramClient(ScramKeys keys, std::string client_nonce)
    : keys_(std::move(keys)), client_nonce_(std::move(client_nonce)) {
  client_first_bare_ = "n=,r=" + client_nonce_;
}

void ScramClient::set_channel_binding(std::string data, bool use) {
  gs2_header_ = use ? "p=tls-server-end-point,," : "y,,";
  channel_binding_ = use ? std::move(data) : std::string();
}

std::string ScramClient::client_first_message() const { return gs2_header_ + client_first_bare_; }

Result<std::string> ScramClient::handle_server_first(std::string_view server_first) {
  auto attrs = split_attributes(server_first);
  if (!attrs.empty() && attrs[0].starts_with("m=")) {
    return Error{sqlstate::kFeatureNotSupported, "SCRAM mandatory extension is not supported"};
  }
  std::string_view nonce, salt_b64, iter_text;
  if (attrs.size() < 3 || !attribute(attrs[0], 'r', nonce) || !attribute(attrs[1], 's', salt_b64) ||
      !attribute(attrs[2], 'i', iter_text)) {
    return malformed("server-first-message is not r=...,s=...,i=...");
  }
  // The server appends its own nonce to ours; an unchanged or different one is a replay or
  // a confused server, and we must not prove the password to it.
  if (nonce.size() <= client_nonce_.size() || !nonce.starts_with(client_nonce_)) {
    return Error{sqlstate::kInvalidAuthorization, "SCRAM server nonce does not extend the client nonce"};
  }
  for (char c : nonce) {
    if (c < 0x21 || c > 0x7e) return malformed("server nonce is not printable ASCII");
  }
  auto salt = base64_decode(salt_b64);
  if (!salt || salt->empty()) return malformed("salt is not base64");
  int iterations = 0;
  if (!parse_iterations(iter_text, iterations)) return malformed("iteration count is not a positive integer");
  if (!keys_ && iterations > kMaxScramIterations) {   // keys cost nothing to use
    return Error{sqlstate::kProgramLimitExceeded, "the server asks for " + std::to_string(iterations) +
                                                      " SCRAM iterations, more than pgrelay computes (" +
                                                      std::to_string(kMaxScramIterations) + ")"};
  }

  Digest client_key{}, server_key{};
  if (keys_) {
    // Keys fit one salt and iteration count; another secret on the server means the role's
    // password changed since the client's secret was read.
    if (*salt != keys_->salt || iterations != keys_->iterations) {
      return Error{sqlstate::kInvalidAuthorization,
                   "the server's SCRAM salt or iteration count is not the one of the secret the client "
                   "authenticated with (was the password changed?)"};
    }
    if (keys_->client_key.size() != client_key.size() || keys_->server_key.size() != server_key.size()) {
      return Error{sqlstate::kInvalidAuthorization, "SCRAM keys have the wrong length"};
    }
    std::memcpy(client_key.data(), keys_->client_key.data(), client_key.size());
    std::memcpy(server_key.data(), keys_->server_key.data(), server_key.size());
  } else {
    Digest salted = salted_password(password_, *salt, iterations);
    client_key = hmac(salted, "Client Key");
    server_key = hmac(salted, "Server Key");
    OPENSSL_cleanse(salted.data(), salted.size());
  }
  Digest stored_key = sha256(client_key);

  // The gs2 header of client-first ("biws" is base64("n,,")), with the channel binding data
  // after it when binding: echoed back to bind the exchange to it (and to the TLS channel).
  std::string without_proof = "c=" + base64_encode(gs2_header_ + channel_binding_) + ",r=" + std::string(nonce);
  std::string auth_message = client_first_bare_ + "," + std::string(server_first) + "," + without_proof;
  Digest proof = xor_digest(client_key, hmac(stored_key, auth_message));
  expected_server_signature_ = std::string(as_text(hmac(server_key, auth_message)));
  OPENSSL_cleanse(client_key.data(), client_key.size());
  return without_proof + ",p=" + base64_encode(as_text(proof));
}

Result<void> ScramClient::verify_server_final(std::string_view server_final) const {
  if (expected_server_signature_.empty()) {
    return Error{sqlstate::kProtocolViolation, "SCRAM server-final-message arrived before server-first-message"};
  }
  std::string_view first = split_attributes(server_final)[0];
  std::string_view value;
  if (attribute(first, 'e', value)) {
    return Error{sqlstate::kInvalidAuthorization, "SCRAM authentication failed: server says " + std::string(value)};
  }
  if (!attribute(first, 'v', value)) return malformed("server-final-message has no verifier");
  auto signature = base64_decode(value);
  if (!signature) return malformed("server signature is not base64");
  // Constant time: how much of the signature matched must not leak through timing.
  if (signature->size() != expected_server_signature_.size() ||
      CRYPTO_memcmp(signature->data(), expected_server_signature_.data(), signature->size()) != 0) {
    return Error{sqlstate::kInvalidAuthorization, "SCRAM server signature does not match: wrong server or password"};
  }
  return {};
}

std::string scram_build_secret(std::string_view password, std::string_view salt, int iterations) {
  Digest salted = salted_password(password, salt, iterations);
  Digest stored_key = sha256(hmac(salted, "Client Key"));
  Digest server_key = hmac(salted, "Server Key");
  OPENSSL_cleanse(salted.data(), salted.size());
  return std::string(kScramSha256) + "$" + std::to_string(iterations) + ":" + base64_encode(salt) + "$" +
         base64_encode(as_text(stored_key)) + ":" + base64_encode(as_text(server_key));
}

std::string encode_scram_keys(const ScramKeys& keys) {
  return std::string(kScramSha256) + "-KEYS$" + std::to_string(keys.iterations) + ":" + base64_encode(keys.salt) +
         "$" + base64_encode(keys.client_key) + ":" + base64_encode(keys.server_key);
}

Result<ScramKeys> decode_scram_keys(std::string_view text) {
  const std::string prefix = std::string(kScramSha256) + "-KEYS$";
  if (!text.starts_with(prefix)) return malformed("SCRAM keys do not start with " + prefix);
  text.remove_prefix(prefix.size());
  const size_t colon1 = text.find(':'), dollar = text.find('$');
  const size_t colon2 = dollar == std::string_view::npos ? dollar : text.find(':', dollar);
  if (colon1 == std::string_view::npos || dollar == std::string_view::npos || colon2 == std::string_view::npos ||
      colon1 > dollar) {
    return malformed("SCRAM keys are not <iterations>:<salt>$<ClientKey>:<ServerKey>");
  }
  ScramKeys keys;
  if (!parse_iterations(text.substr(0, colon1), keys.iterations)) return malformed("bad iteration count in SCRAM keys");
  auto salt = base64_decode(text.substr(colon1 + 1, dollar - colon1 - 1));
  auto client = base64_decode(text.substr(dollar + 1, colon2 - dollar - 1));
  auto server = base64_decode(text.substr(colon2 + 1));
  if (!salt || salt->empty() || !client || client->size() != 32 || !server || server->size() != 32) {
    return malformed("bad salt or key in SCRAM keys");
  }
  keys.salt = std::move(*salt);
  keys.client_key = std::move(*client);
  keys.server_key = std::move(*server);
  return keys;
}

std::string base64_encode(std::string_view raw) {
  std::string out;
  out.reserve((raw.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= raw.size(); i += 3) {
    uint32_t v = (uint32_t(uint8_t(raw[i])) << 16) | (uint32_t(uint8_t(raw[i + 1])) << 8) | uint8_t(raw[i + 2]);
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  size_t left = raw.size() - i;
  if (left > 0) {
    uint32_t v = uint32_t(uint8_t(raw[i])) << 16;
    if (left == 2) v |= uint32_t(uint8_t(raw[i + 1])) << 8;
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += left == 2 ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

Result<std::string> base64_decode(std::string_view text) {
  // Strict: no whitespace, padding only at the end, length a multiple of 4. A lenient
  // decoder would let two spellings of one salt or signature compare unequal.
  if (text.size() % 4 != 0) return malformed("base64 length is not a multiple of 4");
  size_t pad = 0;
  if (!text.empty() && text.back() == '=') pad = (text.size() >= 2 && text[text.size() - 2] == '=') ? 2 : 1;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  uint32_t acc = 0;
  for (size_t i = 0; i < text.size() - pad; ++i) {
    int c = decode_char(text[i]);
    if (c < 0) return malformed("invalid base64 character");
    acc = (acc << 6) | uint32_t(c);
    if (i % 4 == 3) {
      out += char(acc >> 16);
      out += char((acc >> 8) & 0xff);
      out += char(acc & 0xff);
      acc = 0;
    }
  }
  // The bits of the last character that no output byte holds must be 0: "Zh==" would otherwise
  // be a second spelling of "Zg==" (found by fuzz/scram_server).
  if (pad == 2) {
    if (acc & 0xf) return malformed("base64 padding bits are not zero");
    out += char(acc >> 4);
  } else if (pad == 1) {
    if (acc & 0x3) return malformed("base64 padding bits are not zero");
    out += char(acc >> 10);
    out += char((acc >> 2) & 0xff);
  }
  return out;
}

}  // namespace pgrelay::protocol
