// statement_event_log: statement events as JSON lines.
#include "proxy/session/statement_event_log.h"

#include <cerrno>
#include <chrono>
#include <cstring>

#include "protocol/messages.h"
#include "protocol/utf8.h"

namespace pgrelay::proxy {
namespace {

int64_t micros(EventClock::duration d) { return std::chrono::duration_cast<std::chrono::microseconds>(d).count(); }

}  // namespace

std::string json_string(std::string_view s) {
  std::string out = "\"";
  while (!s.empty()) {
    char32_t cp = 0;
    const size_t n = protocol::utf8_decode(s, cp);
    if (n == 0) {
      out += "\\ufffd";   // not UTF-8: JSON text must be, so the byte becomes U+FFFD
      s.remove_prefix(1);
      continue;
    }
    switch (cp) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (cp < 0x20 || cp == 0x7F || cp == 0x2028 || cp == 0x2029) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", unsigned(cp));
          out += buf;
        } else {
          out.append(s.substr(0, n));
        }
    }
    s.remove_prefix(n);
  }
  return out + "\"";
}

Result<std::shared_ptr<StatementEventLog>> StatementEventLog::open(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "a");
  if (!f) return Error{"", "statement_event_log: cannot open \"" + path + "\": " + std::strerror(errno)};
  return std::shared_ptr<StatementEventLog>(new StatementEventLog(f));
}

StatementEventLog::~StatementEventLog() { std::fclose(file_); }

void StatementEventLog::write(const std::string& line) {
  std::lock_guard lock(mu_);
  std::fwrite(line.data(), 1, line.size(), file_);
  std::fputc('\n', file_);
  std::fflush(file_);
}

void SessionEventLog::on_start(const StatementStart& s) {
  open_[s.seq];
  size_t params = 0;
  if (!s.bind.empty()) {
    if (auto b = protocol::decode_bind(s.bind); b.ok()) params = b->params.size();
  }
  const char tx[2] = {s.tx_status, 0};
  log_->write("{\"client\":" + std::to_string(client_id_) + ",\"seq\":" + std::to_string(s.seq) +
              ",\"event\":\"start\",\"text\":" + json_string(s.text) + ",\"index\":" + std::to_string(s.index) +
              ",\"extended\":" + (s.extended ? "true" : "false") + ",\"statement\":" + json_string(s.statement_name) +
              ",\"portal\":" + json_string(s.portal) + ",\"params\":" + std::to_string(params) +
              ",\"tx\":" + json_string(s.tx_status ? tx : "") + ",\"wait_us\":" + std::to_string(micros(s.wait)) + "}");
}

void SessionEventLog::on_end(const StatementEnd& e) {
  Seen seen;
  if (auto it = open_.find(e.seq); it != open_.end()) {
    seen = it->second;
    open_.erase(it);
  }
  log_->write("{\"client\":" + std::to_string(client_id_) + ",\"seq\":" + std::to_string(e.seq) +
              ",\"event\":\"end\",\"outcome\":" + json_string(outcome_name(e.outcome)) + ",\"tag\":" + json_string(e.tag) +
              ",\"sqlstate\":" + json_string(e.sqlstate) + ",\"rows\":" + std::to_string(e.rows) +
              ",\"messages\":" + std::to_string(seen.messages) + ",\"bytes\":" + std::to_string(seen.bytes) +
              ",\"first_response\":" + (seen.first_response ? "true" : "false") +
              ",\"duration_us\":" + std::to_string(micros(e.duration)) + ",\"wait_us\":" + std::to_string(micros(e.wait)) +
              "}");
}

}  // namespace pgrelay::proxy
