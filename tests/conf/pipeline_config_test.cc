// pipelining, pipeline_connections, pipeline_depth, pipeline_max_wait: defaults, ranges, errors
// named by file, line and key, and SHOW CONFIG / SET at run time.
#include <doctest/doctest.h>

#include <algorithm>

#include "conf/loader.h"
#include "conf/runtime_settings.h"
#include "tests/conf/test_util.h"

namespace pgrelay::conf {
namespace {

using test::contains;
using test::ok_config;

TEST_CASE("pipeline keys: on by default, each settable") {
  const Config d = ok_config("");
  CHECK(d.pipelining);
  CHECK(d.pipeline_connections == 4);
  CHECK(d.pipeline_depth == 16);
  CHECK(d.pipeline_max_wait == Duration(10));

  const Config c = ok_config(
      "[pgrelay]\npipelining = false\npipeline_connections = 1\npipeline_depth = 64\npipeline_max_wait = \"25ms\"\n");
  CHECK_FALSE(c.pipelining);
  CHECK(c.pipeline_connections == 1);
  CHECK(c.pipeline_depth == 64);
  CHECK(c.pipeline_max_wait == Duration(25));
}

TEST_CASE("pipeline key errors name the file, line and key") {
  auto conns = parse_config("[pgrelay]\npipeline_connections = 0\n", "test.toml");
  REQUIRE_FALSE(conns.ok());
  CHECK(contains(conns.error().message, "test.toml:2: pgrelay.pipeline_connections: "));
  auto depth = parse_config("[pgrelay]\n\npipeline_depth = 5000\n", "test.toml");
  REQUIRE_FALSE(depth.ok());
  CHECK(contains(depth.error().message, "test.toml:3: pgrelay.pipeline_depth: "));
  auto wait = parse_config("[pgrelay]\npipeline_max_wait = 0\n", "test.toml");   // 0 would take none
  REQUIRE_FALSE(wait.ok());
  CHECK(contains(wait.error().message, "test.toml:2: pgrelay.pipeline_max_wait: "));
  auto flag = parse_config("[pgrelay]\npipelining = \"on\"\n", "test.toml");
  REQUIRE_FALSE(flag.ok());
  CHECK(contains(flag.error().message, "test.toml:2: pgrelay.pipelining: "));
}

TEST_CASE("pipeline keys in SHOW CONFIG, and SET for sessions that log in afterwards") {
  const Config c = ok_config("[pgrelay]\npipeline_depth = 8\n");
  auto rows = setting_rows(c);
  auto row = std::find_if(rows.begin(), rows.end(), [](const SettingRow& r) { return r.key == "pipeline_depth"; });
  REQUIRE(row != rows.end());
  CHECK(row->value == "8");
  CHECK(row->default_value == "16");
  CHECK(row->changeable);
  auto set = apply_setting(c, "pipelining", "true");
  REQUIRE(set.ok());
  CHECK(set->pipelining);
  CHECK(set->pipeline_depth == 8);   // the rest kept
  CHECK_FALSE(apply_setting(c, "pipeline_connections", "100").ok());
}

}  // namespace
}  // namespace pgrelay::conf
