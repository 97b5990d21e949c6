// Caffe 1.0's random numbers, value for value (see rng.h).  Each function follows the Boost 1.74
// header Caffe was compiled with, in that header's precision and order of operations:
//   mt19937                      boost/random/mersenne_twister.hpp (the standard MT19937)
//   uniform_real<T>              boost/random/uniform_real_distribution.hpp (generate_uniform_real)
//   uniform_01<T>                boost/random/uniform_01.hpp (new_uniform_01)
//   bernoulli_distribution<T>    boost/random/bernoulli_distribution.hpp
//   normal_distribution<T>       boost/random/normal_distribution.hpp (unit_normal_distribution)
//   exponential_distribution<T>  boost/random/exponential_distribution.hpp
//   int/float pair               boost/random/detail/int_float_pair.hpp (w = 8 bits of bucket)
// Built with -ffp-contract=off, as Caffe's g++ -O2 build on x86-64 never fused these operations.
#include "rng.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include <torch/library.h>

#include "boost_ziggurat_tables.h"

namespace replicate {
namespace rng {
namespace {

constexpr int kN = 624;

void check_state(const at::Tensor& state) {
  TORCH_CHECK(state.device().is_cpu() && state.scalar_type() == at::kInt && state.dim() == 1 &&
                  state.numel() == kN + 1 && state.is_contiguous(),
              "Caffe RNG: the state must be a contiguous CPU int32 tensor of 625 elements, got ",
              state.scalar_type(), " of shape ", state.sizes());
}

// The state tensor's words, advanced in place: key[0..623] and the position key[624].
class MT19937 {
 public:
  explicit MT19937(at::Tensor& state) : state_(state) {
    check_state(state);
    key_ = reinterpret_cast<uint32_t*>(state.data_ptr<int32_t>());
    pos_ = static_cast<int>(state.data_ptr<int32_t>()[kN]);
    TORCH_CHECK(pos_ >= 0 && pos_ <= kN, "Caffe RNG: state position ", pos_, " is not in 0..624");
  }
  ~MT19937() { state_.data_ptr<int32_t>()[kN] = pos_; }

  uint32_t operator()() {
    if (pos_ >= kN) twist();
    return temper(key_[pos_++]);
  }

  // The next n words, as n calls of operator() give them, into out (which must not overlap the
  // state): a block of the key at a time, with the position in a local, so the loop vectorises.
  void fill(uint32_t* out, int64_t n) {
    for (int64_t k = 0; k < n;) {
      if (pos_ >= kN) twist();
      const int pos = pos_;
      const int64_t m = std::min<int64_t>(n - k, kN - pos);
      const uint32_t* key = key_ + pos;
      for (int64_t j = 0; j < m; ++j) out[k + j] = temper(key[j]);
      pos_ = pos + int(m);
      k += m;
    }
  }

 private:
  // Boost's twist, key[i] from key[i], key[(i + 1) % n] and key[(i + m) % n] in place for i = 0..n-1,
  // with the wrap-arounds taken out of the loops (the same reads and writes in the same order).
  void twist() {
    constexpr int kM = 397;
    uint32_t* k = key_;
    int i = 0;
    for (; i < kN - kM; ++i) k[i] = mix(k[i], k[i + 1], k[i + kM]);
    for (; i < kN - 1; ++i) k[i] = mix(k[i], k[i + 1], k[i + kM - kN]);
    k[kN - 1] = mix(k[kN - 1], k[0], k[kM - 1]);
    pos_ = 0;
  }
  static uint32_t mix(uint32_t cur, uint32_t next, uint32_t far) {
    const uint32_t y = (cur & 0x80000000u) | (next & 0x7fffffffu);
    return far ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
  }
  static uint32_t temper(uint32_t y) {
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
  }

  at::Tensor& state_;
  uint32_t* key_;
  int pos_;
};

// generate_int_float_pair<T, 8> for a 32-bit engine: the bucket is the low 8 bits of the first
// word and the float its high 24 bits; for double a second word adds 29 more bits, exactly as
// Boost 1.74 combines them (its `remaining` step).
template <typename T>
inline std::pair<T, int> int_float_pair(MT19937& eng) {
  uint32_t u = eng();
  const int bucket = static_cast<int>(u & 0xffu);
  T r = T(u >> 8) * (T(1) / T(uint32_t(1) << 24));
  constexpr int digits = std::numeric_limits<T>::digits;
  if (24 < digits) {
    constexpr int remaining = (digits - 32 + 8) % 32;
    u = eng();
    r += T(u & ((uint32_t(2) << (remaining - 1)) - 1));
    r *= T(0.5) / T(uint32_t(1) << (remaining - 1));
  }
  return {r, bucket};
}

template <typename T>
inline T uniform_01(MT19937& eng) {
  for (;;) {
    const T factor = T(1) / (T(uint32_t(0xffffffffu)) + T(1));
    const T result = T(eng()) * factor;
    if (result < T(1)) return result;
  }
}

template <typename T>
T uniform_real(MT19937& eng, T lo, T hi) {
  if (hi / 2 - lo / 2 > std::numeric_limits<T>::max() / 2) return 2 * uniform_real<T>(eng, T(lo / 2), T(hi / 2));
  for (;;) {
    const T numerator = T(eng());
    const T divisor = T(uint32_t(0xffffffffu)) + 1;
    const T result = numerator / divisor * (hi - lo) + lo;
    if (result < hi) return result;
  }
}

template <typename T>
T unit_exponential(MT19937& eng) {
  const double* tx = boost_tables::exponential_x;
  const double* ty = boost_tables::exponential_y;
  T shift(0);
  for (;;) {
    const std::pair<T, int> vals = int_float_pair<T>(eng);
    const int i = vals.second;
    const T x = vals.first * T(tx[i]);
    if (x < T(tx[i + 1])) return shift + x;
    if (i == 0) {
      shift += T(tx[1]);
    } else {
      const T y01 = uniform_01<T>(eng);
      const T y = T(ty[i]) + y01 * T(ty[i + 1] - ty[i]);
      const T y_above_ubound = T(tx[i] - tx[i + 1]) * y01 - (T(tx[i]) - x);
      const T y_above_lbound = y - (T(ty[i + 1]) + (T(tx[i + 1]) - x) * T(ty[i + 1]));
      if (y_above_ubound < 0 && (y_above_lbound < 0 || y < T(std::exp(-x)))) return x + shift;
    }
  }
}

template <typename T>
T exponential(MT19937& eng, T lambda) { return unit_exponential<T>(eng) / lambda; }

template <typename T>
T normal_tail(MT19937& eng) {
  const T tail_start = T(boost_tables::normal_x[1]);
  for (;;) {
    const T x = exponential<T>(eng, tail_start);
    const T y = exponential<T>(eng, T(1));
    if (2 * y > x * x) return x + tail_start;
  }
}

template <typename T>
T unit_normal(MT19937& eng) {
  const double* tx = boost_tables::normal_x;
  const double* ty = boost_tables::normal_y;
  for (;;) {
    const std::pair<T, int> vals = int_float_pair<T>(eng);
    int i = vals.second;
    const int sign = (i & 1) * 2 - 1;
    i = i >> 1;
    const T x = vals.first * T(tx[i]);
    if (x < tx[i + 1]) return x * sign;  // compared in double, as Boost's table is double
    if (i == 0) return normal_tail<T>(eng) * sign;
    const T y01 = uniform_01<T>(eng);
    const T y = T(ty[i]) + y01 * T(ty[i + 1] - ty[i]);
    T y_above_ubound, y_above_lbound;
    if (tx[i] >= 1) {  // convex, including the inflection layer
      y_above_ubound = T(tx[i] - tx[i + 1]) * y01 - (T(tx[i]) - x);
      y_above_lbound = y - (T(ty[i]) + (T(tx[i]) - x) * T(ty[i]) * T(tx[i]));
    } else {  // concave
      y_above_lbound = T(tx[i] - tx[i + 1]) * y01 - (T(tx[i]) - x);
      y_above_ubound = y - (T(ty[i]) + (T(tx[i]) - x) * T(ty[i]) * T(tx[i]));
    }
    if (y_above_ubound < 0 && (y_above_lbound < 0 || y < T(std::exp(-(x * x / 2))))) return x * sign;
  }
}

void check_n(const char* fn, int64_t n) {
  TORCH_CHECK(n >= 0 && n <= std::numeric_limits<int32_t>::max(), "Caffe RNG ", fn,
              ": count must be in 0..INT_MAX (Caffe's int), got ", n);
}

template <typename F>
at::Tensor fill(at::Tensor& state, int64_t n, bool is_double, const char* fn, F&& draw) {
  check_n(fn, n);
  at::Tensor out = at::empty({n}, at::TensorOptions().dtype(is_double ? at::kDouble : at::kFloat));
  MT19937 eng(state);
  if (!is_double) {
    float* o = out.data_ptr<float>();
    for (int64_t k = 0; k < n; ++k) o[k] = draw(eng, float());
  } else {
    double* o = out.data_ptr<double>();
    for (int64_t k = 0; k < n; ++k) o[k] = draw(eng, double());
  }
  return out;
}

}  // namespace

void seed(at::Tensor& state, uint32_t s) {
  check_state(state);
  uint32_t* key = reinterpret_cast<uint32_t*>(state.data_ptr<int32_t>());
  key[0] = s;
  for (uint32_t i = 1; i < kN; ++i) key[i] = 1812433253u * (key[i - 1] ^ (key[i - 1] >> 30)) + i;
  state.data_ptr<int32_t>()[kN] = kN;  // the first draw twists
}

at::Tensor raw(at::Tensor& state, int64_t n) {
  check_n("raw", n);
  at::Tensor out = at::empty({n}, at::TensorOptions().dtype(at::kLong));
  int64_t* o = out.data_ptr<int64_t>();
  MT19937 eng(state);
  for (int64_t k = 0; k < n; ++k) o[k] = eng();
  return out;
}

at::Tensor uniform(at::Tensor& state, int64_t n, double a, double b, bool is_double) {
  TORCH_CHECK(a <= b, "Caffe RNG uniform: needs a <= b, got [", a, ", ", b, "] (Caffe: CHECK_LE(a, b))");
  return fill(state, n, is_double, "uniform", [a, b](MT19937& eng, auto tag) {
    using T = decltype(tag);
    // caffe_nextafter: boost::math::nextafter(b, numeric_limits<T>::max())
    const T hi = std::nextafter(T(b), std::numeric_limits<T>::max());
    return uniform_real<T>(eng, T(a), hi);
  });
}

at::Tensor gaussian(at::Tensor& state, int64_t n, double mean, double sigma, bool is_double) {
  TORCH_CHECK(sigma > 0, "Caffe RNG gaussian: sigma must be > 0, got ", sigma, " (Caffe: CHECK_GT(sigma, 0))");
  return fill(state, n, is_double, "gaussian", [mean, sigma](MT19937& eng, auto tag) {
    using T = decltype(tag);
    return unit_normal<T>(eng) * T(sigma) + T(mean);
  });
}

at::Tensor exponential(at::Tensor& state, int64_t n, double lambda, bool is_double) {
  TORCH_CHECK(lambda > 0, "Caffe RNG exponential: lambda must be > 0, got ", lambda);
  return fill(state, n, is_double, "exponential", [lambda](MT19937& eng, auto tag) {
    using T = decltype(tag);
    return exponential<T>(eng, T(lambda));
  });
}

at::Tensor uniform01(at::Tensor& state, int64_t n, bool is_double) {
  return fill(state, n, is_double, "uniform01", [](MT19937& eng, auto tag) {
    using T = decltype(tag);
    return uniform_01<T>(eng);
  });
}

at::Tensor bernoulli(at::Tensor& state, int64_t n, double p, bool is_double) {
  check_n("bernoulli", n);
  TORCH_CHECK(p >= 0 && p <= 1, "Caffe RNG bernoulli: p must be in [0, 1], got ", p,
              " (Caffe: CHECK_GE(p, 0), CHECK_LE(p, 1))");
  at::Tensor out = at::empty({n}, at::TensorOptions().dtype(at::kInt));
  int32_t* o = out.data_ptr<int32_t>();
  MT19937 eng(state);
  // One word a draw, drawn a block at a time (MT19937::fill), then compared; the same words and the
  // same comparisons as one draw after another.
  auto draw = [&](auto pt) {
    using T = decltype(pt);
    if (pt == T(0)) { out.zero_(); return; }  // Boost returns false without a draw
    const T bound = pt * T(uint32_t(0xffffffffu));
    constexpr int64_t kBlock = 1024;
    uint32_t words[kBlock];
    for (int64_t k = 0; k < n; k += kBlock) {
      const int64_t m = std::min(kBlock, n - k);
      eng.fill(words, m);
      for (int64_t j = 0; j < m; ++j) o[k + j] = T(words[j]) <= bound;
    }
  };
  if (is_double) draw(p);
  else draw(float(p));
  return out;
}

}  // namespace rng
}  // namespace replicate
