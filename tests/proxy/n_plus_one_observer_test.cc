// NPlusOneObserver: statement events, parameter values and rows fed to the N+1 detector.
#include <doctest/doctest.h>

#include "protocol/messages.h"
#include "proxy/session/n_plus_one_observer.h"
#include "slow_query_log_util.h"

namespace pgrelay::proxy {
namespace {

using namespace std::chrono_literals;
namespace pr = protocol;

std::string body_of(const pr::Buffer& message) { return std::string(reinterpret_cast<const char*>(message.data()) + 5, message.size() - 5); }
pr::Bytes bytes(const std::string& s) { return pr::Bytes(reinterpret_cast<const std::byte*>(s.data()), s.size()); }

using test::no_file_log;

// One session's two analyzer observers, as observe_queries() attaches them: the QueryObserver
// records each statement's text in the worker's shard, where a detection's source is named from.
struct Session {
  analyzer::NPlusOneRegistry registry;
  analyzer::QueryStatsShard shard{100};
  std::shared_ptr<SlowQueryLog> slow = no_file_log();
  std::string database = "app", user = "web", client = "10.0.0.7:5000";
  std::shared_ptr<const ParamMap> params = std::make_shared<const ParamMap>();
  conf::Config config;
  QueryObserver stats{shard, *slow, QueryOrigin{database, user, client, params}, config};
  NPlusOneObserver observer{registry, shard, QueryOrigin{database, user, client, params}, config};
  uint64_t seq = 0;
  EventClock::time_point now = EventClock::time_point(1h);

  // One simple-Query statement, answered with `column` and `values` (one row each).
  void query(const std::string& sql, const std::string& column = "", const std::vector<std::string>& values = {}) {
    const AnalysisPtr a = analyze_statement(sql, {}, 1024, /*constants=*/true);
    StatementStart s;
    s.seq = ++seq;
    s.analysis = a;
    s.text = a->statement_text(0);
    s.tx_status = 'I';
    s.sent = now;
    stats.on_start(s);
    observer.on_start(s);
    if (!column.empty()) {
      pr::Buffer rd;
      pr::encode(pr::RowDescription{{pr::FieldDescription{column, 0, 0, 23, 4, -1, 0}}}, rd);
      observer.on_message(s.seq, pr::backend::kRowDescription, bytes(body_of(rd)));
      for (const auto& v : values) {
        pr::Buffer row;
        pr::encode(pr::DataRow{{pr::Value(pr::as_bytes(v))}}, row);
        observer.on_message(s.seq, pr::backend::kDataRow, bytes(body_of(row)));
      }
    }
    now += 1ms;
    StatementEnd e;
    e.seq = s.seq;
    e.analysis = a;
    e.ended = now;
    stats.on_end(e);
    observer.on_end(e);
    observer.on_ready('I');
  }
};

}  // namespace

TEST_CASE("NPlusOneObserver::parameters: inlined constants, and $n from the Bind") {
  std::vector<std::string> owned;
  std::vector<std::string_view> out;
  const AnalysisPtr a = analyze_statement("select * from t where a = 'x''y' and b = $2 and c = -5 limit $1", {}, 1024, true);
  // Bind: no formats, two values ("10", "abc"), no result formats.
  const std::string bind("\0\0\0\0\0\x02\0\0\0\x02" "10\0\0\0\x03" "abc\0\0", 21);
  NPlusOneObserver::parameters(*a, 0, bytes(bind), owned, out);
  REQUIRE(out.size() == 4);
  CHECK(out[0] == "x'y");
  CHECK(out[1] == "abc");
  CHECK(out[2] == "-5");
  CHECK(out[3] == "10");
  // Without constants collected (N+1 off when the text was analyzed): nothing.
  NPlusOneObserver::parameters(*analyze_statement("select 1", {}, 1024, false), 0, {}, owned, out);
  CHECK(out.empty());
}

TEST_CASE("NPlusOneObserver: a loop over an earlier result's column is one pattern, with its source") {
  Session s;
  std::vector<std::string> ids;
  for (int i = 0; i < 20; ++i) ids.push_back(std::to_string(1000 + i * 3));
  s.query("select id, author_id from book", "author_id", ids);
  for (const auto& id : ids) s.query("select name from author where id = " + id);
  const auto found = s.registry.snapshot();
  REQUIRE(found.size() == 1);
  CHECK(found[0].normalized == "select name from author where id = ?");
  REQUIRE(found[0].source_fingerprint);
  CHECK(found[0].source_column == "author_id");
  CHECK(found[0].source_normalized == "select id, author_id from book");
  CHECK(found[0].database == "app");
  // Named from the worker's statistics, not from anything the session keeps: once they are
  // reset, a new detection still names its source's fingerprint and column, without text.
  Session reset;
  reset.query("select id, author_id from book", "author_id", ids);
  reset.shard.reset();
  for (const auto& id : ids) reset.query("select name from author where id = " + id);
  const auto unnamed = reset.registry.snapshot();
  REQUIRE(unnamed.size() == 1);
  REQUIRE(unnamed[0].source_fingerprint);
  CHECK(unnamed[0].source_fingerprint == found[0].source_fingerprint);
  CHECK(unnamed[0].source_column == "author_id");
  CHECK(unnamed[0].source_normalized.empty());
  // Far apart in time: separate units, each below the threshold.
  Session slow;
  for (int i = 0; i < 8; ++i) {
    slow.query("select name from author where id = " + std::to_string(i));
    slow.now += 200ms;
  }
  CHECK(slow.registry.snapshot().empty());
}
}  // namespace pgrelay::proxy
