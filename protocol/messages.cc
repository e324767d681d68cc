// Frontend messages (what clients send after startup): decoding bodies, encoding whole messages.
//
// Backend messages live in backend_messages.cc; both go through detail::Decoder so that every
// malformed body becomes one 08P01 Error naming the message and the field.
#include "protocol/messages.h"

#include "protocol/codec_detail.h"

namespace pgrelay::protocol {

using namespace detail;   // Decoder, put_*

namespace {

// Int16 format codes (Bind, FunctionCall).
bool read_formats(Decoder& d, std::vector<int16_t>& out, const char* what) {
  size_t n = 0;
  if (!d.count16(n, what, 2)) return false;
  out.resize(n);
  for (auto& f : out) {
    if (!d.i16(f, what)) return false;
  }
  return true;
}

// Int16 count of values, each Int32 length + bytes (Bind parameters, FunctionCall arguments).
bool read_values(Decoder& d, std::vector<Value>& out, const char* what) {
  size_t n = 0;
  if (!d.count16(n, what, 4)) return false;
  out.resize(n);
  for (auto& v : out) {
    if (!d.value(v, what)) return false;
  }
  return true;
}

// PostgreSQL allows 0 format codes (all text), 1 (applies to all) or one per value; anything
// else it rejects, and we must not guess which value a format belongs to (cache keys use them).
bool check_format_count(Decoder& d, size_t formats, size_t values) {
  if (formats <= 1 || formats == values) return true;
  return d.fail(std::to_string(formats) + " parameter formats but " + std::to_string(values) + " parameters");
}

bool read_kind(Decoder& d, char& kind) {
  uint8_t k = 0;
  if (!d.u8(k, "kind")) return false;
  if (k != 'S' && k != 'P') return d.fail("invalid subtype " + std::to_string(k) + ", expected 'S' or 'P'");
  kind = char(k);
  return true;
}

}  // namespace

Result<Query> decode_query(Bytes body) {
  Decoder d("Query", body);
  Query m;
  if (!d.cstr(m.sql, "query string") || !d.end()) return d.error();
  return m;
}

Result<Parse> decode_parse(Bytes body) {
  Decoder d("Parse", body);
  Parse m;
  size_t n = 0;
  if (!d.cstr(m.name, "statement name") || !d.cstr(m.query, "query string") ||
      !d.count16(n, "parameter type count", 4)) {
    return d.error();
  }
  m.param_types.resize(n);
  for (auto& t : m.param_types) {
    if (!d.i32(t, "parameter type")) return d.error();
  }
  if (!d.end()) return d.error();
  return m;
}

Result<Bind> decode_bind(Bytes body) {
  Decoder d("Bind", body);
  Bind m;
  if (!d.cstr(m.portal, "portal name") || !d.cstr(m.statement, "statement name") ||
      !read_formats(d, m.param_formats, "parameter format count") ||
      !read_values(d, m.params, "parameter value") ||
      !check_format_count(d, m.param_formats.size(), m.params.size()) ||
      !read_formats(d, m.result_formats, "result format count") || !d.end()) {
    return d.error();
  }
  return m;
}

Result<Describe> decode_describe(Bytes body) {
  Decoder d("Describe", body);
  Describe m;
  if (!read_kind(d, m.kind) || !d.cstr(m.name, "name") || !d.end()) return d.error();
  return m;
}

Result<Execute> decode_execute(Bytes body) {
  Decoder d("Execute", body);
  Execute m;
  // max_rows <= 0 means "all rows" to PostgreSQL, so negative values are legal.
  if (!d.cstr(m.portal, "portal name") || !d.i32(m.max_rows, "row limit") || !d.end()) return d.error();
  return m;
}

Result<Close> decode_close(Bytes body) {
  Decoder d("Close", body);
  Close m;
  if (!read_kind(d, m.kind) || !d.cstr(m.name, "name") || !d.end()) return d.error();
  return m;
}

Result<CopyData> decode_copy_data(Bytes body) { return CopyData{body}; }

Result<CopyFail> decode_copy_fail(Bytes body) {
  Decoder d("CopyFail", body);
  CopyFail m;
  if (!d.cstr(m.message, "error message") || !d.end()) return d.error();
  return m;
}

Result<FunctionCall> decode_function_call(Bytes body) {
  Decoder d("FunctionCall", body);
  FunctionCall m;
  if (!d.i32(m.function_oid, "function OID") || !read_formats(d, m.arg_formats, "argument format count") ||
      !read_values(d, m.args, "argument value") ||
      !check_format_count(d, m.arg_formats.size(), m.args.size()) ||
      !d.i16(m.result_format, "result format") || !d.end()) {
    return d.error();
  }
  return m;
}

Result<PasswordMessage> decode_password_message(Bytes body) {
  Decoder d("PasswordMessage", body);
  PasswordMessage m;
  if (!d.cstr(m.password, "password") || !d.end()) return d.error();
  return m;
}

Result<SaslInitialResponse> decode_sasl_initial_response(Bytes body) {
  Decoder d("SASLInitialResponse", body);
  SaslInitialResponse m;
  if (!d.cstr(m.mechanism, "mechanism name") || !d.value(m.data, "initial response") || !d.end()) {
    return d.error();
  }
  return m;
}

Result<SaslResponse> decode_sasl_response(Bytes body) { return SaslResponse{body}; }

void encode(const Query& m, Buffer& out) { put_string(frontend::kQuery, m.sql, out); }

void encode(const Parse& m, Buffer& out) {
  Writer w(out);
  size_t mark = w.begin(frontend::kParse);
  w.cstr(m.name);
  w.cstr(m.query);
  w.i16(int16_t(m.param_types.size()));
  for (int32_t t : m.param_types) w.i32(t);
  w.end(mark);
}

void encode(const Bind& m, Buffer& out) {
  Writer w(out);
  size_t mark = w.begin(frontend::kBind);
  w.cstr(m.portal);
  w.cstr(m.statement);
  put_formats(w, m.param_formats);
  w.i16(int16_t(m.params.size()));
  for (const auto& v : m.params) put_value(w, v);
  put_formats(w, m.result_formats);
  w.end(mark);
}

void encode(const Describe& m, Buffer& out) {
  Writer w(out);
  size_t mark = w.begin(frontend::kDescribe);
  w.u8(uint8_t(m.kind));
  w.cstr(m.name);
  w.end(mark);
}

void encode(const Execute& m, Buffer& out) {
  Writer w(out);
  size_t mark = w.begin(frontend::kExecute);
  w.cstr(m.portal);
  w.i32(m.max_rows);
  w.end(mark);
}

void encode(const Close& m, Buffer& out) {
  Writer w(out);
  size_t mark = w.begin(frontend::kClose);
  w.u8(uint8_t(m.kind));
  w.cstr(m.name);
  w.end(mark);
}

void encode(const Sync&, Buffer& out) { put_empty(frontend::kSync, out); }
void encode(const Flush&, Buffer& out) { put_empty(frontend::kFlush, out); }
void encode(const Terminate&, Buffer& out) { put_empty(frontend::kTerminate, out); }

void encode_frontend(const CopyData& m, Buffer& out) { put_bytes(frontend::kCopyData, m.data, out); }

void encode_frontend(const CopyDone&, Buffer& out) { put_empty(frontend::kCopyDone, out); }

void encode(const CopyFail& m, Buffer& out) { put_string(frontend::kCopyFail, m.message, out); }

void encode(const FunctionCall& m, Buffer& out) {
  Writer w(out);
  size_t mark = w.begin(frontend::kFunctionCall);
  w.i32(m.function_oid);
  put_formats(w, m.arg_formats);
  w.i16(int16_t(m.args.size()));
  for (const auto& v : m.args) put_value(w, v);
  w.i16(m.result_format);
  w.end(mark);
}

void encode(const PasswordMessage& m, Buffer& out) { put_string(frontend::kPassword, m.password, out); }

void encode(const SaslInitialResponse& m, Buffer& out) {
  Writer w(out);
  size_t mark = w.begin(frontend::kPassword);
  w.cstr(m.mechanism);
  put_value(w, m.data);
  w.end(mark);
}

void encode(const SaslResponse& m, Buffer& out) { put_bytes(frontend::kPassword, m.data, out); }

}  // namespace pgrelay::protocol
