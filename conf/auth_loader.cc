// The client authentication keys of [pgrelay], the auth_file, and the [[hba]] rules.
#include "conf/auth_loader.h"

#include <algorithm>
#include <filesystem>

namespace pgrelay::conf {
namespace {

// ["all"] (or "all" among names) means every name: the rule keeps an empty list.
std::vector<std::string> all_or(std::vector<std::string> names) {
  if (std::find(names.begin(), names.end(), "all") != names.end()) return {};
  return names;
}

void read_auth_file(TableReader& r, const std::string& file, Config& cfg) {
  std::filesystem::path path(file);
  if (path.is_relative()) path = std::filesystem::path(cfg.source).parent_path() / path;
  cfg.auth_file = path.lexically_normal().string();
  auto users = load_userlist(cfg.auth_file);
  if (users.ok()) {
    cfg.auth_users = std::move(*users);
    return;
  }
  // One error per bad line of the auth file, each at this key and naming the file's own line.
  const std::string& all = users.error().message;
  for (size_t start = 0; start < all.size();) {
    size_t end = all.find('\n', start);
    if (end == std::string::npos) end = all.size();
    r.error("auth_file", all.substr(start, end - start));
    start = end + 1;
  }
}

HbaRule read_rule(TableReader& r, int number, uint32_t line) {
  HbaRule rule;
  rule.number = number;
  rule.line = line;
  size_t type = 0;
  if (r.read_choice("type", kHbaConnTypeNames, type)) rule.type = static_cast<HbaConnType>(type);
  std::vector<std::string> names;
  if (r.read_string_list("database", true, false, names)) rule.databases = all_or(std::move(names));
  if (r.read_string_list("user", true, false, names)) rule.users = all_or(std::move(names));
  if (r.read_string_list("address", true, false, names)) {
    names = all_or(std::move(names));
    if (rule.type == HbaConnType::kLocal && !names.empty()) {
      r.error("address", "expected no address in a \"local\" rule (Unix socket connections have none), got \"" +
                             names.front() + "\"");
      names.clear();
    }
    for (const std::string& text : names) {
      auto cidr = Cidr::parse(text);
      if (!cidr.ok()) {
        r.error("address", cidr.error().message);
        continue;
      }
      rule.addresses.push_back(*cidr);
    }
  }
  size_t method = 0;
  if (r.read_choice("method", kAuthMethodNames, method)) {
    rule.method = kAuthMethodValues[method];
  } else if (!r.has("method")) {
    r.table_error("expected a method in every [[hba]] rule (\"scram-sha-256\", \"md5\", \"password\", \"trust\", "
                  "\"reject\" or \"cert\"), got none");
  }
  r.reject_unknown_keys();
  return rule;
}

}  // namespace

void read_auth_settings(TableReader& r, Config& cfg) {
  size_t method = 0;
  if (r.read_choice("auth_type", kAuthMethodNames, method)) cfg.auth_type = kAuthMethodValues[method];
  std::string text;
  if (r.read_string("auth_file", text)) {
    if (text.empty()) {
      r.error("auth_file", "expected the path of a userlist.txt-style file, got \"\"");
    } else {
      read_auth_file(r, text, cfg);
    }
  }
  if (r.read_string("auth_user", text)) {
    if (text.empty()) r.error("auth_user", "expected a role name, got \"\" (leave auth_user out for no auth_query)");
    else cfg.auth_user = text;
  }
  if (r.read_string("auth_query", text)) {
    if (text.find("$1") == std::string::npos) {
      r.error("auth_query", "expected a query that takes the user name as $1, got \"" + text + "\"");
    } else {
      cfg.auth_query = text;
    }
  }
  r.read_duration("auth_cache_ttl", true, cfg.auth_cache_ttl);
  r.read_string_list("admin_users", false, true, cfg.admin_users);
  r.read_string_list("stats_users", false, true, cfg.stats_users);
}

void read_hba_rules(const toml::node& node, Diagnostics& diag, Config& cfg) {
  const toml::array* rules = node.as_array();
  if (!rules || !rules->is_array_of_tables()) {
    diag.add(line_of(node), "hba",
             "expected [[hba]] tables (type, database, user, address, method), got " + describe(node));
    return;
  }
  int number = 0;
  for (const toml::node& element : *rules) {
    ++number;
    const toml::table& table = *element.as_table();
    TableReader r(table, "hba[" + std::to_string(number) + "]", diag);
    cfg.hba.push_back(read_rule(r, number, line_of(table)));
  }
}

}  // namespace pgrelay::conf
