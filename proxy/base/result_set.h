// A result set the admin console sends: RowDescription, DataRows and CommandComplete. Pure.
//
// Every value travels in text format; numbers are typed int8/float8 so psql right-aligns them,
// as PgBouncer's console does.
// https://www.postgresql.org/docs/15/protocol-flow.html#PROTOCOL-FLOW-SIMPLE-QUERY
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/bytes.h"

namespace pgrelay::proxy {

class ResultSet {
 public:
  enum class Type { kText, kInt, kFloat };
  struct Column {
    std::string name;
    Type type = Type::kText;
  };

  // One row under construction; values are added left to right.
  class Row {
   public:
    Row& text(std::string v) { values_.emplace_back(std::move(v)); return *this; }
    Row& num(int64_t v) { values_.emplace_back(std::to_string(v)); return *this; }
    Row& num(double v);
    Row& null() { values_.emplace_back(std::nullopt); return *this; }
    const std::vector<std::optional<std::string>>& values() const { return values_; }

   private:
    std::vector<std::optional<std::string>> values_;
  };

  explicit ResultSet(std::vector<Column> columns) : columns_(std::move(columns)) {}

  // A new, empty row; fill it before adding the next. encode() pads a short row with NULLs
  // and drops extra values, so a mistake cannot produce a malformed message.
  Row& row() { return rows_.emplace_back(); }

  const std::vector<Column>& columns() const { return columns_; }
  const std::vector<Row>& rows() const { return rows_; }

  // Appends RowDescription, one DataRow per row and CommandComplete `tag`.
  void encode(std::string_view tag, protocol::Buffer& out) const;

 private:
  std::vector<Column> columns_;
  std::vector<Row> rows_;
};

// "2026-11-25 12:23:07 UTC", as PgBouncer shows times; with `millis` (0..999),
// "2026-11-25 12:23:07.042 UTC".
std::string format_utc(int64_t unix_seconds, int millis = -1);

}  // namespace pgrelay::proxy
