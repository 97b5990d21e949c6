// A caching CPU allocator (csrc/cpu_cache.cpp): opt-in, for training loops.
#pragma once
#include <cstddef>

namespace replicate {

struct CacheStats {
  size_t cached_bytes = 0, live_bytes = 0, hits = 0, misses = 0;
  // the most in use at once (blocks of 1 MB and more) since enabling or reset_cpu_cache_peak()
  size_t peak_live_bytes = 0;
};

void enable_cpu_cache(size_t max_cached_bytes);
bool cpu_cache_enabled();
void empty_cpu_cache();
CacheStats cpu_cache_stats();
void reset_cpu_cache_peak();

}  // namespace replicate
