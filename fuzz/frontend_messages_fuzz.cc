// Fuzz target: every frontend message decoder, and encode(decode(body)) == body where the
// encoding is canonical.
//
// Input: 1 byte choosing the message type, then the body as the Framer would deliver it.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "fuzz/fuzz_util.h"
#include "protocol/messages.h"

namespace pr = pgrelay::protocol;
using pgrelay::fuzz::check;
using pgrelay::fuzz::round_trips;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const char type = char(data[0]);
  pr::Bytes body(reinterpret_cast<const std::byte*>(data + 1), size - 1);
  switch (type) {
    case pr::frontend::kQuery: round_trips(type, body, pr::decode_query(body)); break;
    case pr::frontend::kParse: round_trips(type, body, pr::decode_parse(body)); break;
    case pr::frontend::kBind: round_trips(type, body, pr::decode_bind(body)); break;
    case pr::frontend::kDescribe: round_trips(type, body, pr::decode_describe(body)); break;
    case pr::frontend::kExecute: round_trips(type, body, pr::decode_execute(body)); break;
    case pr::frontend::kClose: round_trips(type, body, pr::decode_close(body)); break;
    case pr::frontend::kCopyData: {
      auto m = pr::decode_copy_data(body);
      check(m.ok() && m->data.size() == body.size());
      break;
    }
    case pr::frontend::kCopyFail: round_trips(type, body, pr::decode_copy_fail(body)); break;
    case pr::frontend::kFunctionCall: round_trips(type, body, pr::decode_function_call(body)); break;
    case pr::frontend::kPassword: {
      // One type byte, three messages: which one depends on the authentication in progress.
      round_trips(type, body, pr::decode_password_message(body));
      round_trips(type, body, pr::decode_sasl_initial_response(body));
      round_trips(type, body, pr::decode_sasl_response(body));
      break;
    }
    default: {
      // Any body through every decoder: none may read past it.
      (void)pr::decode_query(body);
      (void)pr::decode_parse(body);
      (void)pr::decode_bind(body);
      (void)pr::decode_describe(body);
      (void)pr::decode_execute(body);
      (void)pr::decode_close(body);
      (void)pr::decode_function_call(body);
      break;
    }
  }
  return 0;
}
