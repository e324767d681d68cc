// Typed, range-checked reads of one TOML table, collecting "<file>:<line>: <key>: ..." errors.
#include "conf/table_reader.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <sstream>

#include "conf/conf_error.h"
#include "conf/duration.h"

namespace pgrelay::conf {
namespace {

constexpr size_t kMaxShown = 80;  // longer values are cut in error messages

const char* type_name(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    case toml::node_type::array: return "an array";
    case toml::node_type::table: return "a table";
    default: return "nothing";
  }
}

// Edit distance, for "did you mean". Keys are short, so the quadratic table is fine.
size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// "64kB" -> 65536. Every unit is 1024-based, as in postgresql.conf. nullopt: not a size.
std::optional<uint64_t> parse_size(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  uint64_t value = 0;
  size_t n = 0;
  for (; n < s.size() && s[n] >= '0' && s[n] <= '9'; ++n) {
    value = std::min<uint64_t>(value * 10 + (s[n] - '0'), uint64_t{1} << 40);  // saturate
  }
  if (n == 0) return std::nullopt;
  std::string_view unit = s.substr(n);
  while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
  uint64_t scale = 0;
  if (unit.empty() || unit == "B") scale = 1;
  else if (unit == "kB" || unit == "KB" || unit == "KiB") scale = uint64_t{1} << 10;
  else if (unit == "MB" || unit == "MiB") scale = uint64_t{1} << 20;
  else if (unit == "GB" || unit == "GiB") scale = uint64_t{1} << 30;
  else return std::nullopt;
  return value * scale;
}

bool is_bare_key(std::string_view key) {
  if (key.empty()) return false;
  return std::all_of(key.begin(), key.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
  });
}

}  // namespace

void Diagnostics::add(uint32_t line, std::string_view key, std::string_view what) {
  std::string msg = source_;
  msg += ':';
  msg += std::to_string(line);
  msg += ": ";
  msg += key;
  msg += ": ";
  msg += what;
  errors_.emplace_back(line, std::move(msg));
}

pgrelay::Error Diagnostics::to_error() const {
  auto sorted = errors_;
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::string all;
  for (const auto& [line, msg] : sorted) {
    if (!all.empty()) all += '\n';
    all += msg;
  }
  return config_error(std::move(all));
}

uint32_t line_of(const toml::node& node) {
  if (node.source().begin.line != 0) return node.source().begin.line;
  uint32_t first = 0;
  if (const toml::table* t = node.as_table()) {
    for (auto&& [key, child] : *t) {
      uint32_t line = key.source().begin.line;
      if (line == 0) line = line_of(child);
      if (line != 0 && (first == 0 || line < first)) first = line;
    }
  }
  return first;
}

std::string describe(const toml::node& node) {
  if (node.is_table() || node.is_array()) return type_name(node);
  if (const auto* str = node.as_string()) {
    // Double quotes always (toml++ would print 'literal' strings), control characters escaped.
    std::string text = "\"";
    for (char c : str->get().substr(0, std::min(str->get().size(), kMaxShown))) {
      if (c == '"' || c == '\\') {
        text += '\\';
        text += c;
      } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
        static constexpr char kHex[] = "0123456789abcdef";
        text += "\\x";
        text += kHex[(c >> 4) & 0xf];
        text += kHex[c & 0xf];
      } else {
        text += c;
      }
    }
    text += str->get().size() > kMaxShown ? "\"..." : "\"";
    return text;
  }
  std::ostringstream out;
  node.visit([&out](const auto& v) { out << v; });
  std::string text = out.str();
  if (text.size() > kMaxShown) text = text.substr(0, kMaxShown) + "...";
  return text;
}

std::string dotted_key(std::string_view prefix, std::string_view key) {
  std::string out(prefix);
  if (!out.empty()) out += '.';
  if (is_bare_key(key)) {
    out += key;
  } else {
    out += '"';
    for (char c : key) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out;
}

TableReader::TableReader(const toml::table& table, std::string prefix, Diagnostics& diag)
    : table_(table), prefix_(std::move(prefix)), diag_(diag) {}

const toml::node* TableReader::get(std::string_view key) {
  known_.emplace_back(key);
  return table_.get(key);
}

const toml::table* TableReader::read_table(std::string_view key) {
  const toml::node* node = get(key);
  if (!node) return nullptr;
  if (const toml::table* table = node->as_table()) return table;
  error(key, "expected a table ([" + dotted_key(prefix_, key) + "]), got " + describe(*node));
  return nullptr;
}

const toml::array* TableReader::read_table_array(std::string_view key) {
  const toml::node* node = get(key);
  if (!node) return nullptr;
  const toml::array* array = node->as_array();
  if (array && (array->empty() || array->is_array_of_tables())) return array;
  error(key, "expected [[" + dotted_key(prefix_, key) + "]] tables, got " + describe(*node));
  return nullptr;
}

void TableReader::error(std::string_view key, std::string_view what) {
  const toml::node* node = table_.get(key);
  diag_.add(node ? line_of(*node) : line_of(table_), dotted_key(prefix_, key), what);
}

void TableReader::table_error(std::string_view what) {
  diag_.add(line_of(table_), prefix_, what);
}

bool TableReader::read_int(std::string_view key, int64_t min, int64_t max, int& out) {
  const toml::node* node = get(key);
  if (!node) return false;
  const auto* v = node->as_integer();
  if (!v || v->get() < min || v->get() > max) {
    error(key, "expected an integer " + std::to_string(min) + ".." + std::to_string(max) +
                   ", got " + describe(*node));
    return false;
  }
  out = static_cast<int>(v->get());
  return true;
}

bool TableReader::read_string(std::string_view key, std::string& out, bool secret) {
  const toml::node* node = get(key);
  if (!node) return false;
  const auto* v = node->as_string();
  if (!v) {
    error(key, std::string("expected a string, got ") +
                   (secret ? std::string(type_name(*node)) + " (value hidden)" : describe(*node)));
    return false;
  }
  out = v->get();
  return true;
}

bool TableReader::read_bool(std::string_view key, bool& out) {
  const toml::node* node = get(key);
  if (!node) return false;
  const auto* v = node->as_boolean();
  if (!v) {
    error(key, "expected true or false, got " + describe(*node));
    return false;
  }
  out = v->get();
  return true;
}

bool TableReader::read_duration(std::string_view key, bool allow_zero, Duration& out) {
  const toml::node* node = get(key);
  if (!node) return false;
  std::optional<pgrelay::Result<Duration>> parsed;
  if (const auto* i = node->as_integer()) {
    parsed.emplace(duration_from_seconds(static_cast<double>(i->get())));
  } else if (const auto* f = node->as_floating_point()) {
    parsed.emplace(duration_from_seconds(f->get()));
  } else if (const auto* s = node->as_string()) {
    parsed.emplace(parse_duration(s->get()));
  } else {
    error(key, "expected a duration (seconds, or a string such as \"250ms\", \"30s\", \"5min\", "
               "\"2h\"), got " + describe(*node));
    return false;
  }
  if (!parsed->ok()) {
    error(key, parsed->error().message);
    return false;
  }
  if (!allow_zero && parsed->value().count() == 0) {
    error(key, "expected a duration greater than 0, got " + describe(*node));
    return false;
  }
  out = parsed->value();
  return true;
}

bool TableReader::read_size(std::string_view key, uint32_t min, uint32_t max, uint32_t& out) {
  const toml::node* node = get(key);
  if (!node) return false;
  std::optional<uint64_t> bytes;
  if (const auto* i = node->as_integer()) {
    if (i->get() >= 0) bytes = static_cast<uint64_t>(i->get());
  } else if (const auto* s = node->as_string()) {
    bytes = parse_size(s->get());
  }
  if (!bytes || *bytes < min || *bytes > max) {
    error(key, "expected a size of " + std::to_string(min) + ".." + std::to_string(max) +
                   " bytes (an integer, or a string such as \"64kB\", \"256MB\", \"1GB\"), got " +
                   describe(*node));
    return false;
  }
  out = static_cast<uint32_t>(*bytes);
  return true;
}

bool TableReader::read_number(std::string_view key, double min, double max, double& out) {
  const toml::node* node = get(key);
  if (!node) return false;
  std::optional<double> value;
  if (const auto* i = node->as_integer()) value = static_cast<double>(i->get());
  if (const auto* f = node->as_floating_point()) value = f->get();
  if (!value || !(*value >= min && *value <= max)) {
    std::ostringstream expected;
    expected << "expected a number " << min << ".." << max << ", got " << describe(*node);
    error(key, expected.str());
    return false;
  }
  out = *value;
  return true;
}

bool TableReader::read_string_list(std::string_view key, bool allow_single, bool allow_empty,
                                   std::vector<std::string>& out) {
  const toml::node* node = get(key);
  if (!node) return false;
  const std::string expected = allow_single ? "expected a non-empty string or an array of them, got "
                                            : "expected an array of non-empty strings, got ";
  if (const auto* s = node->as_string(); s && allow_single) {
    if (s->get().empty()) {
      error(key, expected + describe(*node));
      return false;
    }
    out = {s->get()};
    return true;
  }
  const auto* array = node->as_array();
  if (!array || (array->empty() && !allow_empty)) {
    error(key, expected + (array ? "[]" : describe(*node)));
    return false;
  }
  std::vector<std::string> values;
  for (const toml::node& element : *array) {
    const auto* s = element.as_string();
    if (!s || s->get().empty()) {
      error(key, expected + "an array holding " + describe(element));
      return false;
    }
    values.push_back(s->get());
  }
  out = std::move(values);
  return true;
}

bool TableReader::read_choice(std::string_view key, std::span<const std::string_view> names,
                              size_t& index) {
  const toml::node* node = get(key);
  if (!node) return false;
  if (const auto* s = node->as_string()) {
    for (size_t i = 0; i < names.size(); ++i) {
      if (s->get() == names[i]) {
        index = i;
        return true;
      }
    }
  }
  std::string expected = "expected one of ";
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) expected += i + 1 == names.size() ? " or " : ", ";
    expected += "\"" + std::string(names[i]) + "\"";
  }
  error(key, expected + ", got " + describe(*node));
  return false;
}

void TableReader::reject_unknown_keys() {
  for (auto&& [key, node] : table_) {
    const std::string_view name = key.str();
    if (std::find(known_.begin(), known_.end(), name) != known_.end()) continue;
    std::string what = "unknown key";
    const std::string* best = nullptr;
    size_t best_distance = 3;  // suggest only near misses
    for (const auto& k : known_) {
      const size_t d = edit_distance(name, k);
      if (d < best_distance) best = &k, best_distance = d;
    }
    if (best) what += " (did you mean " + *best + "?)";
    what += "; valid keys: ";
    for (size_t i = 0; i < known_.size(); ++i) {
      if (i > 0) what += ", ";
      what += known_[i];
    }
    const uint32_t line = key.source().begin.line ? key.source().begin.line : line_of(node);
    diag_.add(line, dotted_key(prefix_, name), what);
  }
}

}  // namespace pgrelay::conf
