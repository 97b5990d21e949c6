// A caching CPU allocator for training loops.
//
// Every layer returns fresh tensors, and a CaffeNet iteration at batch 256 allocates and frees the
// same few dozen 10-300 MB buffers each time.  Through malloc those are fresh mmaps whose pages
// the kernel must fault in and zero on every iteration (about a tenth of an iteration's time).
// This allocator keeps freed blocks of 1 MB and more, keyed by their size rounded up to 2 MB, and
// hands them out again for the same size, as Caffe's blobs keep their memory.  Smaller requests go
// to the allocator that was installed before.  Blocks are 2 MB aligned and advised for huge pages.
// The footprint stays near the program's own peak: when a request misses and the blocks in use
// plus the cached ones plus the request would exceed the highest in-use total seen so far (plus
// 32 MB), cached blocks go back to the system first, largest first.  At most `max_cached` bytes
// stay cached in any case.
// Contents of reused blocks are not zeroed (torch's empty() makes no promise either).
#include "common.h"  // first in every file (setup.py gives it to each as a precompiled header)
#include "cpu_cache.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/util/Exception.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace replicate {
namespace {

constexpr size_t kMinBytes = size_t(1) << 20;
constexpr size_t kAlign = size_t(2) << 20;

class CachingCPUAllocator final : public c10::Allocator {
 public:
  explicit CachingCPUAllocator(c10::Allocator* base) : base_(base) {}

  c10::DataPtr allocate(size_t n) override {
    if (n < kMinBytes) return base_->allocate(n);
    const size_t size = (n + kAlign - 1) / kAlign * kAlign;
    void* p = nullptr;
    {
      std::lock_guard<std::mutex> g(mu_);
      auto it = free_.find(size);
      if (it != free_.end() && !it->second.empty()) {
        p = it->second.back();
        it->second.pop_back();
        cached_ -= size;
        ++hits_;
      }
    }
    if (!p) {
      trim_for(size);
      p = fresh(size);
      if (!p) {
        empty();  // give the cache back and try once more
        p = fresh(size);
      }
      TORCH_CHECK(p, "replicate CPU cache: out of memory allocating ", n, " bytes");
      std::lock_guard<std::mutex> g(mu_);
      ++misses_;
    }
    {
      std::lock_guard<std::mutex> g(mu_);
      live_[p] = size;
      live_bytes_ += size;
      peak_live_ = std::max(peak_live_, live_bytes_);
      window_peak_ = std::max(window_peak_, live_bytes_);
    }
    return {p, p, &CachingCPUAllocator::Delete, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &CachingCPUAllocator::Delete; }

  void copy_data(void* dest, const void* src, std::size_t count) const override { std::memcpy(dest, src, count); }

  void release(void* p) {
    std::unique_lock<std::mutex> g(mu_);
    auto it = live_.find(p);
    if (it == live_.end()) {
      // a small block of the allocator below, freed through raw_deleter() (raw_allocate /
      // raw_deallocate, as oneDNN's scratch buffers are): its own deleter frees it
      g.unlock();
      const c10::DeleterFnPtr d = base_->raw_deleter();
      TORCH_INTERNAL_ASSERT(d, "replicate CPU cache: freeing a block it does not own");
      d(p);
      return;
    }
    const size_t size = it->second;
    live_.erase(it);
    live_bytes_ -= size;
    if (cached_ + size > max_cached_) {
      unmap(p, size);
      return;
    }
    free_[size].push_back(p);
    cached_ += size;
  }

  void empty() {
    std::lock_guard<std::mutex> g(mu_);
    for (auto& kv : free_)
      for (void* p : kv.second) unmap(p, kv.first);
    free_.clear();
    cached_ = 0;
  }

  CacheStats stats() {
    std::lock_guard<std::mutex> g(mu_);
    return {cached_, live_bytes_, hits_, misses_, window_peak_};
  }

  // the in-use peak reported by stats() restarts from the bytes in use now (for measuring; the
  // footprint's own high-water mark, peak_live_, is kept)
  void reset_peak() {
    std::lock_guard<std::mutex> g(mu_);
    window_peak_ = live_bytes_;
  }

  // Before a fresh allocation: return cached blocks (largest first) while in-use + cached + the
  // request would pass the high-water mark of in-use bytes.
  void trim_for(size_t request) {
    std::lock_guard<std::mutex> g(mu_);
    const size_t budget = std::max(peak_live_, live_bytes_ + request) + kSlack;
    while (cached_ > 0 && live_bytes_ + cached_ + request > budget) {
      auto largest = free_.end();
      for (auto it = free_.begin(); it != free_.end(); ++it)
        if (!it->second.empty() && (largest == free_.end() || it->first > largest->first)) largest = it;
      if (largest == free_.end()) break;
      unmap(largest->second.back(), largest->first);
      largest->second.pop_back();
      cached_ -= largest->first;
    }
  }

  void set_max_cached(size_t bytes) {
    std::lock_guard<std::mutex> g(mu_);
    max_cached_ = bytes;
  }

  c10::Allocator* base() const { return base_; }

 private:
  // Blocks are mapped and unmapped here, not through malloc: glibc raises its mmap threshold to
  // the size of each mmapped chunk freed (up to 32 MB), after which blocks below it came from the
  // heap and stayed resident when the cache gave them back (a CaffeNet step's peak RSS measured
  // 2.73 GB against 2.50 GB unmapped).
  static void* fresh(size_t size) {
    void* m = mmap(nullptr, size + kAlign, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return nullptr;
    const uintptr_t start = reinterpret_cast<uintptr_t>(m);
    const uintptr_t aligned = (start + kAlign - 1) / kAlign * kAlign;
    if (aligned > start) munmap(m, aligned - start);
    if (start + kAlign > aligned) munmap(reinterpret_cast<void*>(aligned + size), start + kAlign - aligned);
    void* p = reinterpret_cast<void*>(aligned);
    madvise(p, size, MADV_HUGEPAGE);
    return p;
  }
  static void unmap(void* p, size_t size) { munmap(p, size); }
  static void Delete(void* ctx);

  c10::Allocator* base_;
  std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  std::unordered_map<void*, size_t> live_;
  static constexpr size_t kSlack = size_t(32) << 20;
  size_t cached_ = 0, hits_ = 0, misses_ = 0, live_bytes_ = 0, peak_live_ = 0, window_peak_ = 0;
  size_t max_cached_ = size_t(8) << 30;
};

CachingCPUAllocator* g_cache = nullptr;
std::mutex g_install;

void CachingCPUAllocator::Delete(void* ctx) { g_cache->release(ctx); }

}  // namespace

void enable_cpu_cache(size_t max_cached_bytes) {
  std::lock_guard<std::mutex> g(g_install);
  if (!g_cache) {
    // never destroyed: tensors it handed out may outlive any owner
    g_cache = new CachingCPUAllocator(c10::GetCPUAllocator());
    c10::SetCPUAllocator(g_cache, /*priority=*/100);
  }
  g_cache->set_max_cached(max_cached_bytes);
}

bool cpu_cache_enabled() { return g_cache != nullptr && c10::GetCPUAllocator() == g_cache; }

void empty_cpu_cache() {
  if (g_cache) g_cache->empty();
}

CacheStats cpu_cache_stats() { return g_cache ? g_cache->stats() : CacheStats{}; }

void reset_cpu_cache_peak() {
  if (g_cache) g_cache->reset_peak();
}

}  // namespace replicate
