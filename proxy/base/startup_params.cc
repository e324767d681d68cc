// Startup parameters into settings and SET statements.
#include "proxy/base/startup_params.h"

#include <algorithm>
#include <cctype>

#include "protocol/sqlstate.h"

namespace pgrelay::proxy {
namespace {

// ASCII only, as std::tolower in the "C" locale pgrelay runs in (a call per character there).
char lower_char(char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; }

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = lower_char(c);
  return out;
}

// `name` lowered equals `lowered` (which is lower case), without making the lowered copy.
bool lowered_equals(std::string_view name, std::string_view lowered) {
  return name.size() == lowered.size() &&
         std::equal(name.begin(), name.end(), lowered.begin(), [](char a, char b) { return lower_char(a) == b; });
}

bool valid_name(std::string_view n) {
  if (n.empty() || !(std::isalpha(static_cast<unsigned char>(n[0])) || n[0] == '_')) return false;
  return std::all_of(n.begin(), n.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '$';
  });
}

// libpq's options string: words separated by spaces, "\ " for a literal space, "\\" for "\".
std::vector<std::string> split_options(std::string_view s) {
  std::vector<std::string> words;
  std::string cur;
  bool have = false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '\\' && i + 1 < s.size()) {
      cur += s[++i];
      have = true;
    } else if (std::isspace(static_cast<unsigned char>(c))) {
      if (have) words.push_back(std::move(cur));
      cur.clear();
      have = false;
    } else {
      cur += c;
      have = true;
    }
  }
  if (have) words.push_back(std::move(cur));
  return words;
}

Result<Setting> parse_assignment(std::string_view text) {
  auto eq = text.find('=');
  if (eq == std::string_view::npos)
    return Error{sqlstate::kProtocolViolation, "invalid command-line argument in options: \"" + std::string(text) + "\" (expected name=value)"};
  std::string name = lower(text.substr(0, eq));
  std::replace(name.begin(), name.end(), '-', '_');   // PostgreSQL accepts --statement-timeout=...
  if (!valid_name(name))
    return Error{sqlstate::kProtocolViolation, "invalid setting name in options: \"" + name + "\""};
  return Setting{name, std::string(text.substr(eq + 1))};
}

}  // namespace

Result<std::vector<Setting>> startup_settings(const protocol::StartupMessage& startup) {
  std::vector<Setting> out;
  out.reserve(startup.params.size());
  for (const auto& [raw_name, value] : startup.params) {
    // (Skipped before a lowered copy is made: every client sends user and database.)
    const std::string_view raw(raw_name);
    if (lowered_equals(raw, "user") || lowered_equals(raw, "database") || lowered_equals(raw, "replication") ||
        (raw.size() >= 5 && lowered_equals(raw.substr(0, 5), "_pq_.")))
      continue;
    std::string name = lower(raw_name);
    if (name == "options") {
      auto words = split_options(value);
      for (size_t i = 0; i < words.size(); ++i) {
        std::string_view w = words[i];
        Result<Setting> s = Error{};
        if (w == "-c") {
          if (i + 1 == words.size())
            return Error{sqlstate::kProtocolViolation, "invalid options: -c without name=value"};
          s = parse_assignment(words[++i]);
        } else if (w.rfind("-c", 0) == 0) {
          s = parse_assignment(w.substr(2));
        } else if (w.rfind("--", 0) == 0) {
          s = parse_assignment(w.substr(2));
        } else {
          return Error{sqlstate::kProtocolViolation,
                       "unsupported command-line option in options: \"" + std::string(w) + "\" (pgrelay accepts -c name=value and --name=value)"};
        }
        if (!s.ok()) return s.error();
        out.push_back(std::move(*s));
      }
      continue;
    }
    if (!valid_name(name))
      return Error{sqlstate::kProtocolViolation, "invalid startup parameter name \"" + raw_name + "\""};
    out.push_back(Setting{name, value});
  }
  return out;
}

std::string quote_literal(std::string_view value) {
  std::string out = "E'";
  for (char c : value) {
    if (c == '\'' || c == '\\') out += c;
    out += c;
  }
  out += '\'';
  return out;
}

bool is_restorable_parameter(std::string_view n) {
  return n == "client_encoding" || n == "datestyle" || n == "timezone" || n == "intervalstyle" ||
         n == "standard_conforming_strings" || n == "application_name" || n == "search_path" ||
         n == "default_transaction_read_only";
}

std::string WantedValue::as_sql() const { return sql ? value : quote_literal(value); }

WantedSettings wanted_settings(const std::vector<Setting>& startup,
                               const std::map<std::string, std::string>& client_reported,
                               const SessionSets* session_sets) {
  WantedSettings wanted;
  for (const auto& s : startup) wanted[s.name] = {s.value};   // a later one of the same name wins
  for (const auto& [name, value] : client_reported) {
    std::string n = lower(name);
    if (is_restorable_parameter(n)) wanted[n] = {value};
  }
  if (session_sets)
    for (const auto& [name, value] : *session_sets) wanted[name] = value;
  return wanted;
}

std::string sync_statements(const WantedSettings& wanted,
                            const std::map<std::string, std::string>& server_reported,
                            std::map<std::string, std::string>& applied) {
  std::map<std::string, std::string> reported;
  for (const auto& [k, v] : server_reported) reported[lower(k)] = v;
  std::string sql;
  for (auto it = applied.begin(); it != applied.end();) {
    if (wanted.count(it->first) || reported.count(it->first)) { ++it; continue; }
    sql += "RESET " + it->first + ";";
    it = applied.erase(it);
  }
  for (const auto& [name, want] : wanted) {
    const std::string value_sql = want.as_sql();
    if (auto r = reported.find(name); r != reported.end()) {
      if (!want.sql && r->second == want.value) continue;
    } else if (auto a = applied.find(name); a != applied.end() && a->second == value_sql) {
      continue;
    }
    if (want.sql) {
      sql += "SET " + name + " TO " + value_sql + ";";
    } else {
      sql += "SELECT pg_catalog.set_config(" + quote_literal(name) + ", " + value_sql + ", false);";
    }
    if (!reported.count(name)) applied[name] = value_sql;
  }
  return sql;
}

}  // namespace pgrelay::proxy
