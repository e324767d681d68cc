// ErrorResponse and NoticeResponse: decoding the fields servers send and building the ones pgrelay sends.
#include "protocol/error_fields.h"

#include "protocol/codec_detail.h"

namespace pgrelay::protocol {
namespace {

void encode_fields(char type, const ErrorSpec& e, Buffer& out) {
  Writer w(out);
  size_t mark = w.begin(type);
  w.u8('S');
  w.cstr(e.severity);
  // 'V' is the non-localized severity (PostgreSQL 9.6+); clients such as libpq prefer it.
  w.u8('V');
  w.cstr(e.severity);
  w.u8('C');
  w.cstr(e.sqlstate);
  w.u8('M');
  w.cstr(e.message);
  if (!e.detail.empty()) {
    w.u8('D');
    w.cstr(e.detail);
  }
  if (!e.hint.empty()) {
    w.u8('H');
    w.cstr(e.hint);
  }
  w.u8(0);
  w.end(mark);
}

}  // namespace

std::string_view ErrorNotice::field(char code) const {
  for (const auto& [c, v] : fields) {
    if (c == code) return v;
  }
  return {};
}

Result<ErrorNotice> decode_error_notice(Bytes body) {
  detail::Decoder d("ErrorResponse/NoticeResponse", body);
  ErrorNotice m;
  while (true) {
    uint8_t code = 0;
    if (!d.u8(code, "field type")) return d.error();
    if (code == 0) break;   // the terminator
    std::string_view value;
    if (!d.cstr(value, "field value")) return d.error();
    // Fields are pushed as read, so the vector never outgrows the body.
    m.fields.emplace_back(char(code), value);
    switch (code) {
      case 'S': m.severity = value; break;
      case 'V': m.severity_code = value; break;
      case 'C': m.sqlstate = value; break;
      case 'M': m.message = value; break;
      case 'D': m.detail = value; break;
      case 'H': m.hint = value; break;
      default: break;   // unknown codes must be ignored, the protocol says
    }
  }
  if (!d.end()) return d.error();
  return m;
}

void encode_error_response(const ErrorSpec& e, Buffer& out) { encode_fields('E', e, out); }

void encode_notice_response(const ErrorSpec& e, Buffer& out) { encode_fields('N', e, out); }

}  // namespace pgrelay::protocol
