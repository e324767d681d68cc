// tcp_keepalive, tcp_keepidle, tcp_keepintvl, tcp_keepcnt, tcp_user_timeout: defaults, values,
// errors named by file, line and key, and SHOW CONFIG / SET at run time.
#include <doctest/doctest.h>

#include <algorithm>

#include "conf/loader.h"
#include "conf/runtime_settings.h"
#include "tests/conf/test_util.h"

namespace pgrelay::conf {
namespace {

using test::contains;
using test::ok_config;

TEST_CASE("tcp_* keys: keepalive on with the system's timings by default, each settable") {
  const Config d = ok_config("");
  CHECK(d.tcp.keepalive);
  CHECK(d.tcp.keepidle == Duration(0));
  CHECK(d.tcp.keepintvl == Duration(0));
  CHECK(d.tcp.keepcnt == 0);
  CHECK(d.tcp.user_timeout == Duration(0));

  const Config c = ok_config(
      "[pgrelay]\ntcp_keepalive = false\ntcp_keepidle = \"1min\"\ntcp_keepintvl = 10\ntcp_keepcnt = 5\n"
      "tcp_user_timeout = \"30s\"\n");
  CHECK_FALSE(c.tcp.keepalive);
  CHECK(c.tcp.keepidle == Duration(60'000));
  CHECK(c.tcp.keepintvl == Duration(10'000));
  CHECK(c.tcp.keepcnt == 5);
  CHECK(c.tcp.user_timeout == Duration(30'000));
}

TEST_CASE("tcp_* errors name the file, line and key") {
  auto bad = parse_config("[pgrelay]\ntcp_keepcnt = 500\n", "test.toml");
  REQUIRE_FALSE(bad.ok());
  CHECK(contains(bad.error().message, "test.toml:2: pgrelay.tcp_keepcnt: "));
  auto word = parse_config("[pgrelay]\n\ntcp_keepidle = \"later\"\n", "test.toml");
  REQUIRE_FALSE(word.ok());
  CHECK(contains(word.error().message, "test.toml:3: pgrelay.tcp_keepidle: "));
  auto flag = parse_config("[pgrelay]\ntcp_keepalive = \"yes\"\n", "test.toml");
  REQUIRE_FALSE(flag.ok());
  CHECK(contains(flag.error().message, "test.toml:2: pgrelay.tcp_keepalive: "));
}

TEST_CASE("tcp_* keys in SHOW CONFIG, and SET for new connections") {
  const Config c = ok_config("[pgrelay]\ntcp_keepidle = 30\n");
  auto rows = setting_rows(c);
  auto row = std::find_if(rows.begin(), rows.end(), [](const SettingRow& r) { return r.key == "tcp_keepidle"; });
  REQUIRE(row != rows.end());
  CHECK(row->value == "30s");
  CHECK(row->default_value == "0");
  CHECK(row->changeable);
  auto set = apply_setting(c, "tcp_keepcnt", "3");
  REQUIRE(set.ok());
  CHECK(set->tcp.keepcnt == 3);
  CHECK(set->tcp.keepidle == Duration(30'000));   // the rest kept
  CHECK_FALSE(apply_setting(c, "tcp_keepcnt", "1000").ok());
}

}  // namespace
}  // namespace pgrelay::conf
