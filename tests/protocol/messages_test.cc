// Typed messages: golden bytes per type, golden -> decode -> encode round trips, malformed bodies, random bodies.
#include <doctest/doctest.h>

#include <functional>
#include <random>

#include "protocol/messages.h"
#include "protocol/sqlstate.h"
#include "tests/protocol/test_util.h"

using namespace pgrelay;
using namespace pgrelay::protocol;
using pgrelay::protocol::test::body_of;
using pgrelay::protocol::test::lit;
using pgrelay::protocol::test::str;

namespace {

// Encodes `m` and compares with `golden`; then decodes the golden body and re-encodes it,
// which must give the golden bytes back (decoders lose nothing encoders need).
template <class M, class Decode, class Encode>
void check_golden(const M& m, const std::string& golden, Decode decode, Encode enc) {
  Buffer b;
  enc(m, b);
  CHECK(str(b) == golden);
  if constexpr (!std::is_same_v<Decode, std::nullptr_t>) {
    const std::string body = golden.substr(5);   // the views in `r` point into it
    auto r = decode(as_bytes(body));
    REQUIRE(r.ok());
    Buffer again;
    enc(*r, again);
    CHECK(str(again) == golden);
  }
}

template <class M, class Decode>
void check_golden(const M& m, const std::string& golden, Decode decode) {
  check_golden(m, golden, decode, [](const auto& x, Buffer& out) { encode(x, out); });
}

// The 08P01 message a decoder gives for `body`, or "" when it decodes.
template <class Decode>
std::string reject(Decode decode, const std::string& body) {
  auto r = decode(as_bytes(body));
  if (r.ok()) return "";
  CHECK(r.error().sqlstate == sqlstate::kProtocolViolation);
  return r.error().message;
}

Value val(std::string_view s) { return Value(as_bytes(s)); }

Authentication auth(AuthType type) {
  Authentication a;
  a.type = type;
  return a;
}

}  // namespace

TEST_CASE("frontend: golden bytes and round trips") {
  check_golden(Query{"select 1"}, lit("Q\x00\x00\x00\x0d" "select 1\0"), decode_query);
  check_golden(Parse{"s1", "select $1", {23}},
               lit("P\x00\x00\x00\x17" "s1\0select $1\0" "\x00\x01\x00\x00\x00\x17"), decode_parse);
  check_golden(Parse{"", "", {}}, lit("P\x00\x00\x00\x08" "\0\0\x00\x00"), decode_parse);
  const std::string forty_two = lit("\x00\x00\x00\x2a");
  check_golden(Bind{"", "s1", {1}, {val(forty_two), std::nullopt}, {0}},
               lit("B\x00\x00\x00\x1e" "\0s1\0" "\x00\x01\x00\x01" "\x00\x02" "\x00\x00\x00\x04\x00\x00\x00\x2a"
                   "\xff\xff\xff\xff" "\x00\x01\x00\x00"),
               decode_bind);
  check_golden(Describe{'P', "p"}, lit("D\x00\x00\x00\x07" "Pp\0"), decode_describe);
  check_golden(Describe{'S', ""}, lit("D\x00\x00\x00\x06" "S\0"), decode_describe);
  check_golden(Execute{"", 0}, lit("E\x00\x00\x00\x09" "\0\x00\x00\x00\x00"), decode_execute);
  check_golden(Execute{"p", 100}, lit("E\x00\x00\x00\x0a" "p\0\x00\x00\x00\x64"), decode_execute);
  check_golden(Close{'S', "s1"}, lit("C\x00\x00\x00\x08" "Ss1\0"), decode_close);
  check_golden(Sync{}, lit("S\x00\x00\x00\x04"), nullptr);
  check_golden(Flush{}, lit("H\x00\x00\x00\x04"), nullptr);
  check_golden(Terminate{}, lit("X\x00\x00\x00\x04"), nullptr);
  auto frontend_copy = [](const auto& m, Buffer& out) { encode_frontend(m, out); };
  check_golden(CopyData{as_bytes("ab\n")}, lit("d\x00\x00\x00\x07" "ab\n"), decode_copy_data, frontend_copy);
  check_golden(CopyDone{}, lit("c\x00\x00\x00\x04"), nullptr, frontend_copy);
  check_golden(CopyFail{"oops"}, lit("f\x00\x00\x00\x09" "oops\0"), decode_copy_fail);
  check_golden(FunctionCall{1598, {}, {val("x")}, 1},
               lit("F\x00\x00\x00\x13" "\x00\x00\x06\x3e" "\x00\x00" "\x00\x01" "\x00\x00\x00\x01" "x" "\x00\x01"),
               decode_function_call);
  check_golden(PasswordMessage{"md5abc"}, lit("p\x00\x00\x00\x0b" "md5abc\0"), decode_password_message);
  check_golden(SaslInitialResponse{"SCRAM-SHA-256", val("n,,n=,r=abc")},
               lit("p\x00\x00\x00\x21" "SCRAM-SHA-256\0" "\x00\x00\x00\x0b" "n,,n=,r=abc"),
               decode_sasl_initial_response);
  check_golden(SaslInitialResponse{"SCRAM-SHA-256", std::nullopt},
               lit("p\x00\x00\x00\x16" "SCRAM-SHA-256\0" "\xff\xff\xff\xff"), decode_sasl_initial_response);
  check_golden(SaslResponse{as_bytes("c=biws")}, lit("p\x00\x00\x00\x0a" "c=biws"), decode_sasl_response);
}

TEST_CASE("backend: golden bytes and round trips") {
  check_golden(auth(AuthType::kOk), lit("R\x00\x00\x00\x08" "\x00\x00\x00\x00"), decode_authentication);
  check_golden(auth(AuthType::kCleartextPassword), lit("R\x00\x00\x00\x08" "\x00\x00\x00\x03"),
               decode_authentication);
  Authentication md5 = auth(AuthType::kMd5Password);
  md5.md5_salt = {std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}};
  check_golden(md5, lit("R\x00\x00\x00\x0c" "\x00\x00\x00\x05" "\x01\x02\x03\x04"), decode_authentication);
  Authentication sasl = auth(AuthType::kSasl);
  sasl.sasl_mechanisms = {"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"};
  check_golden(sasl, lit("R\x00\x00\x00\x2a" "\x00\x00\x00\x0a" "SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0"),
               decode_authentication);
  Authentication cont = auth(AuthType::kSaslContinue);
  cont.data = as_bytes("r=abc");
  check_golden(cont, lit("R\x00\x00\x00\x0d" "\x00\x00\x00\x0b" "r=abc"), decode_authentication);
  Authentication fin = auth(AuthType::kSaslFinal);
  fin.data = as_bytes("v=xyz");
  check_golden(fin, lit("R\x00\x00\x00\x0d" "\x00\x00\x00\x0c" "v=xyz"), decode_authentication);

  check_golden(ParameterStatus{"client_encoding", "UTF8"}, lit("S\x00\x00\x00\x19" "client_encoding\0UTF8\0"),
               decode_parameter_status);
  check_golden(BackendKeyData{1234, 5678}, lit("K\x00\x00\x00\x0c" "\x00\x00\x04\xd2" "\x00\x00\x16\x2e"),
               decode_backend_key_data);
  check_golden(ReadyForQuery{'T'}, lit("Z\x00\x00\x00\x05" "T"), decode_ready_for_query);
  check_golden(RowDescription{{FieldDescription{"id", 16384, 1, 23, 4, -1, 0}}},
               lit("T\x00\x00\x00\x1b" "\x00\x01" "id\0" "\x00\x00\x40\x00" "\x00\x01" "\x00\x00\x00\x17" "\x00\x04"
                   "\xff\xff\xff\xff" "\x00\x00"),
               decode_row_description);
  check_golden(DataRow{{val("1"), std::nullopt, val("")}},
               lit("D\x00\x00\x00\x13" "\x00\x03" "\x00\x00\x00\x01" "1" "\xff\xff\xff\xff" "\x00\x00\x00\x00"),
               decode_data_row);
  check_golden(DataRow{}, lit("D\x00\x00\x00\x06" "\x00\x00"), decode_data_row);
  check_golden(CommandComplete{"SELECT 1"}, lit("C\x00\x00\x00\x0d" "SELECT 1\0"), decode_command_complete);
  check_golden(EmptyQueryResponse{}, lit("I\x00\x00\x00\x04"), nullptr);
  check_golden(NotificationResponse{42, "ch", "hi"}, lit("A\x00\x00\x00\x0e" "\x00\x00\x00\x2a" "ch\0hi\0"),
               decode_notification_response);
  check_golden(ParseComplete{}, lit("1\x00\x00\x00\x04"), nullptr);
  check_golden(BindComplete{}, lit("2\x00\x00\x00\x04"), nullptr);
  check_golden(CloseComplete{}, lit("3\x00\x00\x00\x04"), nullptr);
  check_golden(NoData{}, lit("n\x00\x00\x00\x04"), nullptr);
  check_golden(PortalSuspended{}, lit("s\x00\x00\x00\x04"), nullptr);
  check_golden(ParameterDescription{{23, 25}}, lit("t\x00\x00\x00\x0e" "\x00\x02" "\x00\x00\x00\x17\x00\x00\x00\x19"),
               decode_parameter_description);
  check_golden(CopyResponse{'H', 0, {0, 0}}, lit("H\x00\x00\x00\x0b" "\x00" "\x00\x02" "\x00\x00\x00\x00"),
               [](Bytes b) { return decode_copy_response('H', b); });
  check_golden(CopyResponse{'G', 1, {1}}, lit("G\x00\x00\x00\x09" "\x01" "\x00\x01" "\x00\x01"),
               [](Bytes b) { return decode_copy_response('G', b); });
  check_golden(CopyResponse{'W', 0, {}}, lit("W\x00\x00\x00\x07" "\x00" "\x00\x00"),
               [](Bytes b) { return decode_copy_response('W', b); });
  check_golden(NegotiateProtocolVersion{0, {"_pq_.x"}},
               lit("v\x00\x00\x00\x13" "\x00\x00\x00\x00" "\x00\x00\x00\x01" "_pq_.x\0"),
               decode_negotiate_protocol_version);
  check_golden(FunctionCallResponse{val("ab")}, lit("V\x00\x00\x00\x0a" "\x00\x00\x00\x02" "ab"),
               decode_function_call_response);
  check_golden(FunctionCallResponse{std::nullopt}, lit("V\x00\x00\x00\x08" "\xff\xff\xff\xff"),
               decode_function_call_response);
  auto backend_copy = [](const auto& m, Buffer& out) { encode_backend(m, out); };
  check_golden(CopyData{as_bytes("x")}, lit("d\x00\x00\x00\x05" "x"), decode_copy_data, backend_copy);
  check_golden(CopyDone{}, lit("c\x00\x00\x00\x04"), nullptr, backend_copy);
}

TEST_CASE("decoded values: fields come out as sent") {
  const std::string body = lit("\0s1\0" "\x00\x00" "\x00\x02" "\x00\x00\x00\x02" "hi" "\xff\xff\xff\xff" "\x00\x00");
  auto b = decode_bind(as_bytes(body));
  REQUIRE(b.ok());
  CHECK(b->portal == "");
  CHECK(b->statement == "s1");
  REQUIRE(b->params.size() == 2);
  CHECK(as_string_view(*b->params[0]) == "hi");
  CHECK_FALSE(b->params[1].has_value());

  const std::string rd = lit("\x00\x01" "id\0" "\x00\x00\x40\x00" "\x00\x01" "\x00\x00\x00\x17" "\x00\x04"
                             "\xff\xff\xff\xff" "\x00\x00");
  auto r = decode_row_description(as_bytes(rd));
  REQUIRE(r.ok());
  REQUIRE(r->fields.size() == 1);
  CHECK(r->fields[0].name == "id");
  CHECK(r->fields[0].table_oid == 16384);
  CHECK(r->fields[0].type_modifier == -1);

  const std::string md5 = lit("\x00\x00\x00\x05" "\xde\xad\xbe\xef");
  auto a = decode_authentication(as_bytes(md5));
  REQUIRE(a.ok());
  CHECK(a->type == AuthType::kMd5Password);
  CHECK(a->md5_salt[0] == std::byte{0xde});
  CHECK(a->md5_salt[3] == std::byte{0xef});
}

TEST_CASE("row_description_names: the names alone, and the same bodies refused as decode_row_description") {
  const std::string field = lit("\x00\x00\x40\x00" "\x00\x01" "\x00\x00\x00\x17" "\x00\x04" "\xff\xff\xff\xff" "\x00\x00");
  const std::string two = lit("\x00\x02") + "id" + lit("\0") + field + "" + lit("\0") + field;
  std::vector<std::string_view> names{"stale"};
  REQUIRE(row_description_names(as_bytes(two), names));
  REQUIRE(names.size() == 2);
  CHECK(names[0] == "id");
  CHECK(names[1] == "");
  auto full = decode_row_description(as_bytes(two));
  REQUIRE(full.ok());
  CHECK(full->fields[0].name == names[0]);

  CHECK(row_description_names(as_bytes(lit("\x00\x00")), names));
  CHECK(names.empty());
  for (const std::string& bad : {lit("\xff\xff"), lit("\x00\x01" "id"), lit("\x00\x02") + "id" + lit("\0") + field,
                                 lit("\x00\x01") + "id" + lit("\0") + field + "x", lit("\x00\x01") + "id" + lit("\0") + field.substr(1)}) {
    CHECK_FALSE(row_description_names(as_bytes(bad), names));
    CHECK_FALSE(decode_row_description(as_bytes(bad)).ok());
  }
}

TEST_CASE("frontend: malformed bodies are 08P01 with a message naming the problem") {
  CHECK(reject(decode_query, "select 1") != "");                          // no NUL
  CHECK(reject(decode_query, "").find("Query") != std::string::npos);
  CHECK(reject(decode_query, lit("select 1\0x")).find("trailing") != std::string::npos);
  CHECK(reject(decode_parse, lit("s\0q\0\xff\xff")).find("negative") != std::string::npos);
  CHECK(reject(decode_parse, lit("s\0q\0\x00\x02\x00\x00\x00\x17")).find("does not fit") != std::string::npos);
  CHECK(reject(decode_parse, lit("s\0q\0\x00")) != "");
  CHECK(reject(decode_parse, lit("s\0q\0")) != "");
  // Bind: negative value length other than -1, value past the end, counts, format/param mismatch.
  CHECK(reject(decode_bind, lit("\0\0\x00\x00\x00\x01\xff\xff\xff\xfe\x00\x00")).find("negative length") !=
        std::string::npos);
  CHECK(reject(decode_bind, lit("\0\0\x00\x00\x00\x01\x00\x00\x00\x05" "abc\x00\x00")) != "");
  CHECK(reject(decode_bind, lit("\0\0\x80\x00")) != "");
  CHECK(reject(decode_bind, lit("\0\0\x00\x00\x7f\xff\x00\x00\x00\x00")).find("does not fit") != std::string::npos);
  CHECK(reject(decode_bind, lit("\0\0\x00\x02\x00\x00\x00\x01\x00\x01\x00\x00\x00\x00\x00\x00")).find("formats") !=
        std::string::npos);
  CHECK(reject(decode_bind, lit("\0\0\x00\x00\x00\x00\x00\x00\x00")).find("trailing") != std::string::npos);
  CHECK(reject(decode_bind, lit("\0\0\x00\x00\x00\x00")) != "");           // no result format count
  CHECK(reject(decode_describe, lit("Xname\0")).find("subtype") != std::string::npos);
  CHECK(reject(decode_describe, lit("S")) != "");
  CHECK(reject(decode_describe, "") != "");
  CHECK(reject(decode_close, lit("Pp")) != "");
  CHECK(reject(decode_execute, lit("p\0\x00\x00\x00")) != "");
  CHECK(reject(decode_execute, lit("p\0\x00\x00\x00\x00\x00")) != "");
  CHECK(reject(decode_copy_fail, "oops") != "");
  CHECK(reject(decode_function_call, lit("\x00\x00\x06\x3e\x00\x00\x00\x01\xff\xff\xff\xff")) != "");
  CHECK(reject(decode_function_call, lit("\x00\x00\x06\x3e\x00\x00\xff\xff\x00\x00")) != "");
  CHECK(reject(decode_password_message, "pw") != "");
  CHECK(reject(decode_password_message, lit("pw\0\0")) != "");
  CHECK(reject(decode_sasl_initial_response, lit("SCRAM-SHA-256\0\x00\x00\x00\x05" "abc")) != "");
  CHECK(reject(decode_sasl_initial_response, lit("SCRAM-SHA-256\0\xff\xff\xff\xf0")) != "");
  CHECK(reject(decode_sasl_initial_response, lit("SCRAM-SHA-256\0\x00\x00\x00\x01" "ab")) != "");
  CHECK(reject(decode_sasl_initial_response, lit("SCRAM-SHA-256\0")) != "");
}

TEST_CASE("backend: malformed bodies are 08P01") {
  CHECK(reject(decode_authentication, "") != "");
  CHECK(reject(decode_authentication, lit("\x00\x00\x00\x00\x00")).find("trailing") != std::string::npos);
  CHECK(reject(decode_authentication, lit("\x00\x00\x00\x05\x01\x02\x03")) != "");
  CHECK(reject(decode_authentication, lit("\x00\x00\x00\x05\x01\x02\x03\x04\x05")) != "");
  CHECK(reject(decode_authentication, lit("\x00\x00\x00\x0aSCRAM-SHA-256\0")) != "");    // no empty terminator
  CHECK(reject(decode_authentication, lit("\x00\x00\x00\x0aSCRAM")) != "");
  CHECK(reject(decode_authentication, lit("\x00\x00\x00\x06")).find("unsupported") != std::string::npos);
  CHECK(reject(decode_authentication, lit("\xff\xff\xff\xff")) != "");
  CHECK(reject(decode_parameter_status, lit("a\0b")) != "");
  CHECK(reject(decode_parameter_status, lit("a\0")) != "");
  CHECK(reject(decode_backend_key_data, lit("\x00\x00\x00\x01\x00\x00\x00")) != "");
  CHECK(reject(decode_backend_key_data, lit("\x00\x00\x00\x01\x00\x00\x00\x02\x00")) != "");
  CHECK(reject(decode_ready_for_query, "X").find("transaction status") != std::string::npos);
  CHECK(reject(decode_ready_for_query, "") != "");
  CHECK(reject(decode_ready_for_query, "II") != "");
  CHECK(reject(decode_row_description, lit("\xff\xff")).find("negative") != std::string::npos);
  CHECK(reject(decode_row_description, lit("\x00\x02" "id\0\x00\x00\x40\x00\x00\x01\x00\x00\x00\x17\x00\x04"
                                           "\xff\xff\xff\xff\x00\x00")) != "");
  CHECK(reject(decode_row_description, lit("\x00\x01" "id")) != "");
  CHECK(reject(decode_data_row, lit("\x00\x01\x00\x00\x00\x02" "a")) != "");
  CHECK(reject(decode_data_row, lit("\x00\x01\xff\xff\xff\xfe")) != "");
  CHECK(reject(decode_data_row, lit("\x80\x00")).find("negative") != std::string::npos);
  CHECK(reject(decode_data_row, lit("\x00\x00\x00")) != "");
  CHECK(reject(decode_data_row, lit("\x00")) != "");
  CHECK(reject(decode_command_complete, "SELECT 1") != "");
  CHECK(reject(decode_notification_response, lit("\x00\x00\x00\x01" "ch\0hi")) != "");
  CHECK(reject(decode_parameter_description, lit("\x00\x01\x00\x00\x00")) != "");
  CHECK(reject(decode_parameter_description, lit("\xff\xff")) != "");
  auto copy_h = [](Bytes b) { return decode_copy_response('H', b); };
  CHECK(reject(copy_h, lit("\x02\x00\x00")).find("format") != std::string::npos);
  CHECK(reject(copy_h, lit("\x00\x00\x01\x00")) != "");
  CHECK(reject(copy_h, lit("\x00\xff\xff")) != "");
  CHECK(reject([](Bytes b) { return decode_copy_response('Q', b); }, lit("\x00\x00\x00")) != "");
  CHECK(reject(decode_negotiate_protocol_version, lit("\x00\x00\x00\x00\xff\xff\xff\xff")) != "");
  CHECK(reject(decode_negotiate_protocol_version, lit("\x00\x00\x00\x00\x7f\xff\xff\xff" "a\0")).find("does not fit") !=
        std::string::npos);
  CHECK(reject(decode_negotiate_protocol_version, lit("\x00\x00\x00\x00\x00\x00\x00\x01" "a")) != "");
  CHECK(reject(decode_function_call_response, lit("\x00\x00\x00\x03" "ab")) != "");
  CHECK(reject(decode_function_call_response, lit("\xff\xff\xff\xff\x00")) != "");
}

TEST_CASE("a huge column count in a tiny DataRow allocates nothing and fails") {
  // 32767 columns claimed, 4 bytes present: must fail on the count, before any resize.
  auto r = decode_data_row(as_bytes(lit("\x7f\xff\xff\xff\xff\xff")));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message.find("does not fit") != std::string::npos);
  CHECK(r.error().message.find("DataRow") != std::string::npos);
}

TEST_CASE("every decoder: random bodies never crash; whatever decodes re-encodes to the same bytes") {
  // Each entry decodes `body` and, on success, returns the re-encoded body (else nullopt).
  using Fn = std::function<std::optional<std::string>(Bytes)>;
  auto entry = [](auto decode, auto enc) -> Fn {
    return [=](Bytes body) -> std::optional<std::string> {
      auto r = decode(body);
      if (!r.ok()) {
        CHECK(r.error().sqlstate == sqlstate::kProtocolViolation);
        return std::nullopt;
      }
      Buffer out;
      enc(*r, out);
      return body_of(out);
    };
  };
  auto plain = [](const auto& m, Buffer& out) { encode(m, out); };
  auto fe = [](const auto& m, Buffer& out) { encode_frontend(m, out); };
  struct Case {
    std::string name;
    Fn fn;
    std::string seed;   // a valid body, mutated below so decoders are driven deep
  };
  const std::vector<Case> decoders = {
      {"Query", entry(decode_query, plain),
       lit("select 1\0")},
      {"Parse", entry(decode_parse, plain),
       lit("s1\0select $1\0" "\x00\x01\x00\x00\x00\x17")},
      {"Bind", entry(decode_bind, plain),
       lit("\0s1\0" "\x00\x01\x00\x01" "\x00\x02" "\x00\x00\x00\x04\x00\x00\x00\x2a" "\xff\xff\xff\xff" "\x00\x01\x00\x00")},
      {"Describe", entry(decode_describe, plain),
       lit("Pp\0")},
      {"Execute", entry(decode_execute, plain),
       lit("p\0\x00\x00\x00\x64")},
      {"Close", entry(decode_close, plain),
       lit("Ss1\0")},
      {"CopyData", entry(decode_copy_data, fe),
       lit("ab\n")},
      {"CopyFail", entry(decode_copy_fail, plain),
       lit("oops\0")},
      {"FunctionCall", entry(decode_function_call, plain),
       lit("\x00\x00\x06\x3e" "\x00\x01\x00\x00" "\x00\x01" "\x00\x00\x00\x01" "x" "\x00\x01")},
      {"PasswordMessage", entry(decode_password_message, plain),
       lit("md5abc\0")},
      {"SASLInitialResponse", entry(decode_sasl_initial_response, plain),
       lit("SCRAM-SHA-256\0" "\x00\x00\x00\x03" "n,,")},
      {"SASLResponse", entry(decode_sasl_response, plain),
       lit("c=biws")},
      {"Authentication", entry(decode_authentication, plain),
       lit("\x00\x00\x00\x0a" "SCRAM-SHA-256\0\0")},
      {"ParameterStatus", entry(decode_parameter_status, plain),
       lit("client_encoding\0UTF8\0")},
      {"BackendKeyData", entry(decode_backend_key_data, plain),
       lit("\x00\x00\x04\xd2" "\x00\x00\x16\x2e")},
      {"ReadyForQuery", entry(decode_ready_for_query, plain),
       lit("T")},
      {"RowDescription", entry(decode_row_description, plain),
       lit("\x00\x01" "id\0" "\x00\x00\x40\x00" "\x00\x01" "\x00\x00\x00\x17" "\x00\x04" "\xff\xff\xff\xff" "\x00\x00")},
      {"DataRow", entry(decode_data_row, plain),
       lit("\x00\x03" "\x00\x00\x00\x01" "1" "\xff\xff\xff\xff" "\x00\x00\x00\x00")},
      {"CommandComplete", entry(decode_command_complete, plain),
       lit("SELECT 1\0")},
      {"NotificationResponse", entry(decode_notification_response, plain),
       lit("\x00\x00\x00\x2a" "ch\0hi\0")},
      {"ParameterDescription", entry(decode_parameter_description, plain),
       lit("\x00\x02" "\x00\x00\x00\x17\x00\x00\x00\x19")},
      {"CopyInResponse", entry([](Bytes b) { return decode_copy_response('G', b); }, plain),
       lit("\x01" "\x00\x01" "\x00\x01")},
      {"CopyOutResponse", entry([](Bytes b) { return decode_copy_response('H', b); }, plain),
       lit("\x00" "\x00\x02" "\x00\x00\x00\x00")},
      {"NegotiateProtocolVersion", entry(decode_negotiate_protocol_version, plain),
       lit("\x00\x00\x00\x00" "\x00\x00\x00\x02" "_pq_.x\0_pq_.y\0")},
      {"FunctionCallResponse", entry(decode_function_call_response, plain),
       lit("\x00\x00\x00\x02" "ab")},
  };
  std::mt19937 rng(1996);
  for (const auto& [name, fn, seed] : decoders) {
    CAPTURE(name);
    {
      auto again = fn(as_bytes(seed));
      REQUIRE(again.has_value());
      CHECK(*again == seed);
    }
    int decoded = 0;
    for (int iter = 0; iter < 4000; ++iter) {
      std::string body;
      if (iter % 2 == 0) {
        // Pure noise, skewed towards 0x00, 0xff and small values so counts, lengths and
        // NULs are often plausible and the decoders get past their first field.
        body.resize(rng() % 40);
        for (auto& c : body) {
          uint32_t x = rng();
          c = (x % 4 == 0) ? '\0' : (x % 4 == 1) ? char(0xff) : (x % 4 == 2) ? char((x >> 8) % 4) : char(x >> 8);
        }
      } else {
        // The valid seed with a few bytes changed, then maybe cut short or extended.
        body = seed;
        for (uint32_t k = rng() % 3 + 1; k > 0 && !body.empty(); --k) body[rng() % body.size()] = char(rng());
        if (rng() % 4 == 0) body.resize(rng() % (body.size() + 1));
        if (rng() % 4 == 0) body.push_back(char(rng() % 3));
      }
      auto again = fn(as_bytes(body));
      if (again) {
        ++decoded;
        CHECK(*again == body);
      }
    }
    MESSAGE(name << ": " << decoded << " of 4000 random bodies decoded");
  }
}
