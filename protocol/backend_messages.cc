// Backend messages (what servers send): decoding bodies, encoding whole messages.
//
// The proxy decodes these from servers it trusts only so far: a broken or hostile server
// must not be able to crash it or make it allocate more than the body it already holds.
#include <algorithm>

#include "protocol/codec_detail.h"
#include "protocol/messages.h"

namespace pgrelay::protocol {

using namespace detail;   // Decoder, put_*

namespace {

// Smallest FieldDescription: empty name (its NUL) + 4 + 2 + 4 + 2 + 4 + 2.
constexpr size_t kMinFieldDescription = 19;

}  // namespace

Result<Authentication> decode_authentication(Bytes body) {
  Decoder d("Authentication", body);
  Authentication m;
  int32_t code = 0;
  if (!d.i32(code, "request type")) return d.error();
  m.type = AuthType(code);
  switch (m.type) {
    case AuthType::kOk:
    case AuthType::kKerberosV5:
    case AuthType::kCleartextPassword:
    case AuthType::kGss:
    case AuthType::kSspi:
      break;
    case AuthType::kMd5Password: {
      Bytes salt;
      if (!d.bytes(4, salt, "MD5 salt")) return d.error();
      std::copy(salt.begin(), salt.end(), m.md5_salt.begin());
      break;
    }
    case AuthType::kSasl:
      // Mechanism names, then an empty one. No reserve: the list grows only with bytes read.
      while (true) {
        std::string_view mech;
        if (!d.cstr(mech, "SASL mechanism list")) return d.error();
        if (mech.empty()) break;
        m.sasl_mechanisms.push_back(mech);
      }
      break;
    case AuthType::kGssContinue:
    case AuthType::kSaslContinue:
    case AuthType::kSaslFinal:
      m.data = d.rest();
      break;
    default:
      d.fail("unsupported authentication request type " + std::to_string(code));
      return d.error();
  }
  if (!d.end()) return d.error();
  return m;
}

Result<ParameterStatus> decode_parameter_status(Bytes body) {
  Decoder d("ParameterStatus", body);
  ParameterStatus m;
  if (!d.cstr(m.name, "parameter name") || !d.cstr(m.value, "parameter value") || !d.end()) return d.error();
  return m;
}

Result<BackendKeyData> decode_backend_key_data(Bytes body) {
  Decoder d("BackendKeyData", body);
  BackendKeyData m;
  if (!d.i32(m.pid, "process ID") || !d.i32(m.secret, "secret key") || !d.end()) return d.error();
  return m;
}

Result<ReadyForQuery> decode_ready_for_query(Bytes body) {
  Decoder d("ReadyForQuery", body);
  uint8_t s = 0;
  if (!d.u8(s, "transaction status")) return d.error();
  // Pool modes release connections on this byte; an unknown value must not be read as idle.
  if (s != 'I' && s != 'T' && s != 'E') {
    d.fail("invalid transaction status " + std::to_string(s));
    return d.error();
  }
  if (!d.end()) return d.error();
  return ReadyForQuery{char(s)};
}

Result<RowDescription> decode_row_description(Bytes body) {
  Decoder d("RowDescription", body);
  RowDescription m;
  size_t n = 0;
  if (!d.count16(n, "field count", kMinFieldDescription)) return d.error();
  m.fields.resize(n);
  for (auto& f : m.fields) {
    if (!d.cstr(f.name, "field name") || !d.i32(f.table_oid, "table OID") || !d.i16(f.column, "column number") ||
        !d.i32(f.type_oid, "type OID") || !d.i16(f.type_size, "type size") ||
        !d.i32(f.type_modifier, "type modifier") || !d.i16(f.format, "format code")) {
      return d.error();
    }
  }
  if (!d.end()) return d.error();
  return m;
}

bool row_description_names(Bytes body, std::vector<std::string_view>& names) {
  names.clear();
  Decoder d("RowDescription", body);
  size_t n = 0;
  if (!d.count16(n, "field count", kMinFieldDescription)) return false;
  constexpr size_t kAfterName = kMinFieldDescription - 1;   // the OIDs, sizes and format code
  Bytes skipped;
  for (size_t i = 0; i < n; ++i) {
    std::string_view name;
    if (!d.cstr(name, "field name") || !d.bytes(kAfterName, skipped, "field description")) return false;
    names.push_back(name);
  }
  return d.end();
}

Result<DataRow> decode_data_row(Bytes body) {
  Decoder d("DataRow", body);
  DataRow m;
  size_t n = 0;
  if (!d.count16(n, "column count", 4)) return d.error();
  m.values.resize(n);
  for (auto& v : m.values) {
    if (!d.value(v, "column value")) return d.error();
  }
  if (!d.end()) return d.error();
  return m;
}

Result<CommandComplete> decode_command_complete(Bytes body) {
  Decoder d("CommandComplete", body);
  CommandComplete m;
  if (!d.cstr(m.tag, "command tag") || !d.end()) return d.error();
  return m;
}

Result<NotificationResponse> decode_notification_response(Bytes body) {
  Decoder d("NotificationResponse", body);
  NotificationResponse m;
  if (!d.i32(m.pid, "process ID") || !d.cstr(m.channel, "channel name") || !d.cstr(m.payload, "payload") ||
      !d.end()) {
    return d.error();
  }
  return m;
}

Result<ParameterDescription> decode_parameter_description(Bytes body) {
  Decoder d("ParameterDescription", body);
  ParameterDescription m;
  size_t n = 0;
  if (!d.count16(n, "parameter count", 4)) return d.error();
  m.types.resize(n);
  for (auto& t : m.types) {
    if (!d.i32(t, "parameter type")) return d.error();
  }
  if (!d.end()) return d.error();
  return m;
}

Result<CopyResponse> decode_copy_response(char kind, Bytes body) {
  const char* name = kind == backend::kCopyInResponse    ? "CopyInResponse"
                     : kind == backend::kCopyOutResponse ? "CopyOutResponse"
                     : kind == backend::kCopyBothResponse ? "CopyBothResponse"
                                                          : "copy response";
  Decoder d(name, body);
  if (kind != backend::kCopyInResponse && kind != backend::kCopyOutResponse && kind != backend::kCopyBothResponse) {
    d.fail("message type " + std::to_string(uint8_t(kind)) + " is not G, H or W");
    return d.error();
  }
  CopyResponse m;
  m.kind = kind;
  uint8_t format = 0;
  size_t n = 0;
  if (!d.u8(format, "overall format")) return d.error();
  if (format > 1) {
    d.fail("invalid overall format " + std::to_string(format));
    return d.error();
  }
  m.format = int8_t(format);
  if (!d.count16(n, "column count", 2)) return d.error();
  m.column_formats.resize(n);
  for (auto& f : m.column_formats) {
    if (!d.i16(f, "column format")) return d.error();
  }
  if (!d.end()) return d.error();
  return m;
}

Result<NegotiateProtocolVersion> decode_negotiate_protocol_version(Bytes body) {
  Decoder d("NegotiateProtocolVersion", body);
  NegotiateProtocolVersion m;
  size_t n = 0;
  if (!d.i32(m.newest_minor, "newest minor version") || !d.count32(n, "option count", 1)) return d.error();
  m.unrecognized.resize(n);
  for (auto& o : m.unrecognized) {
    if (!d.cstr(o, "option name")) return d.error();
  }
  if (!d.end()) return d.error();
  return m;
}

Result<FunctionCallResponse> decode_function_call_response(Bytes body) {
  Decoder d("FunctionCallResponse", body);
  FunctionCallResponse m;
  if (!d.value(m.result, "result value") || !d.end()) return d.error();
  return m;
}

void encode(const Authentication& m, Buffer& out) {
  Writer w(out);
  size_t mark = w.begin(backend::kAuthentication);
  w.i32(int32_t(m.type));
  switch (m.type) {
    case AuthType::kMd5Password:
      w.bytes(m.md5_salt);
      break;
    case AuthType::kSasl:
      for (auto mech : m.sasl_mechanisms) w.cstr(mech);
      w.u8(0);
      break;
    case AuthType::kGssContinue:
    case AuthType::kSaslContinue:
    case AuthType::kSaslFinal:
      w.bytes(m.data);
      break;
    default:
      break;
  }
  w.end(mark);
}

void encode(const ParameterStatus& m, Buffer& out) {
  Writer w(out);
  size_t mark = w.begin(backend::kParameterStatus);
  w.cstr(m.name);
  w.cstr(m.value);
  w.end(mark);
}

void encode(const BackendKeyData& m, Buffer& out) {
  Writer w(out);
  size_t mark = w.begin(backend::kBackendKeyData);
  w.i32(m.pid);
  w.i32(m.secret);
  w.end(mark);
}

void encode(const ReadyForQuery& m, Buffer& out) {
  Writer w(out);
  size_t mark = w.begin(backend::kReadyForQuery);
  w.u8(uint8_t(m.status));
  w.end(mark);
}

void encode(const RowDescription& m, Buffer& out) {
  Writer w(out);
  size_t mark = w.begin(backend::kRowDescription);
  w.i16(int16_t(m.fields.size()));
  for (const auto& f : m.fields) {
    w.cstr(f.name);
    w.i32(f.table_oid);
    w.i16(f.column);
    w.i32(f.type_oid);
    w.i16(f.type_size);
    w.i32(f.type_modifier);
    w.i16(f.format);
  }
  w.end(mark);
}

void encode(const DataRow& m, Buffer& out) {
  Writer w(out);
  size_t mark = w.begin(backend::kDataRow);
  w.i16(int16_t(m.values.size()));
  for (const auto& v : m.values) put_value(w, v);
  w.end(mark);
}

void encode(const CommandComplete& m, Buffer& out) { put_string(backend::kCommandComplete, m.tag, out); }
void encode(const EmptyQueryResponse&, Buffer& out) { put_empty(backend::kEmptyQueryResponse, out); }

void encode(const NotificationResponse& m, Buffer& out) {
  Writer w(out);
  size_t mark = w.begin(backend::kNotificationResponse);
  w.i32(m.pid);
  w.cstr(m.channel);
  w.cstr(m.payload);
  w.end(mark);
}

void encode(const ParseComplete&, Buffer& out) { put_empty(backend::kParseComplete, out); }
void encode(const BindComplete&, Buffer& out) { put_empty(backend::kBindComplete, out); }
void encode(const CloseComplete&, Buffer& out) { put_empty(backend::kCloseComplete, out); }
void encode(const NoData&, Buffer& out) { put_empty(backend::kNoData, out); }
void encode(const PortalSuspended&, Buffer& out) { put_empty(backend::kPortalSuspended, out); }

void encode(const ParameterDescription& m, Buffer& out) {
  Writer w(out);
  size_t mark = w.begin(backend::kParameterDescription);
  w.i16(int16_t(m.types.size()));
  for (int32_t t : m.types) w.i32(t);
  w.end(mark);
}

void encode(const CopyResponse& m, Buffer& out) {
  Writer w(out);
  size_t mark = w.begin(m.kind);
  w.u8(uint8_t(m.format));
  put_formats(w, m.column_formats);
  w.end(mark);
}

void encode(const NegotiateProtocolVersion& m, Buffer& out) {
  Writer w(out);
  size_t mark = w.begin(backend::kNegotiateProtocolVersion);
  w.i32(m.newest_minor);
  w.i32(int32_t(m.unrecognized.size()));
  for (auto o : m.unrecognized) w.cstr(o);
  w.end(mark);
}

void encode(const FunctionCallResponse& m, Buffer& out) {
  Writer w(out);
  size_t mark = w.begin(backend::kFunctionCallResponse);
  put_value(w, m.result);
  w.end(mark);
}

void encode_backend(const CopyData& m, Buffer& out) { put_bytes(backend::kCopyData, m.data, out); }
void encode_backend(const CopyDone&, Buffer& out) { put_empty(backend::kCopyDone, out); }

}  // namespace pgrelay::protocol
