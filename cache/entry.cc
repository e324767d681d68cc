// Cache entries: LZ4 packing of responses and byte accounting.
#include "cache/entry.h"

#include <lz4.h>

#include <algorithm>

namespace pgrelay::cache {

StoredResponse pack_response(std::span<const std::byte> raw, size_t compress_threshold) {
  StoredResponse out;
  out.raw_size = raw.size();
  if (raw.size() > compress_threshold && raw.size() <= static_cast<size_t>(LZ4_MAX_INPUT_SIZE)) {
    const int src_size = static_cast<int>(raw.size());
    std::vector<std::byte> packed(static_cast<size_t>(LZ4_compressBound(src_size)));
    const int n = LZ4_compress_default(reinterpret_cast<const char*>(raw.data()),
                                       reinterpret_cast<char*>(packed.data()), src_size,
                                       static_cast<int>(packed.size()));
    // Kept only when it saves an eighth or more: a barely compressible answer (random bytes as
    // hex, 1.09x) would cost every fill ~20x and every hit ~4x the CPU for a few percent of memory
    // (bench/README.md, "what compression costs").
    if (n > 0 && static_cast<size_t>(n) <= raw.size() - raw.size() / 8) {
      packed.resize(static_cast<size_t>(n));
      packed.shrink_to_fit();   // the bound's slack would be held but charged to no one
      out.bytes = std::move(packed);
      out.compressed = true;
      return out;
    }
  }
  out.bytes.assign(raw.begin(), raw.end());
  return out;
}

bool unpack_response(const StoredResponse& stored, std::vector<std::byte>& out) {
  if (!stored.compressed) {
    out.assign(stored.bytes.begin(), stored.bytes.end());
    return true;
  }
  out.resize(stored.raw_size);
  const int n = LZ4_decompress_safe(reinterpret_cast<const char*>(stored.bytes.data()),
                                    reinterpret_cast<char*>(out.data()), static_cast<int>(stored.bytes.size()),
                                    static_cast<int>(stored.raw_size));
  if (n < 0 || static_cast<size_t>(n) != stored.raw_size) {
    out.clear();
    return false;
  }
  return true;
}

size_t entry_charge(size_t key_bytes, size_t stored_bytes, size_t tables) {
  return key_bytes + stored_bytes + tables * sizeof(TableGeneration) + kEntryBookkeepingBytes;
}

bool Entry::read_table(TableId table) const {
  return std::any_of(reads.tables.begin(), reads.tables.end(),
                     [table](const TableGeneration& t) { return t.table == table; });
}

}  // namespace pgrelay::cache
