// Internal to conf/: typed, range-checked reads of one TOML table, collecting errors.
//
// The loader asks a TableReader for each key it knows; whatever it never asked about is an
// unknown key. Errors are collected (not thrown, not stopped at) so one run of pgrelay reports
// every typo in a file at once, each as "<source>:<line>: <dotted.key>: expected ..., got ...".
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <toml++/toml.h>

#include "conf/config.h"
#include "protocol/result.h"

namespace pgrelay::conf {

class Diagnostics {
 public:
  explicit Diagnostics(std::string source) : source_(std::move(source)) {}

  void add(uint32_t line, std::string_view key, std::string_view what);
  bool empty() const { return errors_.empty(); }
  // Every error, ordered by line, one per line of text.
  pgrelay::Error to_error() const;

 private:
  std::string source_;
  std::vector<std::pair<uint32_t, std::string>> errors_;
};

// The line a node starts on; for a table that toml++ created implicitly (no header of its
// own), the first line of its contents. 0 when nothing says.
uint32_t line_of(const toml::node& node);

// A node as the "got ..." part of an error: TOML syntax for values, "a table" / "an array".
std::string describe(const toml::node& node);

// "prefix.key", with key quoted when it is not a bare TOML key ("databases.\"my.db\"").
std::string dotted_key(std::string_view prefix, std::string_view key);

class TableReader {
 public:
  // `table` must outlive the reader; `prefix` is the table's dotted name ("pgrelay").
  TableReader(const toml::table& table, std::string prefix, Diagnostics& diag);

  // Each read_*: key absent -> false, `out` untouched; valid -> `out` set, true;
  // invalid -> an error recorded, `out` untouched, false.
  bool read_int(std::string_view key, int64_t min, int64_t max, int& out);
  bool read_string(std::string_view key, std::string& out, bool secret = false);
  bool read_bool(std::string_view key, bool& out);
  bool read_duration(std::string_view key, bool allow_zero, Duration& out);
  bool read_size(std::string_view key, uint32_t min, uint32_t max, uint32_t& out);
  // A number (integer or float) in [min, max].
  bool read_number(std::string_view key, double min, double max, double& out);
  // An array of non-empty strings (or, when `allow_single`, one string standing for a list of
  // one). An empty array is an error unless `allow_empty`.
  bool read_string_list(std::string_view key, bool allow_single, bool allow_empty, std::vector<std::string>& out);
  // One of `names`; `index` is set to the position of the one found.
  bool read_choice(std::string_view key, std::span<const std::string_view> names, size_t& index);

  // A sub-table ([prefix.key]): nullptr when absent, or (an error recorded) when not a table.
  const toml::table* read_table(std::string_view key);
  // An array of tables ([[prefix.key]]): nullptr when absent, or (an error recorded) when it is
  // anything else. An empty array is fine.
  const toml::array* read_table_array(std::string_view key);

  bool has(std::string_view key) const { return table_.contains(key); }
  // The value of `key` without reading it (to choose which read_* applies); null when absent.
  const toml::node* peek(std::string_view key) const { return table_.get(key); }
  Diagnostics& diagnostics() { return diag_; }
  // An error about `key`, at its line (the table's line when the key is absent).
  void error(std::string_view key, std::string_view what);
  // An error about the table itself.
  void table_error(std::string_view what);
  // Records an "unknown key" error for every key no read_* asked about. Call last.
  void reject_unknown_keys();

  const std::string& prefix() const { return prefix_; }

 private:
  const toml::node* get(std::string_view key);  // and remember `key` as a valid one

  const toml::table& table_;
  std::string prefix_;
  Diagnostics& diag_;
  std::vector<std::string> known_;
};

}  // namespace pgrelay::conf
