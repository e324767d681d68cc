// Incremental framing of typed messages: the out-of-line error path.
#include "protocol/framer.h"

#include "protocol/sqlstate.h"

namespace pgrelay::protocol {

Error Framer::length_error(char type, uint32_t length) const {
  std::string t = (type >= 0x20 && type < 0x7f) ? std::string(1, type) : "0x" + std::to_string(uint8_t(type));
  if (length < 4) {
    return {sqlstate::kProtocolViolation,
            "invalid message length " + std::to_string(length) + " for message type '" + t + "'"};
  }
  return {sqlstate::kProgramLimitExceeded,
          "message of type '" + t + "' is " + std::to_string(length) + " bytes, over the limit of " +
              std::to_string(max_message_size_) + " bytes"};
}

}  // namespace pgrelay::protocol
