// Startup-phase packets: StartupMessage, SSLRequest, GSSENCRequest, CancelRequest.
//
// https://www.postgresql.org/docs/15/protocol-message-formats.html — these packets have no
// type byte: Int32 length (counting itself), Int32 code, then a body that depends on the code.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "protocol/bytes.h"
#include "protocol/result.h"

namespace pgrelay::protocol {

inline constexpr int32_t kProtocolVersion3 = 196608;     // 3.0
inline constexpr int32_t kSslRequestCode = 80877103;
inline constexpr int32_t kGssEncRequestCode = 80877104;
inline constexpr int32_t kCancelRequestCode = 80877102;
// The one-byte answers to SSLRequest and GSSENCRequest: go ahead with TLS ('S'), or not ('N').
// https://www.postgresql.org/docs/15/protocol-flow.html#id-1.10.6.7.12
inline constexpr std::byte kEncryptionAccepted{'S'};
inline constexpr std::byte kEncryptionRefused{'N'};

struct StartupMessage {
  uint16_t major = 3;
  uint16_t minor = 0;
  // In the order the client sent them. "user" is required by PostgreSQL; "database"
  // defaults to the user name.
  std::vector<std::pair<std::string, std::string>> params;

  // The value of a parameter, or nullptr.
  const std::string* get(std::string_view name) const;
};

struct SslRequest {};
struct GssEncRequest {};
struct CancelRequest {
  int32_t pid = 0;
  int32_t secret = 0;
};

using StartupPacket = std::variant<StartupMessage, SslRequest, GssEncRequest, CancelRequest>;

// Given at least the first 4 bytes of a startup packet, its total length (including the
// length field). Errors (08P01) when shorter than 8 or longer than max_size.
Result<uint32_t> startup_packet_length(Bytes first4, uint32_t max_size = 10u << 10);

// Decodes one whole startup packet (length field included). A StartupMessage with a major
// version other than 3 is an error (0A000); minor versions are returned as sent, so the
// caller can answer with NegotiateProtocolVersion. Duplicate or empty parameter names,
// missing terminators and a missing "user" are errors (08P01).
Result<StartupPacket> decode_startup_packet(Bytes packet);

void encode(const StartupMessage& m, Buffer& out);
void encode(const SslRequest&, Buffer& out);
void encode(const GssEncRequest&, Buffer& out);
void encode(const CancelRequest& m, Buffer& out);

}  // namespace pgrelay::protocol
