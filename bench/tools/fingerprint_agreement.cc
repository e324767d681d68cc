// Groups the statements of SQL files by pgrelay's fingerprint and by libpg_query's, and reports
// where the two groupings disagree (issue #14: every disagreement fixed or documented).
//
// Usage: fingerprint_agreement FILE.sql... [--examples N]
//
// Statements are split with analyzer::split_statements; psql meta-command lines (\echo, \quit,
// \set ...) are dropped first; statements libpg_query cannot parse are counted and skipped.
//   merged: pgrelay gives one fingerprint to statements libpg_query tells apart
//   split:  pgrelay tells apart statements libpg_query gives one fingerprint
// Prints totals, then up to N examples of each (default 5): the two statements, normalized.
#include <pg_query.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "analyzer/fingerprint.h"
#include "analyzer/lexer.h"

namespace {

std::string read_without_meta_commands(const char* path) {
  std::ifstream in(path);
  std::string line, out;
  while (std::getline(in, line)) {
    size_t k = line.find_first_not_of(" \t");
    if (k != std::string::npos && line[k] == '\\') continue;
    out += line;
    out += '\n';
  }
  return out;
}

struct Seen {
  std::string text;        // the first statement with this pair of fingerprints
  std::string normalized;  // pgrelay's normalized text of it
};

}  // namespace

int main(int argc, char** argv) {
  std::vector<const char*> files;
  int examples = 5;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--examples" && i + 1 < argc) examples = std::atoi(argv[++i]);
    else files.push_back(argv[i]);
  }
  // pgrelay fingerprint -> libpg_query fingerprints seen with it (and one statement each), and back.
  std::map<uint64_t, std::map<uint64_t, Seen>> by_ours;
  std::map<uint64_t, std::set<uint64_t>> by_theirs;
  size_t statements = 0, unparsable = 0;
  for (const char* path : files) {
    const std::string sql = read_without_meta_commands(path);
    for (std::string_view s : pgrelay::analyzer::split_statements(sql)) {
      const std::string text(s);
      PgQueryFingerprintResult r = pg_query_fingerprint(text.c_str());
      if (r.error) {
        ++unparsable;
        pg_query_free_fingerprint_result(r);
        continue;
      }
      ++statements;
      const auto ours = pgrelay::analyzer::fingerprint(text);
      auto& group = by_ours[ours.hash];
      if (!group.count(r.fingerprint)) group[r.fingerprint] = Seen{text, ours.normalized};
      by_theirs[r.fingerprint].insert(ours.hash);
      pg_query_free_fingerprint_result(r);
    }
  }
  size_t merged = 0, split = 0;
  for (const auto& [ours, theirs] : by_ours) merged += theirs.size() > 1 ? 1 : 0;
  for (const auto& [theirs, ours] : by_theirs) split += ours.size() > 1 ? 1 : 0;
  std::printf("statements %zu (unparsable by libpg_query, skipped: %zu)\n", statements, unparsable);
  std::printf("groups: pgrelay %zu, libpg_query %zu\n", by_ours.size(), by_theirs.size());
  std::printf("merged (one pgrelay fingerprint, several of libpg_query's): %zu\n", merged);
  std::printf("split (one libpg_query fingerprint, several of pgrelay's): %zu\n", split);
  int shown = 0;
  for (const auto& [ours, theirs] : by_ours) {
    if (theirs.size() < 2 || shown >= examples) continue;
    ++shown;
    std::printf("\n-- merged example %d: %s\n", shown, theirs.begin()->second.normalized.c_str());
    for (const auto& [fp, seen] : theirs) std::printf("   %.200s\n", seen.text.c_str());
  }
  // A split example: the statements (one per pgrelay fingerprint) of one libpg_query group.
  shown = 0;
  for (const auto& [theirs, ours] : by_theirs) {
    if (ours.size() < 2 || shown >= examples) continue;
    ++shown;
    std::printf("\n-- split example %d:\n", shown);
    for (uint64_t o : ours) std::printf("   %.200s\n", by_ours[o].at(theirs).normalized.c_str());
  }
  return 0;
}
