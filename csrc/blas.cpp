#include "blas.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace replicate {
namespace blas {
namespace {

// CBLAS enum values (cblas.h).
constexpr int kRowMajor = 101;
constexpr int kNoTrans = 111;
constexpr int kTrans = 112;

struct Cblas {
  void* handle = nullptr;
  std::string path;
  void (*sgemm)(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*, int) = nullptr;
  void (*dgemm)(int, int, int, int, int, int, double, const double*, int, const double*, int, double, double*, int) = nullptr;
  void (*sgemv)(int, int, int, int, float, const float*, int, const float*, int, float, float*, int) = nullptr;
  void (*dgemv)(int, int, int, int, double, const double*, int, const double*, int, double, double*, int) = nullptr;
  void (*saxpy)(int, float, const float*, int, float*, int) = nullptr;
  void (*daxpy)(int, double, const double*, int, double*, int) = nullptr;
  void (*sscal)(int, float, float*, int) = nullptr;
  void (*dscal)(int, double, double*, int) = nullptr;
  void (*scopy)(int, const float*, int, float*, int) = nullptr;
  void (*dcopy)(int, const double*, int, double*, int) = nullptr;
  float (*sdot)(int, const float*, int, const float*, int) = nullptr;
  double (*ddot)(int, const double*, int, const double*, int) = nullptr;
  float (*sasum)(int, const float*, int) = nullptr;
  double (*dasum)(int, const double*, int) = nullptr;
  char* (*openblas_get_config)() = nullptr;
  char* (*openblas_get_corename)() = nullptr;
};

std::atomic<int> g_mode{static_cast<int>(Mode::Fast)};
std::once_flag g_once;
Cblas g_cblas;
std::string g_load_error;

template <typename F>
void sym(void* h, const char* name, F& f, const std::string& path, bool required = true) {
  f = reinterpret_cast<F>(dlsym(h, name));
  if (!f && required && g_load_error.empty())
    g_load_error = "the CBLAS library " + path + " has no symbol " + name;
}

void load() {
  const char* env = std::getenv("REPLICATE_CBLAS");
  std::vector<std::string> candidates;
  if (env && *env) {
    candidates.push_back(env);
  } else {
    candidates = {"/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0",
                  "/usr/lib/aarch64-linux-gnu/openblas-pthread/libopenblas.so.0",
                  "libopenblas.so.0"};
  }
  std::string errors;
  for (const auto& c : candidates) {
    void* h = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      const char* e = dlerror();
      errors += "\n  " + c + ": " + (e ? e : "not found");
      continue;
    }
    Cblas& b = g_cblas;
    b.handle = h;
    b.path = c;
    sym(h, "cblas_sgemm", b.sgemm, c);
    sym(h, "cblas_dgemm", b.dgemm, c);
    sym(h, "cblas_sgemv", b.sgemv, c);
    sym(h, "cblas_dgemv", b.dgemv, c);
    sym(h, "cblas_saxpy", b.saxpy, c);
    sym(h, "cblas_daxpy", b.daxpy, c);
    sym(h, "cblas_sscal", b.sscal, c);
    sym(h, "cblas_dscal", b.dscal, c);
    sym(h, "cblas_scopy", b.scopy, c);
    sym(h, "cblas_dcopy", b.dcopy, c);
    sym(h, "cblas_sdot", b.sdot, c);
    sym(h, "cblas_ddot", b.ddot, c);
    sym(h, "cblas_sasum", b.sasum, c);
    sym(h, "cblas_dasum", b.dasum, c);
    sym(h, "openblas_get_config", b.openblas_get_config, c, false);
    sym(h, "openblas_get_corename", b.openblas_get_corename, c, false);
    // One thread per call: the kernels call BLAS from their own parallel loops (images, row
    // blocks), and Caffe's fixtures were made single-threaded (exact mode needs it).
    void (*set_threads)(int) = nullptr;
    sym(h, "openblas_set_num_threads", set_threads, c, false);
    if (set_threads) set_threads(1);
    return;
  }
  g_load_error = "exact BLAS mode could not load a CBLAS library (set REPLICATE_CBLAS to its path, or "
                 "install Debian's libopenblas0-pthread):" + errors;
}

const Cblas& cblas() {
  std::call_once(g_once, load);
  TORCH_CHECK(g_load_error.empty(), g_load_error);
  return g_cblas;
}

inline bool exact() { return g_mode.load(std::memory_order_relaxed) == static_cast<int>(Mode::Exact); }

// Fast mode's GEMMs: the system CBLAS when it loads (OpenBLAS picks its best kernels for the CPU
// unless OPENBLAS_CORETYPE pins them; MKL, torch's matmul here, takes its AVX2 path on AMD cores),
// else torch's matmul.  REPLICATE_FAST_GEMM=torch forces torch's matmul.
bool fast_cblas() {
  static const bool use = [] {
    const char* env = std::getenv("REPLICATE_FAST_GEMM");
    if (env && std::string(env) == "torch") return false;
    std::call_once(g_once, load);
    return g_load_error.empty();
  }();
  return use;
}
inline int cb(Op t) { return t == NoTrans ? kNoTrans : kTrans; }

template <typename T>
at::Tensor wrap(const T* p, at::IntArrayRef sizes) {
  return at::from_blob(const_cast<T*>(p), sizes, at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value));
}

}  // namespace

Mode mode() { return static_cast<Mode>(g_mode.load()); }

void set_mode(Mode m) {
  if (m == Mode::Exact) cblas();  // fail now, with the library named, rather than mid-layer
  g_mode.store(static_cast<int>(m));
}

std::string library_path() { return g_cblas.handle ? g_cblas.path : std::string(); }

std::string library_info() {
  if (!g_cblas.handle) return std::string();
  std::string s = g_cblas.path;
  if (g_cblas.openblas_get_config) s += std::string(" | ") + g_cblas.openblas_get_config();
  if (g_cblas.openblas_get_corename) s += std::string(" | core=") + g_cblas.openblas_get_corename();
  return s;
}

template <typename T>
void gemm(Op ta, Op tb, int M, int N, int K, T alpha, const T* A, const T* B, T beta, T* C) {
  // caffe_cpu_gemm: lda = (TransA == NoTrans) ? K : M, ldb = (TransB == NoTrans) ? N : K, ldc = N.
  const int lda = (ta == NoTrans) ? K : M;
  const int ldb = (tb == NoTrans) ? N : K;
  if (!exact() && fast_cblas() && !at::in_parallel_region() && double(M) * N * K >= 1e7) {
    // fast mode, one big product from the calling thread (inner product): split the larger of the
    // rows/columns of C into fixed blocks of 16 over the threads, each a single-threaded CBLAS call
    // (fixed blocks: the bits do not depend on the thread count)
    const Cblas& b = cblas();
    const bool by_rows = M >= N;
    const int64_t len = by_rows ? M : N;
    at::parallel_for(0, (len + 15) / 16, 1, [&](int64_t b0, int64_t b1) {
      const int lo = static_cast<int>(b0 * 16), hi = static_cast<int>(std::min<int64_t>(b1 * 16, len));
      const int m = by_rows ? hi - lo : M, n = by_rows ? N : hi - lo;
      const T* a = by_rows ? (ta == NoTrans ? A + int64_t(lo) * lda : A + lo) : A;
      const T* bb = by_rows ? B : (tb == NoTrans ? B + lo : B + int64_t(lo) * ldb);
      T* c = by_rows ? C + int64_t(lo) * N : C + lo;
      if constexpr (std::is_same_v<T, float>)
        b.sgemm(kRowMajor, cb(ta), cb(tb), m, n, K, alpha, a, lda, bb, ldb, beta, c, N);
      else
        b.dgemm(kRowMajor, cb(ta), cb(tb), m, n, K, alpha, a, lda, bb, ldb, beta, c, N);
    });
    return;
  }
  if (exact() || fast_cblas()) {
    const Cblas& b = cblas();
    if constexpr (std::is_same_v<T, float>)
      b.sgemm(kRowMajor, cb(ta), cb(tb), M, N, K, alpha, A, lda, B, ldb, beta, C, N);
    else
      b.dgemm(kRowMajor, cb(ta), cb(tb), M, N, K, alpha, A, lda, B, ldb, beta, C, N);
    return;
  }
  if (M == 0 || N == 0) return;
  at::Tensor a = ta == NoTrans ? wrap(A, {M, K}) : wrap(A, {K, M}).t();
  at::Tensor bm = tb == NoTrans ? wrap(B, {K, N}) : wrap(B, {N, K}).t();
  at::Tensor c = wrap(C, {M, N});
  at::addmm_out(c, c, a, bm, beta, alpha);  // beta == 0 ignores C, as BLAS does
}

template <typename T>
void gemv(Op ta, int M, int N, T alpha, const T* A, const T* x, T beta, T* y) {
  if (exact() || fast_cblas()) {
    const Cblas& b = cblas();
    if constexpr (std::is_same_v<T, float>)
      b.sgemv(kRowMajor, cb(ta), M, N, alpha, A, N, x, 1, beta, y, 1);
    else
      b.dgemv(kRowMajor, cb(ta), M, N, alpha, A, N, x, 1, beta, y, 1);
    return;
  }
  const int ylen = ta == NoTrans ? M : N, xlen = ta == NoTrans ? N : M;
  if (ylen == 0) return;
  at::Tensor a = ta == NoTrans ? wrap(A, {M, N}) : wrap(A, {M, N}).t();
  at::Tensor yt = wrap(y, {ylen});
  at::addmv_out(yt, yt, a, wrap(x, {xlen}), beta, alpha);
}

// Fast-mode loop, built for AVX2 too (chosen at run time); -ffp-contract=off keeps it unfused.
template <typename T>
__attribute__((target_clones("avx2", "default"))) void fast_axpy(int N, T alpha, const T* X, T* Y) {
  for (int i = 0; i < N; ++i) Y[i] += alpha * X[i];
}

template <typename T>
void axpy(int N, T alpha, const T* X, T* Y) {
  if (exact()) {
    const Cblas& b = cblas();
    if constexpr (std::is_same_v<T, float>) b.saxpy(N, alpha, X, 1, Y, 1);
    else b.daxpy(N, alpha, X, 1, Y, 1);
    return;
  }
  fast_axpy<T>(N, alpha, X, Y);
}

template <typename T>
void scal(int N, T alpha, T* X) {
  if (exact()) {
    const Cblas& b = cblas();
    if constexpr (std::is_same_v<T, float>) b.sscal(N, alpha, X, 1);
    else b.dscal(N, alpha, X, 1);
    return;
  }
  for (int i = 0; i < N; ++i) X[i] *= alpha;
}

template <typename T>
void axpby(int N, T alpha, const T* X, T beta, T* Y) {
  // Caffe built without MKL defines axpby as scal(beta, Y) followed by axpy.
  scal<T>(N, beta, Y);
  axpy<T>(N, alpha, X, Y);
}

template <typename T>
void scale(int N, T alpha, const T* X, T* Y) {
  if (X != Y) std::memcpy(Y, X, sizeof(T) * static_cast<size_t>(N));
  scal<T>(N, alpha, Y);
}

template <typename T>
T strided_dot(int N, const T* X, int incx, const T* Y, int incy) {
  if (exact()) {
    const Cblas& b = cblas();
    if constexpr (std::is_same_v<T, float>) return b.sdot(N, X, incx, Y, incy);
    else return b.ddot(N, X, incx, Y, incy);
  }
  T s = 0;
  for (int i = 0; i < N; ++i) s += X[static_cast<int64_t>(i) * incx] * Y[static_cast<int64_t>(i) * incy];
  return s;
}

template <typename T>
T asum(int N, const T* X) {
  if (exact()) {
    const Cblas& b = cblas();
    if constexpr (std::is_same_v<T, float>) return b.sasum(N, X, 1);
    else return b.dasum(N, X, 1);
  }
  T s = 0;
  for (int i = 0; i < N; ++i) s += std::abs(X[i]);
  return s;
}

#define REPLICATE_INSTANTIATE(T)                                                           \
  template void gemm<T>(Op, Op, int, int, int, T, const T*, const T*, T, T*);        \
  template void gemv<T>(Op, int, int, T, const T*, const T*, T, T*);                    \
  template void axpy<T>(int, T, const T*, T*);                                             \
  template void axpby<T>(int, T, const T*, T, T*);                                         \
  template void scal<T>(int, T, T*);                                                       \
  template void scale<T>(int, T, const T*, T*);                                            \
  template T strided_dot<T>(int, const T*, int, const T*, int);                            \
  template T asum<T>(int, const T*);
REPLICATE_INSTANTIATE(float)
REPLICATE_INSTANTIATE(double)
#undef REPLICATE_INSTANTIATE

}  // namespace blas
}  // namespace replicate
