// Parsing PgBouncer's userlist.txt format for auth_file.
#include "conf/userlist.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "conf/conf_error.h"
#include "protocol/md5.h"
#include "protocol/scram_server.h"

namespace pgrelay::conf {
namespace {

constexpr size_t kMaxShown = 40;

bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

// What the line has at `pos`, for "got ..." (never a secret: only called before the second field).
std::string shown(std::string_view line, size_t pos) {
  std::string_view rest = line.substr(std::min(pos, line.size()));
  if (rest.empty()) return "the end of the line";
  std::string out = "\"";
  for (char c : rest.substr(0, kMaxShown)) out += (static_cast<unsigned char>(c) < 0x20 ? '?' : c);
  return out + (rest.size() > kMaxShown ? "\"..." : "\"");
}

// Reads a quoted field at `pos` (just after blanks); "" inside is one '"'. On success `pos` is past
// the closing quote.
bool read_quoted(std::string_view line, size_t& pos, std::string& out) {
  if (pos >= line.size() || line[pos] != '"') return false;
  out.clear();
  for (size_t i = pos + 1; i < line.size(); ++i) {
    if (line[i] != '"') {
      out += line[i];
      continue;
    }
    if (i + 1 < line.size() && line[i + 1] == '"') {
      out += '"';
      ++i;
      continue;
    }
    pos = i + 1;
    return true;
  }
  return false;   // no closing quote
}

}  // namespace

SecretKind classify_secret(std::string_view secret) {
  if (secret.empty()) return SecretKind::kEmpty;
  if (protocol::looks_like_scram_secret(secret)) return SecretKind::kScram;
  if (protocol::looks_like_md5_secret(secret)) return SecretKind::kMd5;
  return SecretKind::kPlain;
}

Result<Userlist> parse_userlist(std::string_view text, const std::string& source) {
  Userlist users;
  std::map<std::string, size_t, std::less<>> first_line;
  std::vector<std::string> errors;
  auto error = [&](size_t line_no, const std::string& what) {
    errors.push_back(source + ":" + std::to_string(line_no) + ": " + what);
  };

  size_t line_no = 0;
  for (size_t start = 0; start <= text.size();) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(start, end - start);
    start = end + 1;
    ++line_no;

    size_t pos = 0;
    while (pos < line.size() && is_blank(line[pos])) ++pos;
    if (pos == line.size() || line[pos] == ';' || line[pos] == '#') continue;
    if (line.find('\0') != std::string_view::npos) {
      error(line_no, "expected text, got a NUL byte");
      continue;
    }
    std::string user, secret;
    if (!read_quoted(line, pos, user)) {
      error(line_no, std::string(pos < line.size() && line[pos] == '"' ? "expected a closing quote after the user name"
                                                                       : "expected a quoted user name (\"user\" \"secret\")") +
                         ", got " + shown(line, pos));
      continue;
    }
    if (user.empty()) {
      error(line_no, "expected a non-empty user name, got \"\"");
      continue;
    }
    const size_t after_user = pos;
    while (pos < line.size() && is_blank(line[pos])) ++pos;
    if (pos == after_user && pos < line.size()) {
      error(line_no, "expected blanks between the user name and the secret, got " + shown(line, pos));
      continue;
    }
    if (!read_quoted(line, pos, secret)) {
      const bool open = pos < line.size() && line[pos] == '"';
      // What follows may be a password written without quotes: say what it is, not what it says.
      error(line_no, std::string(open ? "expected a closing quote after the secret of user \""
                                      : "expected a quoted secret after user \"") +
                         user + "\"" + (open ? "" : pos < line.size() ? ", got unquoted text" : ", got the end of the line"));
      continue;
    }
    if (classify_secret(secret) == SecretKind::kScram) {
      if (auto parsed = protocol::parse_scram_secret(secret); !parsed.ok()) {
        error(line_no, "user \"" + user + "\": " + parsed.error().message);
        continue;
      }
    }
    if (auto it = first_line.find(user); it != first_line.end()) {
      error(line_no, "user \"" + user + "\" is already listed on line " + std::to_string(it->second));
      continue;
    }
    first_line.emplace(user, line_no);
    users.emplace(std::move(user), std::move(secret));
  }
  if (!errors.empty()) {
    std::string all;
    for (const auto& e : errors) all += (all.empty() ? "" : "\n") + e;
    return config_error(std::move(all));
  }
  return users;
}

Result<Userlist> load_userlist(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return config_error(path + ": cannot read auth_file: it is a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in) return config_error(path + ": cannot read auth_file: " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return config_error(path + ": cannot read auth_file: " + std::strerror(errno));
  return parse_userlist(text.str(), path);
}

}  // namespace pgrelay::conf
