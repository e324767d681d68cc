// ErrorResponse and NoticeResponse: decoding their fields and building them.
//
// https://www.postgresql.org/docs/15/protocol-error-fields.html
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol/bytes.h"
#include "protocol/result.h"

namespace pgrelay::protocol {

// A decoded ErrorResponse or NoticeResponse. Views point into the message body.
struct ErrorNotice {
  std::string_view severity;       // 'S' (localized), e.g. "ERROR", "FATAL"
  std::string_view severity_code;  // 'V' (never localized, PostgreSQL 9.6+); empty from older servers
  std::string_view sqlstate;       // 'C'
  std::string_view message;        // 'M'
  std::string_view detail;         // 'D'
  std::string_view hint;           // 'H'
  std::vector<std::pair<char, std::string_view>> fields;   // every field, in order

  // The value of field `code`, or empty.
  std::string_view field(char code) const;
  // Decided on 'V' when present: 'S' is translated when lc_messages is not English.
  bool is_fatal() const {
    std::string_view s = severity_code.empty() ? severity : severity_code;
    return s == "FATAL" || s == "PANIC";
  }
};

// Decodes the body of an 'E' or 'N' message.
Result<ErrorNotice> decode_error_notice(Bytes body);

// What pgrelay itself says to a client. Severity is one of ERROR, FATAL, WARNING, NOTICE...
struct ErrorSpec {
  std::string severity = "ERROR";
  std::string sqlstate;
  std::string message;
  std::string detail;   // omitted when empty
  std::string hint;     // omitted when empty
};

// Appends an ErrorResponse ('E') with fields S, V, C, M and D/H when set.
void encode_error_response(const ErrorSpec& e, Buffer& out);
// Appends a NoticeResponse ('N') with the same fields.
void encode_notice_response(const ErrorSpec& e, Buffer& out);

}  // namespace pgrelay::protocol
