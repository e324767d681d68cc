// auth_file parsing (PgBouncer's userlist.txt format): secrets of every kind, quoting, comments,
// and errors that name file and line without showing a secret.
#include <doctest/doctest.h>

#include <string>

#include "conf/userlist.h"
#include "tests/conf/test_util.h"

namespace pgrelay::conf {
namespace {

using test::contains;

constexpr const char* kScram =
    "SCRAM-SHA-256$4096:quDey+UV/A54TAzjGvA9pg==$GkEyqogHWSO8eUxjuZcNxp8+nM6+Qyg7pNyXrpKU7OI=:"
    "f9nFVffSI4vQNcoFbOOLT0pbvT2DCLo5jinyQ0IDSKg=";

Userlist ok_list(const std::string& text) {
  auto u = parse_userlist(text, "users.txt");
  REQUIRE_MESSAGE(u.ok(), (u.ok() ? "" : u.error().message));
  return *u;
}

std::string error_of(const std::string& text) {
  auto u = parse_userlist(text, "users.txt");
  REQUIRE_MESSAGE(!u.ok(), "expected an error for:\n" << text);
  CHECK(u.error().sqlstate == "F0000");
  return u.error().message;
}

}  // namespace

TEST_CASE("userlist: every kind of secret, comments, blank lines, CRLF") {
  const Userlist u = ok_list(std::string("; PgBouncer comment\n# shell-style comment\n\n") + "\"scram_user\" \"" +
                             kScram + "\"\n" + "\"md5_user\"   \"md580dcaaba30666a7775bc7ee0c688f8db\"\r\n" +
                             "  \"plain\"\t\"s3cret pass\" trailing fields are ignored\n" + "\"nopass\" \"\"\n" +
                             "\"last\" \"no newline\"");
  REQUIRE(u.size() == 5);
  CHECK(u.at("scram_user") == kScram);
  CHECK(u.at("md5_user") == "md580dcaaba30666a7775bc7ee0c688f8db");
  CHECK(u.at("plain") == "s3cret pass");
  CHECK(u.at("nopass").empty());
  CHECK(u.at("last") == "no newline");
  CHECK(classify_secret(u.at("scram_user")) == SecretKind::kScram);
  CHECK(classify_secret(u.at("md5_user")) == SecretKind::kMd5);
  CHECK(classify_secret(u.at("plain")) == SecretKind::kPlain);
  CHECK(classify_secret(u.at("nopass")) == SecretKind::kEmpty);
  CHECK(classify_secret("md5short") == SecretKind::kPlain);
}

TEST_CASE("userlist: \"\" inside quotes is one quote, in names and secrets") {
  const Userlist u = ok_list("\"say \"\"hi\"\"\" \"pa\"\"ss\"\n\"\"\"\" \"x\"\n");
  CHECK(u.at("say \"hi\"") == "pa\"ss");
  CHECK(u.at("\"") == "x");
}

TEST_CASE("userlist: an empty file and a comments-only file are empty lists") {
  CHECK(ok_list("").empty());
  CHECK(ok_list("\n\n; nothing\n   # here\n").empty());
}

TEST_CASE("userlist: errors name the file and line, and never show a secret") {
  CHECK(contains(error_of("\"a\" \"x\"\nuser \"secret\"\n"), "users.txt:2: expected a quoted user name"));
  CHECK(contains(error_of("\"unterminated \"x\"\n"), "users.txt:1:"));
  CHECK(contains(error_of("\"\" \"x\"\n"), "users.txt:1: expected a non-empty user name"));
  CHECK(contains(error_of("\"a\"\n"), "users.txt:1: expected a quoted secret after user \"a\", got the end of the line"));
  CHECK(contains(error_of("\"a\"\"b\"\n"), "users.txt:1: expected a quoted secret after user \"a\"b\""));
  CHECK(contains(error_of("\"a\" \"x\"\n\n\"a\" \"y\"\n"), "users.txt:3: user \"a\" is already listed on line 1"));
  CHECK(contains(error_of("\"a\"x \"y\"\n"), "users.txt:1: expected blanks between"));

  const std::string unquoted = error_of("\"a\" hunter2\n");
  CHECK(contains(unquoted, "users.txt:1: expected a quoted secret after user \"a\", got unquoted text"));
  CHECK_FALSE(contains(unquoted, "hunter2"));
  const std::string open = error_of("\"a\" \"hunter2\n");
  CHECK(contains(open, "expected a closing quote after the secret of user \"a\""));
  CHECK_FALSE(contains(open, "hunter2"));

  const std::string bad_scram = error_of("\"s\" \"SCRAM-SHA-256$4096:hunter2\"\n");
  CHECK(contains(bad_scram, "users.txt:1: user \"s\": invalid SCRAM-SHA-256 secret"));
  CHECK_FALSE(contains(bad_scram, "hunter2"));
}

TEST_CASE("userlist: every bad line is reported at once") {
  const std::string msg = error_of("bad one\n\"ok\" \"x\"\nbad two\n");
  CHECK(contains(msg, "users.txt:1:"));
  CHECK(contains(msg, "users.txt:3:"));
  CHECK_FALSE(contains(msg, "users.txt:2:"));
}

TEST_CASE("userlist: NUL bytes are refused") {
  CHECK(contains(error_of(std::string("\"a\" \"x\0y\"\n", 10)), "NUL"));
}

TEST_CASE("load_userlist: a missing file or a directory is named in the error") {
  auto missing = load_userlist("/nonexistent/pgrelay/users.txt");
  REQUIRE_FALSE(missing.ok());
  CHECK(contains(missing.error().message, "/nonexistent/pgrelay/users.txt: cannot read auth_file"));
  auto dir = load_userlist("/tmp");
  REQUIRE_FALSE(dir.ok());
  CHECK(contains(dir.error().message, "it is a directory"));
}

}  // namespace pgrelay::conf
