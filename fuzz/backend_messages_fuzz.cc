// Fuzz target: every backend message decoder (what a server, trusted only so far, sends), and
// encode(decode(body)) == body where the encoding is canonical.
//
// Input: 1 byte choosing the message type, then the body as the Framer would deliver it.
#include <cstddef>
#include <cstdint>

#include "fuzz/fuzz_util.h"
#include "protocol/error_fields.h"
#include "protocol/messages.h"

namespace pr = pgrelay::protocol;
using pgrelay::fuzz::check;
using pgrelay::fuzz::round_trips;

namespace {

void error_notice(pr::Bytes body) {
  auto e = pr::decode_error_notice(body);
  if (!e.ok()) return;
  for (const auto& [code, value] : e->fields) {
    check(code != 0);
    check(value.data() >= reinterpret_cast<const char*>(body.data()));
    check(value.data() + value.size() <= reinterpret_cast<const char*>(body.data() + body.size()));
  }
  (void)e->is_fatal();
  // What pgrelay says back about it is a well-formed message again.
  pr::Buffer out;
  pr::encode_error_response({std::string(e->severity), "08P01", std::string(e->message), std::string(e->detail),
                             std::string(e->hint)},
                            out);
  check(pr::decode_error_notice(pr::Bytes(out).subspan(5)).ok());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const char type = char(data[0]);
  pr::Bytes body(reinterpret_cast<const std::byte*>(data + 1), size - 1);
  namespace b = pr::backend;
  switch (type) {
    case b::kAuthentication: round_trips(type, body, pr::decode_authentication(body)); break;
    case b::kParameterStatus: round_trips(type, body, pr::decode_parameter_status(body)); break;
    case b::kBackendKeyData: round_trips(type, body, pr::decode_backend_key_data(body)); break;
    case b::kReadyForQuery: round_trips(type, body, pr::decode_ready_for_query(body)); break;
    case b::kRowDescription: round_trips(type, body, pr::decode_row_description(body)); break;
    case b::kDataRow: round_trips(type, body, pr::decode_data_row(body)); break;
    case b::kCommandComplete: round_trips(type, body, pr::decode_command_complete(body)); break;
    case b::kNotificationResponse: round_trips(type, body, pr::decode_notification_response(body)); break;
    case b::kParameterDescription: round_trips(type, body, pr::decode_parameter_description(body)); break;
    case b::kCopyInResponse:
    case b::kCopyOutResponse:
    case b::kCopyBothResponse: round_trips(type, body, pr::decode_copy_response(type, body)); break;
    case b::kNegotiateProtocolVersion:
      round_trips(type, body, pr::decode_negotiate_protocol_version(body));
      break;
    case b::kFunctionCallResponse: round_trips(type, body, pr::decode_function_call_response(body)); break;
    case b::kErrorResponse:
    case b::kNoticeResponse: error_notice(body); break;
    default:
      // Any body through every decoder: none may read past it.
      (void)pr::decode_authentication(body);
      (void)pr::decode_row_description(body);
      (void)pr::decode_data_row(body);
      (void)pr::decode_negotiate_protocol_version(body);
      error_notice(body);
      break;
  }
  return 0;
}
