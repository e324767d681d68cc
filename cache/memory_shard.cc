// One memory-tier shard: full-key index, W-TinyLFU or LRU eviction within a byte budget.
#include "cache/memory_shard.h"

#include <algorithm>
#include <cstring>

namespace pgrelay::cache {

namespace {

constexpr size_t kWindowPercent = 1;
constexpr size_t kProtectedPercent = 80;   // of the main area
// The sketch starts small and grows with the entries: sized from the budget instead, a 1 GiB cache
// of few entries would scatter every lookup over megabytes of counters.
constexpr size_t kSketchFirstEntries = 64;

}  // namespace

void MemoryStats::add(const MemoryStats& o) {
  entries += o.entries;
  bytes += o.bytes;
  raw_bytes += o.raw_bytes;
  window_bytes += o.window_bytes;
  probation_bytes += o.probation_bytes;
  protected_bytes += o.protected_bytes;
  budget_bytes += o.budget_bytes;
  hits += o.hits;
  misses_absent += o.misses_absent;
  misses_expired += o.misses_expired;
  misses_stale += o.misses_stale;
  misses_corrupt += o.misses_corrupt;
  insertions += o.insertions;
  replacements += o.replacements;
  rejected_too_large += o.rejected_too_large;
  rejected_raced += o.rejected_raced;
  rejected_flushed += o.rejected_flushed;
  rejected_expired += o.rejected_expired;
  evictions += o.evictions;
  admission_rejections += o.admission_rejections;
  invalidated_generation += o.invalidated_generation;
  invalidated_ttl += o.invalidated_ttl;
  invalidated_flush += o.invalidated_flush;
}

bool MemoryShard::KeyViewEqual::operator()(const KeyView& a, const KeyView& b) const {
  // The hash only narrows the search: two keys are the same key when all their bytes are.
  return a.hash == b.hash && a.bytes.size() == b.bytes.size() &&
         (a.bytes.empty() || std::memcmp(a.bytes.data(), b.bytes.data(), a.bytes.size()) == 0);
}

MemoryShard::MemoryShard(size_t budget_bytes, EvictionPolicy policy)
    : policy_(policy),
      budget_(budget_bytes),
      window_cap_(policy == EvictionPolicy::kLru ? budget_bytes
                                                 : std::max<size_t>(budget_bytes * kWindowPercent / 100, 1)),
      main_cap_(budget_bytes - std::min(window_cap_, budget_bytes)),
      protected_cap_(main_cap_ * kProtectedPercent / 100),
      sketch_(policy == EvictionPolicy::kLru ? 0 : kSketchFirstEntries) {}

size_t MemoryShard::largest_entry() const { return policy_ == EvictionPolicy::kLru ? budget_ : main_cap_; }

MemoryShard::List& MemoryShard::list_of(Segment s) {
  switch (s) {
    case Segment::kWindow: return window_;
    case Segment::kProbation: return probation_;
    case Segment::kProtected: return protected_;
  }
  return window_;
}

uint64_t& MemoryShard::bytes_of(Segment s) {
  switch (s) {
    case Segment::kWindow: return window_bytes_;
    case Segment::kProbation: return probation_bytes_;
    case Segment::kProtected: return protected_bytes_;
  }
  return window_bytes_;
}

std::optional<MemoryShard::Found> MemoryShard::lookup(std::span<const std::byte> key, uint64_t key_hash,
                                                      TimePoint now, const Generations& generations) {
  // Misses count too: a key asked for often deserves its place once it is filled.
  if (policy_ == EvictionPolicy::kWTinyLfu) sketch_.increment(key_hash);
  const auto it = index_.find(KeyView{key_hash, key});
  if (it == index_.end()) {
    ++counters_.misses_absent;
    return std::nullopt;
  }
  const List::iterator node = it->second;
  const Entry& e = node->entry;
  if (now >= e.expires_at) {
    ++counters_.misses_expired;
    ++counters_.invalidated_ttl;
    erase(node);
    return std::nullopt;
  }
  if (!generations.unchanged(e.reads)) {
    ++counters_.misses_stale;
    ++counters_.invalidated_generation;
    erase(node);
    return std::nullopt;
  }
  ++counters_.hits;
  Found found{.response = e.response, .filled_at = e.filled_at, .fingerprint = e.fingerprint, .shared = e.shared};
  on_hit(node);
  return found;
}

InsertOutcome MemoryShard::insert(Entry&& entry, const Generations& generations, bool flushed_since_fill_start) {
  if (flushed_since_fill_start) {
    ++counters_.rejected_flushed;
    return InsertOutcome::kFlushed;
  }
  if (entry.charge > largest_entry()) {
    ++counters_.rejected_too_large;
    return InsertOutcome::kTooLarge;
  }
  // Checked under the lock, right before storing; a bump after this point is caught by lookup().
  if (!generations.unchanged(entry.reads)) {
    ++counters_.rejected_raced;
    return InsertOutcome::kRaced;
  }
  if (const auto it = index_.find(KeyView{entry.key_hash, entry.key}); it != index_.end()) {
    erase(it->second);
    ++counters_.replacements;
  }
  window_.push_front(Node{.entry = std::move(entry), .segment = Segment::kWindow});
  const List::iterator node = window_.begin();
  index_.emplace(KeyView{node->entry.key_hash, node->entry.key}, node);
  window_bytes_ += node->entry.charge;
  raw_bytes_ += node->entry.response->raw_size;
  ++counters_.insertions;
  if (policy_ == EvictionPolicy::kWTinyLfu) sketch_.ensure_capacity(index_.size());
  make_room();
  return InsertOutcome::kStored;
}

void MemoryShard::move_to_front(List::iterator node, Segment to) {
  const size_t charge = node->entry.charge;
  bytes_of(node->segment) -= charge;
  List& from = list_of(node->segment);
  List& dest = list_of(to);
  dest.splice(dest.begin(), from, node);   // iterators, and so the index, stay valid
  node->segment = to;
  bytes_of(to) += charge;
}

void MemoryShard::on_hit(List::iterator node) {
  if (node->segment != Segment::kProbation) {
    move_to_front(node, node->segment);
    return;
  }
  // Asked for again while on probation: protect it, and let the protected overflow re-earn its place.
  move_to_front(node, Segment::kProtected);
  while (protected_bytes_ > protected_cap_ && !protected_.empty()) {
    move_to_front(std::prev(protected_.end()), Segment::kProbation);
  }
}

void MemoryShard::make_room() {
  if (policy_ == EvictionPolicy::kLru) {
    while (window_bytes_ > budget_) evict(std::prev(window_.end()));
    return;
  }
  while (window_bytes_ > window_cap_) {
    const List::iterator candidate = std::prev(window_.end());
    move_to_front(candidate, Segment::kProbation);
    admit_into_main(candidate);
  }
}

// `candidate` just left the window for the front of probation. While the main area is over its
// bytes, it duels the main area's LRU victim (probation's, else protected's) on frequency.
void MemoryShard::admit_into_main(List::iterator candidate) {
  while (main_bytes() > main_cap_) {
    List::iterator victim;
    if (std::prev(probation_.end()) != candidate) {
      victim = std::prev(probation_.end());
    } else if (!protected_.empty()) {
      victim = std::prev(protected_.end());
    } else {
      victim = candidate;   // alone and still too large: nothing to duel
    }
    if (victim != candidate &&
        sketch_.frequency(candidate->entry.key_hash) > sketch_.frequency(victim->entry.key_hash)) {
      evict(victim);
      continue;
    }
    ++counters_.admission_rejections;
    evict(candidate);
    return;
  }
}

void MemoryShard::evict(List::iterator node) {
  ++counters_.evictions;
  erase(node);
}

void MemoryShard::erase(List::iterator node) {
  Entry& e = node->entry;
  index_.erase(KeyView{e.key_hash, e.key});
  bytes_of(node->segment) -= e.charge;
  raw_bytes_ -= e.response->raw_size;
  list_of(node->segment).erase(node);
}

void MemoryShard::for_each(const std::function<void(const Entry&)>& visit) const {
  for (const List* list : {&window_, &probation_, &protected_}) {
    for (const Node& node : *list) visit(node.entry);
  }
}

size_t MemoryShard::flush_if(const std::function<bool(const Entry&)>& match) {
  size_t n = 0;
  for (List* list : {&window_, &probation_, &protected_}) {
    for (auto it = list->begin(); it != list->end();) {
      const auto next = std::next(it);
      if (match(it->entry)) {
        erase(it);
        ++n;
      }
      it = next;
    }
  }
  counters_.invalidated_flush += n;
  return n;
}

MemoryStats MemoryShard::stats() const {
  MemoryStats s = counters_;
  s.entries = index_.size();
  s.bytes = window_bytes_ + probation_bytes_ + protected_bytes_;
  s.raw_bytes = raw_bytes_;
  s.window_bytes = window_bytes_;
  s.probation_bytes = probation_bytes_;
  s.protected_bytes = protected_bytes_;
  s.budget_bytes = budget_;
  return s;
}

}  // namespace pgrelay::cache
