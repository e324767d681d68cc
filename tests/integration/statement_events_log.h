// statement_event_log read back, for statement_events_test.cc (its only user): the JSON lines
// parsed, the log's invariants checked, a pgrelay writing its own log, libpq with a deadline.
#pragma once

#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <thread>
#include <variant>

#include "harness.h"

namespace pgrelay::it {
namespace {   // one translation unit includes this

// ---- the log's lines: flat JSON objects of strings, numbers and booleans ---------------------

using JsonValue = std::variant<std::string, double, bool>;
struct Event {
  std::map<std::string, JsonValue> fields;
  std::string line;                            // as written, for failure messages
};
using Events = std::vector<Event>;

// A \uXXXX escape as UTF-8 (the log escapes only control characters; others pass raw).
void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += {char(0xC0 | (cp >> 6)), char(0x80 | (cp & 0x3F))};
  } else {
    out += {char(0xE0 | (cp >> 12)), char(0x80 | ((cp >> 6) & 0x3F)), char(0x80 | (cp & 0x3F))};
  }
}

// A JSON string starting at in[i] (the opening quote); leaves i past the closing quote.
bool parse_string(std::string_view in, size_t& i, std::string& out) {
  if (i >= in.size() || in[i] != '"') return false;
  for (++i; i < in.size(); ++i) {
    unsigned char c = in[i];
    if (c == '"') {
      ++i;
      return true;
    }
    if (c < 0x20) return false;
    if (c != '\\') {
      out += char(c);
      continue;
    }
    if (++i >= in.size()) return false;
    switch (in[i]) {
      case '"': out += '"'; break;
      case '\\': out += '\\'; break;
      case '/': out += '/'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'u': {
        uint32_t cp = 0;
        const char* hex = in.data() + i + 1;
        if (i + 4 >= in.size() || std::from_chars(hex, hex + 4, cp, 16).ptr != hex + 4) return false;
        append_utf8(out, cp);
        i += 4;
        break;
      }
      default: return false;
    }
  }
  return false;
}

std::optional<Event> parse_event(std::string_view in) {
  size_t i = 0;
  auto skip_blanks = [&] {
    while (i < in.size() && (in[i] == ' ' || in[i] == '\t' || in[i] == '\r')) ++i;
  };
  auto eat = [&](char c) {
    skip_blanks();
    if (i < in.size() && in[i] == c) return ++i, true;
    return false;
  };
  Event e;
  e.line = std::string(in);
  if (!eat('{')) return std::nullopt;
  if (!eat('}')) {
    do {
      skip_blanks();
      std::string key;
      if (!parse_string(in, i, key) || !eat(':')) return std::nullopt;
      skip_blanks();
      JsonValue value;
      if (i < in.size() && in[i] == '"') {
        std::string s;
        if (!parse_string(in, i, s)) return std::nullopt;
        value = std::move(s);
      } else if (in.substr(i, 4) == "true") {
        value = true;
        i += 4;
      } else if (in.substr(i, 5) == "false") {
        value = false;
        i += 5;
      } else {
        double d = 0;
        auto [end, ec] = std::from_chars(in.data() + i, in.data() + in.size(), d);
        if (ec != std::errc() || end == in.data() + i) return std::nullopt;
        value = d;
        i = static_cast<size_t>(end - in.data());
      }
      if (!e.fields.emplace(std::move(key), std::move(value)).second) return std::nullopt;  // duplicate key
    } while (eat(','));
    if (!eat('}')) return std::nullopt;
  }
  skip_blanks();
  if (i != in.size()) return std::nullopt;
  return e;
}

// Every complete line of `text`; lines that are not a JSON object go to `bad`.
Events parse_log(const std::string& text, std::vector<std::string>* bad) {
  Events out;
  size_t from = 0;
  for (size_t nl; (nl = text.find('\n', from)) != std::string::npos; from = nl + 1) {
    std::string_view line(text.data() + from, nl - from);
    if (auto e = parse_event(line)) {
      out.push_back(std::move(*e));
    } else if (bad) {
      bad->emplace_back(line);
    }
  }
  return out;
}

// Field accessors: a missing field or one of another type reads as "<missing>", -1 or false.
std::string str(const Event& e, const std::string& key) {
  auto it = e.fields.find(key);
  return it != e.fields.end() && std::holds_alternative<std::string>(it->second) ? std::get<std::string>(it->second)
                                                                                 : "<missing>";
}
int64_t num(const Event& e, const std::string& key) {
  auto it = e.fields.find(key);
  return it != e.fields.end() && std::holds_alternative<double>(it->second)
             ? static_cast<int64_t>(std::get<double>(it->second))
             : -1;
}
bool flag(const Event& e, const std::string& key) {
  auto it = e.fields.find(key);
  return it != e.fields.end() && std::holds_alternative<bool>(it->second) && std::get<bool>(it->second);
}
bool is_start(const Event& e) { return str(e, "event") == "start"; }
bool is_end(const Event& e) { return str(e, "event") == "end"; }

std::string lines(const Events& events) {
  std::string out;
  for (const auto& e : events) out += e.line + "\n";
  return out;
}

// What is wrong with one line's shape, "" when nothing.
std::string shape_problem(const Event& e) {
  auto has = [&](const std::string& key, size_t type) {
    auto it = e.fields.find(key);
    return it != e.fields.end() && it->second.index() == type;
  };
  constexpr size_t kStr = 0, kNum = 1, kBool = 2;
  std::vector<std::pair<const char*, size_t>> want = {
      {"client", kNum}, {"seq", kNum}, {"event", kStr}, {"wait_us", kNum}};
  if (is_start(e)) {
    want.insert(want.end(), {{"text", kStr}, {"index", kNum}, {"extended", kBool}, {"statement", kStr},
                             {"portal", kStr}, {"params", kNum}, {"tx", kStr}});
  } else if (is_end(e)) {
    want.insert(want.end(), {{"outcome", kStr}, {"tag", kStr}, {"sqlstate", kStr}, {"rows", kNum}, {"messages", kNum},
                             {"bytes", kNum}, {"first_response", kBool}, {"duration_us", kNum}});
  } else {
    return "event is neither start nor end";
  }
  for (const auto& [key, type] : want) {
    if (!has(key, type)) return std::string("field ") + key + " missing or of the wrong type";
  }
  if (num(e, "seq") < 1 || num(e, "wait_us") < 0) return "seq < 1 or wait_us < 0";
  if (is_start(e)) {
    static const std::set<std::string> kTx = {"I", "T", "E", ""};
    return kTx.count(str(e, "tx")) ? "" : "tx not one of I, T, E, \"\"";
  }
  static const std::set<std::string> kOutcomes = {"completed", "empty", "suspended", "failed", "skipped", "abandoned"};
  const std::string outcome = str(e, "outcome");
  if (!kOutcomes.count(outcome)) return "unknown outcome";
  if (outcome == "abandoned") return "abandoned, though every connection was closed cleanly";
  if (outcome == "completed" && (str(e, "tag").empty() || !str(e, "sqlstate").empty())) {
    return "completed: no tag, or a sqlstate";
  }
  if ((outcome == "failed" || outcome == "skipped") && str(e, "sqlstate").size() != 5) return outcome + ": no SQLSTATE";
  if (num(e, "duration_us") < 0) return "duration_us < 0";
  return "";
}

// What holds for every log: each line well formed; per client, starts numbered 1, 2, ... in
// order, every start ended exactly once after it, ends in seq order, nothing abandoned.
void check_invariants(const Events& all) {
  std::map<int64_t, Events> clients;
  std::vector<std::string> problems;
  for (const auto& e : all) {
    if (auto p = shape_problem(e); !p.empty()) problems.push_back(p + ": " + e.line);
    clients[num(e, "client")].push_back(e);
  }
  for (const auto& [client, events] : clients) {
    int64_t next_start = 1, last_end = 0;
    for (const auto& e : events) {
      int64_t seq = num(e, "seq");
      if (is_start(e) && seq != next_start++) {
        problems.push_back("start out of order (want seq " + std::to_string(next_start - 1) + "): " + e.line);
      } else if (is_end(e) && (seq >= next_start || seq <= last_end)) {
        problems.push_back("end before its start, twice or out of seq order: " + e.line);
      }
      if (is_end(e)) last_end = std::max(last_end, seq);
    }
    if (last_end != next_start - 1) {
      problems.push_back("client " + std::to_string(client) + ": " + std::to_string(next_start - 1) +
                         " starts, the last end has seq " + std::to_string(last_end));
    }
  }
  std::string shown;
  for (size_t i = 0; i < problems.size() && i < 10; ++i) shown += problems[i] + "\n";
  CHECK_MESSAGE(problems.empty(), problems.size() << " problem(s):\n" << shown);
}

// The client whose first start has this text; -1 if there is none.
int64_t client_of(const Events& all, std::string_view first_text) {
  std::set<int64_t> seen;
  for (const auto& e : all) {
    if (!is_start(e) || !seen.insert(num(e, "client")).second) continue;
    if (str(e, "text") == first_text) return num(e, "client");
  }
  return -1;
}

Events of_client(const Events& all, int64_t client) {
  Events out;
  for (const auto& e : all) {
    if (num(e, "client") == client) out.push_back(e);
  }
  return out;
}

// A client's statements by seq: each start with its end (an empty Event when it has none).
struct Statement {
  Event start, end;
};
std::vector<Statement> statements(const Events& events) {
  std::vector<Statement> out;
  for (const auto& s : events) {
    if (!is_start(s)) continue;
    Statement st{s, {}};
    for (const auto& e : events) {
      if (is_end(e) && num(e, "client") == num(s, "client") && num(e, "seq") == num(s, "seq")) {
        st.end = e;
        break;
      }
    }
    out.push_back(std::move(st));
  }
  return out;
}

bool settled(const Events& events, size_t ends) {
  size_t starts = 0, ended = 0;
  for (const auto& e : events) (is_start(e) ? starts : ended) += 1;
  return ended >= ends && ended == starts;
}

// A pgrelay in `mode` writing statement events to a log file of its own. The process goes
// first, then the file.
class EventRelay {
 public:
  EventRelay(const std::string& mode, int pool_size)
      : file_{next_path()}, process_(config(mode, pool_size, file_.path)) {
    REQUIRE_MESSAGE(process_.running(), process_.log());
  }
  std::string conninfo(const std::string& db = "postgres") const { return process_.conninfo(db); }
  int port() const { return process_.port(); }
  std::string log() const { return process_.log(); }

  Events read(std::vector<std::string>* bad = nullptr) const { return parse_log(read_file(file_.path), bad); }

  // Events are written as the server answers, not as the client reads: poll until `done`
  // (or 5 s), then check the log's invariants and return it.
  Events wait_for(const std::function<bool(const Events&)>& done) const {
    auto until = std::chrono::steady_clock::now() + 5s;
    while (!done(read()) && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(50ms);
    std::vector<std::string> bad;
    Events all = read(&bad);
    CHECK_MESSAGE(bad.empty(), "lines that are not flat JSON objects:\n" << (bad.empty() ? "" : bad.front()));
    CHECK_MESSAGE(done(all), "the expected events did not all arrive within 5 s; log:\n" << lines(all));
    check_invariants(all);
    return all;
  }

  // The statements of the client whose first statement was `first_text`, once it has `ends` ends
  // and nothing open.
  std::vector<Statement> client(const std::string& first_text, size_t ends) const {
    Events all = wait_for([&](const Events& ev) {
      int64_t c = client_of(ev, first_text);
      return c >= 0 && settled(of_client(ev, c), ends);
    });
    int64_t c = client_of(all, first_text);
    REQUIRE_MESSAGE(c >= 0, "no client began with \"" << first_text << "\"; log:\n" << lines(all));
    return statements(of_client(all, c));
  }

 private:
  struct RemovedFile {
    std::string path;
    ~RemovedFile() {
      std::error_code ec;
      std::filesystem::remove(path, ec);
    }
  };
  static std::string next_path() {
    static int counter = 0;
    std::string p = "/tmp/pgrelay-it-statement-events-" + std::to_string(::getpid()) + "-" +
                    std::to_string(++counter) + ".jsonl";
    std::error_code ec;
    std::filesystem::remove(p, ec);
    return p;
  }
  static RelayConfig config(const std::string& mode, int pool_size, const std::string& path) {
    RelayConfig c;
    c.set("pool_mode", "\"" + mode + "\"").set("pool_size", std::to_string(pool_size));
    c.set("statement_event_log", "\"" + path + "\"");
    return c;
  }
  RemovedFile file_;
  PgrelayProcess process_;
};

// ---- libpq with a deadline: a statement pgrelay never answers fails the test, not hangs it ----

constexpr Millis kAnswerTimeout = 15s;

// Waits until PQgetResult will not block; false on timeout or a broken connection.
bool result_ready(PGconn* c) {
  auto until = std::chrono::steady_clock::now() + kAnswerTimeout;
  while (PQisBusy(c)) {
    auto left = std::chrono::duration_cast<Millis>(until - std::chrono::steady_clock::now());
    if (left <= 0ms || !wait_readable(c, left) || PQconsumeInput(c) != 1) return false;
  }
  return true;
}

Result next_result(PGconn* c) {
  REQUIRE_MESSAGE(result_ready(c), "no answer within 15 s; " << PQerrorMessage(c));
  return Result(PQgetResult(c));
}

// PQexec's answer (the first error, else the last result), with the deadline; no assertion, so
// client threads may use it. `params`: the extended protocol.
QueryResult run(PGconn* c, const std::string& sql, const std::vector<std::string>* params = nullptr) {
  std::vector<const char*> values;
  if (params) {
    for (const auto& p : *params) values.push_back(p.c_str());
  }
  int sent = params ? PQsendQueryParams(c, sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(),
                                        nullptr, nullptr, 0)
                    : PQsendQuery(c, sql.c_str());
  if (sent != 1) return to_query_result(c, nullptr);
  std::optional<QueryResult> kept;
  for (;;) {
    if (!result_ready(c)) {
      QueryResult late;
      late.message = "no answer to \"" + sql + "\" within 15 s";
      return late;
    }
    Result r(PQgetResult(c));
    if (!r) break;
    if (!kept || kept->status != PGRES_FATAL_ERROR) kept = to_query_result(c, r.get());
  }
  return kept ? *kept : to_query_result(c, nullptr);
}

std::string first_value(const QueryResult& q) {
  return q.ok() && !q.rows.empty() && !q.rows[0].empty() ? q.rows[0][0].value_or("NULL") : "<error: " + q.message + ">";
}

void check_start(const Statement& s, const std::string& text, int64_t index, bool extended) {
  INFO(s.start.line);
  CHECK(str(s.start, "text") == text);
  CHECK(num(s.start, "index") == index);
  CHECK(flag(s.start, "extended") == extended);
}

// rows < 0: not checked.
void check_end(const Statement& s, const std::string& outcome, const std::string& tag, const std::string& sqlstate,
               int64_t rows) {
  INFO(s.start.line << "\n" << s.end.line);
  CHECK(str(s.end, "outcome") == outcome);
  CHECK(str(s.end, "tag") == tag);
  CHECK(str(s.end, "sqlstate") == sqlstate);
  if (rows >= 0) CHECK(num(s.end, "rows") == rows);
  if (outcome == "skipped") {
    // The server never ran it: nothing answered it.
    CHECK_FALSE(flag(s.end, "first_response"));
    CHECK(num(s.end, "messages") == 0);
    CHECK(num(s.end, "bytes") == 0);
  } else {
    CHECK(flag(s.end, "first_response"));
    CHECK(num(s.end, "messages") >= 1);
    CHECK(num(s.end, "bytes") > 0);
  }
}

}  // namespace
}  // namespace pgrelay::it
