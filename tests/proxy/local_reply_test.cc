// encode_error_reply: the exact messages PostgreSQL would send for each request shape failing at each message.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "protocol/error_fields.h"
#include "protocol/framer.h"
#include "protocol/messages.h"
#include "proxy/request/local_reply.h"

using namespace pgrelay;
using namespace pgrelay::proxy;
namespace pr = pgrelay::protocol;

namespace {

struct Message {
  char type;
  std::string body;
};

// The messages in `out` from `from` on, split with the Framer (which must consume all of it).
std::vector<Message> frames(const pr::Buffer& out, size_t from = 0) {
  std::vector<Message> v;
  pr::Framer f;
  f.inspect_all();
  const pr::Bytes in = pr::Bytes(out).subspan(from);
  auto r = f.feed(in, [&](const pr::Frame& fr, size_t) {
    v.push_back({fr.type, std::string(pr::as_string_view(fr.body))});
    return pr::FrameAction::kContinue;
  });
  REQUIRE(r.ok());
  CHECK(*r == in.size());
  CHECK(f.at_boundary());
  return v;
}

std::string types_of(const std::vector<Message>& v) {
  std::string s;
  for (auto& m : v) s += m.type;
  return s;
}

const pr::ErrorSpec kError{"ERROR", "42P01", "relation \"t\" does not exist", "", "try another"};
const pr::ErrorSpec kFatal{"FATAL", "08P01", "invalid frontend message type 112", "", ""};

// The reply to `types` failing at `error_at` in `tx_status`; REQUIREs success.
std::vector<Message> reply(const std::string& types, size_t error_at, const pr::ErrorSpec& error = kError,
                           char tx_status = 'I') {
  pr::Buffer out;
  REQUIRE(encode_error_reply(std::span<const char>(types.data(), types.size()), error_at, error, tx_status, out));
  return frames(out);
}

void check_error(const Message& m, const pr::ErrorSpec& expected) {
  REQUIRE(m.type == 'E');
  auto e = pr::decode_error_notice(pr::as_bytes(m.body));
  REQUIRE(e.ok());
  CHECK(e->severity == expected.severity);
  CHECK(e->severity_code == expected.severity);
  CHECK(e->sqlstate == expected.sqlstate);
  CHECK(e->message == expected.message);
  CHECK(e->hint == expected.hint);
  CHECK(e->detail.empty());
}

void check_ready(const Message& m, char status) {
  REQUIRE(m.type == 'Z');
  auto z = pr::decode_ready_for_query(pr::as_bytes(m.body));
  REQUIRE(z.ok());
  CHECK(z->status == status);
}

}  // namespace

TEST_CASE("encode_error_reply: a Query failing outside a transaction block: ErrorResponse, ReadyForQuery 'I'") {
  auto v = reply("Q", 0);
  REQUIRE(types_of(v) == "EZ");
  check_error(v[0], kError);
  check_ready(v[1], 'I');
  // A FunctionCall is answered the same way.
  auto f = reply("F", 0);
  REQUIRE(types_of(f) == "EZ");
  check_ready(f[1], 'I');
}

TEST_CASE("encode_error_reply: inside a transaction block the error leaves it failed: ReadyForQuery 'E'") {
  for (char status : {'T', 'E'}) {
    CAPTURE(status);
    auto v = reply("Q", 0, kError, status);
    REQUIRE(types_of(v) == "EZ");
    check_ready(v[1], 'E');
    auto x = reply("PBES", 0, kError, status);
    REQUIRE(types_of(x) == "EZ");
    check_ready(x[1], 'E');
  }
  CHECK(status_after_error('I') == 'I');
  CHECK(status_after_error('T') == 'E');
}

TEST_CASE("encode_error_reply: a FATAL error ends the session: nothing follows the ErrorResponse") {
  for (const std::string types : {"Q", "PBES"}) {
    CAPTURE(types);
    auto v = reply(types, 0, kFatal);
    REQUIRE(types_of(v) == "E");
    check_error(v[0], kFatal);
  }
  pr::ErrorSpec panic = kFatal;
  panic.severity = "PANIC";
  CHECK(types_of(reply("Q", 0, panic)) == "E");
}

TEST_CASE("encode_error_reply: an extended batch failing at its Parse: ErrorResponse, then the Sync's ReadyForQuery") {
  auto v = reply("PBES", 0);
  REQUIRE(types_of(v) == "EZ");
  check_error(v[0], kError);
  check_ready(v[1], 'I');
}

TEST_CASE("encode_error_reply: failing at the Bind after a Parse answers the Parse first") {
  auto v = reply("PBES", 1);
  REQUIRE(types_of(v) == "1EZ");
  CHECK(v[0].body.empty());
  check_error(v[1], kError);
  check_ready(v[2], 'I');
  // Every message before the failing one gets its own reply, in order; Flush gets none.
  auto w = reply("PCHBPBES", 5, kError, 'T');
  CHECK(types_of(w) == "132" "1EZ");
  check_ready(w.back(), 'E');
}

TEST_CASE("encode_error_reply: a batch without its Sync yet gets no ReadyForQuery") {
  CHECK(types_of(reply("PBE", 0)) == "E");
  CHECK(types_of(reply("PBEH", 1)) == "1E");
  // Only the first Sync after the error is answered: the next one is another request's.
  auto v = reply("PBESPBES", 1);
  CHECK(types_of(v) == "1EZ");
}

TEST_CASE("encode_error_reply: failing at the Sync itself still answers it with ReadyForQuery") {
  auto v = reply("PBS", 2);
  REQUIRE(types_of(v) == "12EZ");
  check_ready(v[3], 'I');
}

TEST_CASE("encode_error_reply: a message before error_at that needs a server: false, nothing appended") {
  for (const std::string types : {"PBES", "PDES", "QQ", "PSP", "FQ"}) {
    const size_t error_at = types == "PBES" ? 3 : types == "PDES" ? 2 : types == "PSP" ? 2 : 1;
    CAPTURE(types);
    pr::Buffer out{std::byte{'x'}};
    CHECK_FALSE(encode_error_reply(std::span<const char>(types.data(), types.size()), error_at, kError, 'I', out));
    CHECK(out.size() == 1);
  }
  // error_at past the end.
  pr::Buffer out;
  const std::string q = "Q";
  CHECK_FALSE(encode_error_reply(std::span<const char>(q.data(), 1), 1, kError, 'I', out));
  CHECK(out.empty());
}

TEST_CASE("encode_error_reply: appends after what the buffer already holds") {
  pr::Buffer out;
  pr::encode(pr::NoData{}, out);
  const size_t before = out.size();
  const std::string types = "PBES";
  REQUIRE(encode_error_reply(std::span<const char>(types.data(), types.size()), 1, kError, 'I', out));
  CHECK(types_of(frames(out)) == "n1EZ");
  CHECK(types_of(frames(out, before)) == "1EZ");
}

TEST_CASE("encode_command_reply: a command answered here, as a simple Query and as an extended batch") {
  auto command = [](const std::string& types, char tx_status, pr::Buffer& out) {
    return encode_command_reply(std::span<const char>(types.data(), types.size()), "DEALLOCATE", tx_status, out);
  };
  pr::Buffer out;
  REQUIRE(command("Q", 'T', out));
  auto q = frames(out);
  CHECK(types_of(q) == "CZ");
  CHECK(q[0].body == std::string("DEALLOCATE\0", 11));
  check_ready(q[1], 'T');

  out.clear();
  REQUIRE(command("PBDES", 'I', out));   // PQexecParams: Parse, Bind, Describe portal, Execute, Sync
  auto x = frames(out);
  CHECK(types_of(x) == "12nCZ");
  CHECK(x[3].body == std::string("DEALLOCATE\0", 11));
  check_ready(x[4], 'I');

  out.clear();
  CHECK_FALSE(command("PBEC", 'I', out));   // a Close needs the server
  CHECK(out.empty());
}
