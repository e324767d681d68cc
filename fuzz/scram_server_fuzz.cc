// Fuzz target: the server side of a SCRAM-SHA-256 exchange, fed what a client that has not
// authenticated yet sends, and the parsers of the secrets a config or userlist holds.
//
// Input: 1 byte of flags (bit 0: channel binding offered, bit 1: the client chose -PLUS), then
// client-first-message, a NUL, client-final-message. The server's secret is fixed (password
// "pencil", salt "fuzz-salt", 16 iterations) and its nonce is "srvnonce", so seeds can carry a
// whole valid exchange (fuzz/tools/scram_seeds.py).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/fuzz_util.h"
#include "protocol/scram.h"
#include "protocol/scram_server.h"

namespace pr = pgrelay::protocol;
using pgrelay::fuzz::check;

namespace {

const pr::ScramSecret& secret() {
  static const pr::ScramSecret s = pr::scram_secret_from_password("pencil", "fuzz-salt", 16);
  return s;
}

constexpr std::string_view kChannelBinding = "0123456789abcdef0123456789abcdef";   // a certificate hash

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t flags = data[0];
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  const size_t nul = rest.find('\0');
  std::string_view first = rest.substr(0, nul);
  std::string_view final_message = nul == std::string_view::npos ? std::string_view() : rest.substr(nul + 1);

  // The same bytes as stored secrets and key texts: parsed, never trusted.
  if (auto s = pr::parse_scram_secret(rest); s.ok()) check(s->iterations > 0);
  if (auto k = pr::decode_scram_keys(rest); k.ok()) check(pr::decode_scram_keys(pr::encode_scram_keys(*k)).ok());
  if (auto b = pr::base64_decode(first); b.ok()) check(pr::base64_encode(*b) == first);

  pr::ScramServer server(secret(), (flags & 1) ? std::string(kChannelBinding) : std::string(), (flags & 2) != 0);
  auto server_first = server.handle_client_first(first, "srvnonce");
  if (!server_first.ok()) {
    check(server_first.error().sqlstate.size() == 5);
    return 0;
  }
  check(server_first->starts_with("r="));
  auto server_final = server.handle_client_final(final_message);
  if (!server_final.ok()) {
    check(server_final.error().sqlstate.size() == 5);
    check(!server.keys());
    return 0;
  }
  // Only the password's proof gets this far; the keys it yields log in as the same role.
  check(server_final->starts_with("v="));
  check(server.keys() && server.keys()->server_key == secret().server_key);
  return 0;
}
