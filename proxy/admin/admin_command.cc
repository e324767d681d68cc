// Admin console commands: splitting, tokenizing and parsing what a console client sends.
#include "proxy/admin/admin_command.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <optional>

#include "analyzer/chars.h"

namespace pgrelay::proxy {
namespace {

constexpr const char* kSyntaxError = "42601";

constexpr std::array<ShowSubject, 24> kShowSubjects = {{
    {"HELP", "this list"},
    {"POOLS", "one row per (database, user) pool: clients active and waiting, servers by state, longest wait"},
    {"STATS", "per database: totals since start and per-second averages over the last minute"},
    {"STATS_TOTALS", "per database: totals since start"},
    {"STATS_AVERAGES", "per database: per-second averages over the last minute"},
    {"CLIENTS", "one row per client connection"},
    {"SERVERS", "one row per server connection"},
    {"DATABASES", "the configured databases and their pool settings"},
    {"USERS", "the users pgrelay knows"},
    {"CONFIG", "every [pgrelay] setting, its default, and whether SET can change it"},
    {"LISTS", "counts of databases, users, pools, clients and servers"},
    {"MEM", "memory held by buffers, sessions, server connections and pools"},
    {"VERSION", "pgrelay's version"},
    {"STATE", "whether pgrelay is active, paused or suspended"},
    {"SIZING", "pgrelay: each pool's target size vs open vs active, and its last scale decision and why"},
    {"WAITS", "pgrelay: each pool's client wait-for-server percentiles (p50, p95, p99)"},
    {"LISTENERS", "pgrelay: channels LISTENed on for clients in transaction/statement pooling, and by how many"},
    {"QUERIES", "pgrelay: statistics per statement fingerprint, database and user, by total time"},
    {"SLOW", "pgrelay: the most recent executions at or over slow_query_threshold, newest first"},
    {"N_PLUS_ONE", "pgrelay: N+1 query patterns detected, with the statement whose rows fed the loop"},
    {"CACHE", "pgrelay: the query-result cache: entries, bytes, hits, misses, fills, invalidations"},
    {"CACHES", "pgrelay: the query cache per fingerprint: hits, misses, entries, bytes, TTL, and why it is not cached"},
    {"REPLICATION", "pgrelay: the query cache's replication listeners: slot, state, lag, commits applied"},
    {"REPLICAS", "pgrelay: each database's read replicas: state, lag in bytes and seconds, reads served, last error"},
}};

constexpr std::array<CommandHelp, 19> kCommandHelp = {{
    {"SHOW subject", "HELP|POOLS|STATS|STATS_TOTALS|STATS_AVERAGES|CLIENTS|SERVERS|DATABASES|USERS|CONFIG|LISTS|MEM|"
                     "VERSION|STATE|SIZING|WAITS|LISTENERS|QUERIES|SLOW|N_PLUS_ONE|CACHE|CACHES|REPLICATION|REPLICAS"},
    {"PAUSE [db]", "stop handing out server connections (waits for busy ones to come back, then closes them)"},
    {"RESUME [db]", "undo PAUSE, KILL or SUSPEND"},
    {"SUSPEND", "pause every database, keeping idle server connections"},
    {"DISABLE db", "refuse new clients of db"},
    {"ENABLE db", "undo DISABLE"},
    {"RECONNECT [db]", "close server connections as they come back to the pool, so new ones are opened"},
    {"KILL db", "disconnect db's clients and server connections now; new clients wait for RESUME"},
    {"KILL_CLIENT id", "disconnect one client (its id is SHOW CLIENTS' ptr column)"},
    {"WAIT_CLOSE [db]", "wait until server connections RECONNECT or RELOAD marked (close_needed) are closed"},
    {"RELOAD", "read the configuration file again; an error keeps the running configuration"},
    {"SHUTDOWN", "shut down gracefully, as SIGTERM"},
    {"SET key = value", "change a setting at run time (SHOW CONFIG's changeable column)"},
    {"RESET QUERIES", "forget the statistics of SHOW QUERIES, the executions of SHOW SLOW and the patterns of SHOW N_PLUS_ONE"},
    {"CACHE FLUSH [ALL | TABLE name | QUERY fingerprint]", "drop the query cache's answers: all, those that read a table, or one fingerprint's (SHOW QUERIES)"},
    {"CACHE DISABLE fingerprint", "stop caching one fingerprint's answers (SHOW CACHES) and drop them, until CACHE ENABLE or a restart"},
    {"CACHE ENABLE fingerprint", "undo CACHE DISABLE"},
    {"CACHE WARM [db]", "replay the hottest cached statements (of db, or of every database) in the background, at warm_rate a second"},
    {"Access", "admin_users may run everything; stats_users only SHOW"},
}};

struct Token {
  enum Kind { kWord, kQuotedName, kString, kEquals } kind;
  std::string text;
};

Error syntax(std::string message) { return Error{kSyntaxError, std::move(message)}; }

std::string upper(std::string s) {
  for (char& c : s) c = char(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

using analyzer::chars::is_space;

// The text between quotes starting at text[i] (a ' or "), doubled quotes meaning one.
std::optional<std::string> quoted(std::string_view text, size_t& i) {
  const char q = text[i++];
  std::string out;
  while (i < text.size()) {
    if (text[i] == q) {
      if (i + 1 < text.size() && text[i + 1] == q) {
        out += q;
        i += 2;
        continue;
      }
      ++i;
      return out;
    }
    out += text[i++];
  }
  return std::nullopt;
}

Result<std::vector<Token>> tokenize(std::string_view text) {
  std::vector<Token> out;
  size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (is_space(c)) { ++i; continue; }
    if (c == '=') { out.push_back({Token::kEquals, "="}); ++i; continue; }
    if (c == '\'' || c == '"') {
      auto q = quoted(text, i);
      if (!q) return syntax(std::string("unterminated ") + (c == '\'' ? "quoted string" : "quoted name"));
      out.push_back({c == '\'' ? Token::kString : Token::kQuotedName, std::move(*q)});
      continue;
    }
    size_t start = i;
    while (i < text.size() && !is_space(text[i]) && text[i] != '=' && text[i] != '\'' && text[i] != '"') ++i;
    out.push_back({Token::kWord, std::string(text.substr(start, i - start))});
  }
  return out;
}

bool is_number(const std::string& s) {
  size_t i = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
  bool digits = false, dot = false;
  for (; i < s.size(); ++i) {
    if (std::isdigit(static_cast<unsigned char>(s[i]))) digits = true;
    else if (s[i] == '.' && !dot) dot = true;
    else return false;
  }
  return digits;
}

std::string toml_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') { out += '\\'; out += c; }
    else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      static const char* kHex = "0123456789abcdef";
      out += "\\u00";
      out += kHex[(c >> 4) & 0xf];
      out += kHex[c & 0xf];
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// A SET value as a TOML literal: numbers and true/false stay, everything else is a string.
std::string toml_value(const Token& t) {
  if (t.kind == Token::kWord && (is_number(t.text) || t.text == "true" || t.text == "false")) return t.text;
  return toml_string(t.text);
}

// As SHOW QUERIES and SHOW CACHES print it: up to 16 hex digits.
bool is_fingerprint(const std::string& s) {
  return !s.empty() && s.size() <= 16 && s.find_first_not_of("0123456789abcdefABCDEF") == std::string::npos;
}

struct VerbSpec {
  std::string_view name;
  AdminCommand::Verb verb;
  int min_args, max_args;   // database names (KILL_CLIENT: an id)
};

constexpr std::array<VerbSpec, 11> kVerbs = {{
    {"PAUSE", AdminCommand::Verb::kPause, 0, 1},       {"RESUME", AdminCommand::Verb::kResume, 0, 1},
    {"SUSPEND", AdminCommand::Verb::kSuspend, 0, 0},   {"DISABLE", AdminCommand::Verb::kDisable, 1, 1},
    {"ENABLE", AdminCommand::Verb::kEnable, 1, 1},     {"RECONNECT", AdminCommand::Verb::kReconnect, 0, 1},
    {"KILL", AdminCommand::Verb::kKill, 1, 1},         {"KILL_CLIENT", AdminCommand::Verb::kKillClient, 1, 1},
    {"WAIT_CLOSE", AdminCommand::Verb::kWaitClose, 0, 1}, {"RELOAD", AdminCommand::Verb::kReload, 0, 0},
    {"SHUTDOWN", AdminCommand::Verb::kShutdown, 0, 0},
}};

Result<AdminCommand> parse_set(const std::vector<Token>& t) {
  const char* usage = "SET takes key = value, e.g. SET query_timeout = '30s'";
  if (t.size() != 4 || t[1].kind == Token::kString || t[1].kind == Token::kEquals ||
      !(t[2].kind == Token::kEquals || (t[2].kind == Token::kWord && upper(t[2].text) == "TO")) ||
      t[3].kind == Token::kEquals) {
    return syntax(usage);
  }
  AdminCommand c;
  c.verb = AdminCommand::Verb::kSet;
  c.subject = lower(t[1].text);
  c.argument = toml_value(t[3]);
  return c;
}

}  // namespace

std::span<const ShowSubject> show_subjects() { return kShowSubjects; }
std::span<const CommandHelp> command_help() { return kCommandHelp; }

std::string AdminCommand::tag() const {
  if (verb == Verb::kShow) return "SHOW";
  if (verb == Verb::kSet) return "SET";
  if (verb == Verb::kResetQueries) return "RESET";
  if (verb == Verb::kCacheFlush) return "CACHE FLUSH";
  if (verb == Verb::kCacheEnable) return "CACHE ENABLE";
  if (verb == Verb::kCacheDisable) return "CACHE DISABLE";
  if (verb == Verb::kCacheWarm) return "CACHE WARM";
  for (const auto& v : kVerbs)
    if (v.verb == verb) return std::string(v.name);
  return "OK";
}

std::vector<std::string> split_statements(std::string_view text) {
  std::vector<std::string> out;
  std::string current;
  char quote = 0;
  for (char c : text) {
    if (quote) {
      if (c == quote) quote = 0;   // a doubled quote closes and reopens: same result
    } else if (c == '\'' || c == '"') {
      quote = c;
    } else if (c == ';') {
      if (current.find_first_not_of(" \t\r\n\f\v") != std::string::npos) out.push_back(std::move(current));
      current.clear();
      continue;
    }
    current += c;
  }
  if (current.find_first_not_of(" \t\r\n\f\v") != std::string::npos) out.push_back(std::move(current));
  return out;
}

Result<AdminCommand> parse_admin_command(std::string_view statement) {
  auto tokens = tokenize(statement);
  if (!tokens.ok()) return tokens.error();
  const std::vector<Token>& t = *tokens;
  if (t.empty()) return syntax("empty command");
  if (t[0].kind != Token::kWord) return syntax("expected a command, got " + (t[0].kind == Token::kEquals ? std::string("=") : "a quoted " + std::string(t[0].kind == Token::kString ? "string" : "name")));
  const std::string verb = upper(t[0].text);

  if (verb == "SHOW") {
    if (t.size() != 2 || t[1].kind != Token::kWord) return syntax("SHOW takes one subject, e.g. SHOW POOLS");
    const std::string subject = upper(t[1].text);
    const auto& subjects = kShowSubjects;
    if (std::none_of(subjects.begin(), subjects.end(), [&](const ShowSubject& s) { return s.name == subject; }))
      return syntax("unknown SHOW subject \"" + t[1].text + "\"");
    AdminCommand c;
    c.subject = subject;
    return c;
  }
  if (verb == "SET") return parse_set(t);
  if (verb == "RESET") {
    if (t.size() != 2 || t[1].kind != Token::kWord || upper(t[1].text) != "QUERIES")
      return syntax("RESET takes QUERIES (RESET QUERIES)");
    AdminCommand c;
    c.verb = AdminCommand::Verb::kResetQueries;
    return c;
  }

  if (verb == "CACHE") {
    const std::string usage =
        "CACHE takes FLUSH [ALL | TABLE name | QUERY fingerprint], ENABLE fingerprint, DISABLE fingerprint or WARM [database]";
    const std::string action = t.size() >= 2 && t[1].kind == Token::kWord ? upper(t[1].text) : "";
    if (action == "WARM") {
      if (t.size() > 3 || (t.size() == 3 && t[2].kind != Token::kWord && t[2].kind != Token::kQuotedName))
        return syntax("CACHE WARM takes at most one database name");
      AdminCommand c;
      c.verb = AdminCommand::Verb::kCacheWarm;
      if (t.size() == 3) c.argument = t[2].text;
      return c;
    }
    if (action == "ENABLE" || action == "DISABLE") {
      if (t.size() != 3 || t[2].kind != Token::kWord || !is_fingerprint(t[2].text))
        return syntax("CACHE " + action + " takes a fingerprint (16 hex digits, SHOW CACHES' fingerprint column)" +
                      (t.size() == 3 ? ", got \"" + t[2].text + "\"" : ""));
      AdminCommand c;
      c.verb = action == "ENABLE" ? AdminCommand::Verb::kCacheEnable : AdminCommand::Verb::kCacheDisable;
      c.argument = t[2].text;
      return c;
    }
    if (action != "FLUSH") return syntax(usage);
    AdminCommand c;
    c.verb = AdminCommand::Verb::kCacheFlush;
    c.subject = t.size() == 2 ? "ALL" : (t[2].kind == Token::kWord ? upper(t[2].text) : "");
    if (c.subject == "ALL" && t.size() <= 3) return c;
    if ((c.subject != "TABLE" && c.subject != "QUERY") || t.size() != 4 || t[3].kind == Token::kEquals || t[3].kind == Token::kString)
      return syntax(usage);
    c.argument = t[3].text;
    if (c.subject == "QUERY" && !is_fingerprint(c.argument))
      return syntax("CACHE FLUSH QUERY takes a fingerprint (16 hex digits, SHOW QUERIES' fingerprint column), got \"" + c.argument + "\"");
    return c;
  }

  for (const VerbSpec& spec : kVerbs) {
    if (spec.name != verb) continue;
    const int args = int(t.size()) - 1;
    if (args < spec.min_args || args > spec.max_args) {
      std::string want = spec.max_args == 0 ? "no arguments"
                         : spec.min_args == 1 ? (spec.verb == AdminCommand::Verb::kKillClient ? "a client id" : "a database name")
                                              : "at most one database name";
      return syntax(verb + " takes " + want + ", got " + std::to_string(args) + " argument" + (args == 1 ? "" : "s"));
    }
    AdminCommand c;
    c.verb = spec.verb;
    if (args == 1) {
      if (t[1].kind == Token::kEquals || t[1].kind == Token::kString)
        return syntax(verb + " takes a name, not " + (t[1].kind == Token::kEquals ? "=" : "a quoted string"));
      c.argument = t[1].text;
      if (spec.verb == AdminCommand::Verb::kKillClient &&
          (c.argument.empty() || c.argument.size() > 19 || c.argument.find_first_not_of("0123456789") != std::string::npos))
        return syntax("KILL_CLIENT takes a client id (a number, SHOW CLIENTS' ptr column), got \"" + c.argument + "\"");
    }
    return c;
  }
  return syntax("unknown command \"" + t[0].text + "\"");
}

}  // namespace pgrelay::proxy
