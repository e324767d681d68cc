// Typed frontend and backend messages of the PostgreSQL v3 protocol: decode bodies, encode whole messages.
//
// https://www.postgresql.org/docs/15/protocol-message-formats.html
// decode_*() take the body of one message (what the Framer delivers: no type byte, no length)
// and return views into it: a decoded message is valid only while its body bytes are. Each
// checks every length and rejects trailing bytes (08P01). encode() appends the whole message,
// type byte and length included, to a Buffer.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "protocol/bytes.h"
#include "protocol/result.h"

namespace pgrelay::protocol {

// Message type bytes, by direction (several letters mean different things each way).
namespace frontend {
inline constexpr char kQuery = 'Q';
inline constexpr char kParse = 'P';
inline constexpr char kBind = 'B';
inline constexpr char kDescribe = 'D';
inline constexpr char kExecute = 'E';
inline constexpr char kSync = 'S';
inline constexpr char kFlush = 'H';
inline constexpr char kClose = 'C';
inline constexpr char kTerminate = 'X';
inline constexpr char kCopyData = 'd';
inline constexpr char kCopyDone = 'c';
inline constexpr char kCopyFail = 'f';
inline constexpr char kFunctionCall = 'F';
inline constexpr char kPassword = 'p';   // PasswordMessage, SASLInitialResponse, SASLResponse
}  // namespace frontend

namespace backend {
inline constexpr char kAuthentication = 'R';
inline constexpr char kParameterStatus = 'S';
inline constexpr char kBackendKeyData = 'K';
inline constexpr char kReadyForQuery = 'Z';
inline constexpr char kRowDescription = 'T';
inline constexpr char kDataRow = 'D';
inline constexpr char kCommandComplete = 'C';
inline constexpr char kEmptyQueryResponse = 'I';
inline constexpr char kErrorResponse = 'E';
inline constexpr char kNoticeResponse = 'N';
inline constexpr char kNotificationResponse = 'A';
inline constexpr char kParseComplete = '1';
inline constexpr char kBindComplete = '2';
inline constexpr char kCloseComplete = '3';
inline constexpr char kNoData = 'n';
inline constexpr char kPortalSuspended = 's';
inline constexpr char kParameterDescription = 't';
inline constexpr char kCopyInResponse = 'G';
inline constexpr char kCopyOutResponse = 'H';
inline constexpr char kCopyBothResponse = 'W';
inline constexpr char kCopyData = 'd';
inline constexpr char kCopyDone = 'c';
inline constexpr char kNegotiateProtocolVersion = 'v';
inline constexpr char kFunctionCallResponse = 'V';
}  // namespace backend

// A whole Terminate message, for a best-effort goodbye that cannot wait for an encoder.
inline constexpr std::array<std::byte, 5> kTerminateMessage = {std::byte(frontend::kTerminate), std::byte(0),
                                                              std::byte(0), std::byte(0), std::byte(4)};

// A parameter or column value: nullopt is SQL NULL (length -1).
using Value = std::optional<Bytes>;

// ---- Frontend ----

struct Query { std::string_view sql; };
struct Parse {
  std::string_view name;            // "" is the unnamed statement
  std::string_view query;
  std::vector<int32_t> param_types; // OIDs, 0 = unspecified
};
struct Bind {
  std::string_view portal;
  std::string_view statement;
  std::vector<int16_t> param_formats;
  std::vector<Value> params;
  std::vector<int16_t> result_formats;
};
struct Describe { char kind = 'S'; std::string_view name; };   // 'S' statement, 'P' portal
struct Execute { std::string_view portal; int32_t max_rows = 0; };
struct Close { char kind = 'S'; std::string_view name; };
struct Sync {};
struct Flush {};
struct Terminate {};
struct CopyData { Bytes data; };
struct CopyDone {};
struct CopyFail { std::string_view message; };
struct FunctionCall {
  int32_t function_oid = 0;
  std::vector<int16_t> arg_formats;
  std::vector<Value> args;
  int16_t result_format = 0;
};
struct PasswordMessage { std::string_view password; };      // cleartext or "md5..."
struct SaslInitialResponse { std::string_view mechanism; Value data; };
struct SaslResponse { Bytes data; };

Result<Query> decode_query(Bytes body);
Result<Parse> decode_parse(Bytes body);
Result<Bind> decode_bind(Bytes body);
Result<Describe> decode_describe(Bytes body);
Result<Execute> decode_execute(Bytes body);
Result<Close> decode_close(Bytes body);
Result<CopyData> decode_copy_data(Bytes body);
Result<CopyFail> decode_copy_fail(Bytes body);
Result<FunctionCall> decode_function_call(Bytes body);
Result<PasswordMessage> decode_password_message(Bytes body);
Result<SaslInitialResponse> decode_sasl_initial_response(Bytes body);
Result<SaslResponse> decode_sasl_response(Bytes body);

void encode(const Query& m, Buffer& out);
void encode(const Parse& m, Buffer& out);
void encode(const Bind& m, Buffer& out);
void encode(const Describe& m, Buffer& out);
void encode(const Execute& m, Buffer& out);
void encode(const Close& m, Buffer& out);
void encode(const Sync&, Buffer& out);
void encode(const Flush&, Buffer& out);
void encode(const Terminate&, Buffer& out);
void encode_frontend(const CopyData& m, Buffer& out);
void encode_frontend(const CopyDone&, Buffer& out);
void encode(const CopyFail& m, Buffer& out);
void encode(const FunctionCall& m, Buffer& out);
void encode(const PasswordMessage& m, Buffer& out);
void encode(const SaslInitialResponse& m, Buffer& out);
void encode(const SaslResponse& m, Buffer& out);

// ---- Backend ----

enum class AuthType : int32_t {
  kOk = 0, kKerberosV5 = 2, kCleartextPassword = 3, kMd5Password = 5, kGss = 7,
  kGssContinue = 8, kSspi = 9, kSasl = 10, kSaslContinue = 11, kSaslFinal = 12,
};
struct Authentication {
  AuthType type = AuthType::kOk;
  std::array<std::byte, 4> md5_salt{};            // kMd5Password
  std::vector<std::string_view> sasl_mechanisms;  // kSasl
  Bytes data;                                     // kSaslContinue, kSaslFinal, kGssContinue
};
struct ParameterStatus { std::string_view name; std::string_view value; };
struct BackendKeyData { int32_t pid = 0; int32_t secret = 0; };
struct ReadyForQuery { char status = 'I'; };     // 'I' idle, 'T' in transaction, 'E' failed transaction
struct FieldDescription {
  std::string_view name;
  int32_t table_oid = 0;
  int16_t column = 0;
  int32_t type_oid = 0;
  int16_t type_size = 0;
  int32_t type_modifier = 0;
  int16_t format = 0;
};
struct RowDescription { std::vector<FieldDescription> fields; };
struct DataRow { std::vector<Value> values; };
struct CommandComplete { std::string_view tag; };
struct EmptyQueryResponse {};
struct NotificationResponse { int32_t pid = 0; std::string_view channel; std::string_view payload; };
struct ParseComplete {};
struct BindComplete {};
struct CloseComplete {};
struct NoData {};
struct PortalSuspended {};
struct ParameterDescription { std::vector<int32_t> types; };
struct CopyResponse {                     // CopyInResponse 'G', CopyOutResponse 'H', CopyBothResponse 'W'
  char kind = backend::kCopyInResponse;
  int8_t format = 0;                      // 0 text, 1 binary
  std::vector<int16_t> column_formats;
};
struct NegotiateProtocolVersion { int32_t newest_minor = 0; std::vector<std::string_view> unrecognized; };
struct FunctionCallResponse { Value result; };

Result<Authentication> decode_authentication(Bytes body);
Result<ParameterStatus> decode_parameter_status(Bytes body);
Result<BackendKeyData> decode_backend_key_data(Bytes body);
Result<ReadyForQuery> decode_ready_for_query(Bytes body);
Result<RowDescription> decode_row_description(Bytes body);
// Only a RowDescription's field names, as views into `body`, into `names` (cleared first; its
// capacity is reused, nothing else is allocated). False when decode_row_description would fail.
bool row_description_names(Bytes body, std::vector<std::string_view>& names);
Result<DataRow> decode_data_row(Bytes body);
Result<CommandComplete> decode_command_complete(Bytes body);
Result<NotificationResponse> decode_notification_response(Bytes body);
Result<ParameterDescription> decode_parameter_description(Bytes body);
Result<CopyResponse> decode_copy_response(char kind, Bytes body);
Result<NegotiateProtocolVersion> decode_negotiate_protocol_version(Bytes body);
Result<FunctionCallResponse> decode_function_call_response(Bytes body);

void encode(const Authentication& m, Buffer& out);
void encode(const ParameterStatus& m, Buffer& out);
void encode(const BackendKeyData& m, Buffer& out);
void encode(const ReadyForQuery& m, Buffer& out);
void encode(const RowDescription& m, Buffer& out);
void encode(const DataRow& m, Buffer& out);
void encode(const CommandComplete& m, Buffer& out);
void encode(const EmptyQueryResponse&, Buffer& out);
void encode(const NotificationResponse& m, Buffer& out);
void encode(const ParseComplete&, Buffer& out);
void encode(const BindComplete&, Buffer& out);
void encode(const CloseComplete&, Buffer& out);
void encode(const NoData&, Buffer& out);
void encode(const PortalSuspended&, Buffer& out);
void encode(const ParameterDescription& m, Buffer& out);
void encode(const CopyResponse& m, Buffer& out);
void encode(const NegotiateProtocolVersion& m, Buffer& out);
void encode(const FunctionCallResponse& m, Buffer& out);
void encode_backend(const CopyData& m, Buffer& out);
void encode_backend(const CopyDone&, Buffer& out);

}  // namespace pgrelay::protocol
