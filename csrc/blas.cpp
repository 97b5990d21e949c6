#include "common.h"  // first in every file (setup.py gives it to each as a precompiled header)
#include "blas.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <link.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

namespace replicate {
namespace blas {
namespace {

// CBLAS enum values (cblas.h).
constexpr int kRowMajor = 101;
constexpr int kNoTrans = 111;
constexpr int kTrans = 112;

// The library Caffe 1.0's golden runs used: Debian 12's OpenBLAS 0.3.21 (libopenblas0-pthread),
// its Haswell kernels (OPENBLAS_CORETYPE=Haswell), one thread per call.
constexpr const char* kExactVersion = "0.3.21";
constexpr const char* kExactCore = "Haswell";
constexpr const char* kInstall =
    "install Debian's OpenBLAS 0.3.21 with `apt-get install libopenblas0-pthread` (Debian 12 ships 0.3.21; it "
    "lands in /usr/lib/x86_64-linux-gnu/openblas-pthread/)";

struct Cblas {
  void* handle = nullptr;
  std::string path;         // the name it was opened by (REPLICATE_CBLAS or the default)
  std::string file;         // the library file it was read from, symlinks resolved
  bool private_copy = false;
  bool verified = false;
  std::string note;         // why unverified (exact), or how it was loaded
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
  int (*openblas_get_num_threads)() = nullptr;
  int (*openblas_get_parallel)() = nullptr;
  void (*openblas_set_num_threads)(int) = nullptr;

  std::string config() const { return openblas_get_config ? openblas_get_config() : std::string(); }
  std::string core() const { return openblas_get_corename ? openblas_get_corename() : std::string(); }
  int threads() const { return openblas_get_num_threads ? openblas_get_num_threads() : -1; }
  std::string version() const {  // "0.3.21" from "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH ..."
    const std::string c = config();
    if (c.rfind("OpenBLAS ", 0) != 0) return std::string();
    const size_t e = c.find(' ', 9);
    return c.substr(9, e == std::string::npos ? std::string::npos : e - 9);
  }
  std::string parallel() const {
    if (!openblas_get_parallel) return "unknown";
    switch (openblas_get_parallel()) {
      case 0: return "sequential";
      case 1: return "pthreads";
      case 2: return "openmp";
      default: return "unknown";
    }
  }
};

std::atomic<int> g_mode{static_cast<int>(Mode::Fast)};
std::mutex g_load_mu;  // loads happen once each, one at a time
std::once_flag g_exact_once, g_fast_once;
Cblas g_exact, g_fast_own;
const Cblas* g_fast = nullptr;  // &g_exact when exact mode loaded first, else &g_fast_own
std::string g_exact_error, g_fast_error;

std::vector<std::string> candidates() {
  const char* env = std::getenv("REPLICATE_CBLAS");
  if (env && *env) return {env};
  return {"/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0",
          "/usr/lib/aarch64-linux-gnu/openblas-pthread/libopenblas.so.0", "libopenblas.so.0"};
}

bool env_on(const char* name) {
  const char* v = std::getenv(name);
  return v && *v && std::string(v) != "0";
}

template <typename F>
void sym(void* h, const char* name, F& f, std::string& missing, bool required = true) {
  f = reinterpret_cast<F>(dlsym(h, name));
  if (!f && required) missing += std::string(missing.empty() ? "" : ", ") + name;
}

// The CBLAS entry points Caffe calls, and OpenBLAS's own config functions (absent elsewhere).
std::string bind_lib(void* h, const std::string& path, Cblas& b) {
  b = Cblas();
  b.handle = h;
  b.path = path;
  std::string missing;
  sym(h, "cblas_sgemm", b.sgemm, missing);
  sym(h, "cblas_dgemm", b.dgemm, missing);
  sym(h, "cblas_sgemv", b.sgemv, missing);
  sym(h, "cblas_dgemv", b.dgemv, missing);
  sym(h, "cblas_saxpy", b.saxpy, missing);
  sym(h, "cblas_daxpy", b.daxpy, missing);
  sym(h, "cblas_sscal", b.sscal, missing);
  sym(h, "cblas_dscal", b.dscal, missing);
  sym(h, "cblas_scopy", b.scopy, missing);
  sym(h, "cblas_dcopy", b.dcopy, missing);
  sym(h, "cblas_sdot", b.sdot, missing);
  sym(h, "cblas_ddot", b.ddot, missing);
  sym(h, "cblas_sasum", b.sasum, missing);
  sym(h, "cblas_dasum", b.dasum, missing);
  sym(h, "openblas_get_config", b.openblas_get_config, missing, false);
  sym(h, "openblas_get_corename", b.openblas_get_corename, missing, false);
  sym(h, "openblas_get_num_threads", b.openblas_get_num_threads, missing, false);
  sym(h, "openblas_get_parallel", b.openblas_get_parallel, missing, false);
  sym(h, "openblas_set_num_threads", b.openblas_set_num_threads, missing, false);
  struct link_map* lm = nullptr;
  b.file = path;
  if (dlinfo(h, RTLD_DI_LINKMAP, &lm) == 0 && lm && lm->l_name && *lm->l_name) b.file = lm->l_name;
  if (char* real = realpath(b.file.c_str(), nullptr)) {
    b.file = real;
    std::free(real);
  }
  // One thread per call: the kernels call BLAS from their own parallel loops (images, row
  // blocks), and Caffe's fixtures were made single-threaded (exact mode needs it).
  if (b.openblas_set_num_threads) b.openblas_set_num_threads(1);
  return missing.empty() ? std::string() : "the library " + path + " lacks " + missing;
}

// dlopen with OpenBLAS's load-time settings pinned: OpenBLAS picks its kernels (DYNAMIC_ARCH:
// OPENBLAS_CORETYPE) and the size of its thread pool (OPENBLAS_NUM_THREADS) in its constructor,
// which runs inside dlopen, so the variables are set in this process for the call and restored after.
void* dlopen_pinned(const std::string& path) {
  static const char* kVars[2][2] = {{"OPENBLAS_CORETYPE", kExactCore}, {"OPENBLAS_NUM_THREADS", "1"}};
  std::string old[2];
  bool had[2];
  for (int i = 0; i < 2; ++i) {
    const char* v = std::getenv(kVars[i][0]);
    had[i] = v != nullptr;
    if (v) old[i] = v;
    setenv(kVars[i][0], kVars[i][1], 1);
  }
  void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  for (int i = 0; i < 2; ++i) {
    if (had[i]) setenv(kVars[i][0], old[i].c_str(), 1);
    else unsetenv(kVars[i][0]);
  }
  return h;
}

// A second, private copy of a library this process already loaded with other kernels (fast mode
// or another user, without OPENBLAS_CORETYPE=Haswell): the file is copied into an anonymous memory
// file, which the dynamic loader treats as another library, so its constructor runs again, pinned.
void* dlopen_private_copy(const std::string& file, std::string& opened, std::string& err) {
  int src = open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (src < 0) {
    err = "cannot read " + file + ": " + std::strerror(errno);
    return nullptr;
  }
  int dst = static_cast<int>(syscall(SYS_memfd_create, "replicate-exact-openblas", 1u /* MFD_CLOEXEC */));
  if (dst < 0) {
    err = std::string("memfd_create failed: ") + std::strerror(errno);
    close(src);
    return nullptr;
  }
  std::vector<char> buf(1 << 20);
  bool ok = true;
  for (;;) {
    ssize_t n = read(src, buf.data(), buf.size());
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      ok = false;
      break;
    }
    for (ssize_t off = 0; off < n;) {
      ssize_t w = write(dst, buf.data() + off, static_cast<size_t>(n - off));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        ok = false;
        break;
      }
      off += w;
    }
    if (!ok) break;
  }
  close(src);
  void* h = nullptr;
  if (!ok) {
    err = "copying " + file + " failed: " + std::strerror(errno);
  } else {
    opened = "/proc/self/fd/" + std::to_string(dst);
    h = dlopen_pinned(opened);
    if (!h) {
      const char* e = dlerror();
      err = std::string("dlopen of a private copy failed: ") + (e ? e : "?");
    }
  }
  close(dst);  // the mapping stays
  return h;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string describe(const Cblas& b) {  // what the library says it is
  if (!b.openblas_get_config) return "not OpenBLAS (it has no openblas_get_config)";
  return "\"" + b.config() + "\", core " + b.core() + ", " + std::to_string(b.threads()) + " thread(s)";
}

// Exact mode's library: loaded with the Haswell kernels and one thread, then checked with the
// library's own config functions.
void load_exact() {
  std::lock_guard<std::mutex> lock(g_load_mu);
  std::string errors;
  bool found = false;
  for (const auto& c : candidates()) {
    std::string err;
    void* h = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
    if (h) {  // already in this process (fast mode, or another user): its kernels are chosen
      err = bind_lib(h, c, g_exact);
      if (err.empty() && g_exact.openblas_get_corename && lower(g_exact.core()) != lower(kExactCore)) {
        const std::string file = g_exact.file, core = g_exact.core();
        std::string opened, why;
        void* copy = dlopen_private_copy(file, opened, why);
        if (copy) {
          err = bind_lib(copy, opened, g_exact);
          g_exact.path = c;  // opened from /proc/self/fd/N
          g_exact.file = file;
          g_exact.private_copy = true;
        } else {
          g_exact.note = "already loaded with core " + core + " and a private copy failed (" + why + ")";
        }
      }
    } else {
      h = dlopen_pinned(c);
      if (!h) {
        const char* e = dlerror();
        errors += "\n  " + c + ": " + (e ? e : "not found");
        continue;
      }
      err = bind_lib(h, c, g_exact);
    }
    found = true;
    if (!err.empty()) {
      g_exact_error = "exact BLAS mode: " + err + " (not a CBLAS library?); " + kInstall;
      return;
    }
    break;
  }
  if (!found) {
    g_exact_error = std::string("exact BLAS mode found no CBLAS library; ") + kInstall +
                    " (or name a library with REPLICATE_CBLAS)." + errors;
    return;
  }
  Cblas& b = g_exact;
  std::vector<std::string> why;
  if (!b.openblas_get_config) {
    why.push_back("it is not OpenBLAS (it has no openblas_get_config)");
  } else if (b.version() != kExactVersion) {
    why.push_back("its version is " + (b.version().empty() ? "unknown" : b.version()) + ", not " + kExactVersion);
  }
  if (b.openblas_get_config && lower(b.core()) != lower(kExactCore))
    why.push_back("its kernels are for core " + (b.core().empty() ? "unknown" : b.core()) + ", not " + kExactCore +
                  (b.note.empty() ? "" : " (" + b.note + ")"));
  if (b.openblas_get_config && b.threads() != 1)
    why.push_back("it runs " + std::to_string(b.threads()) + " threads per call, not 1");
  if (why.empty()) {
    b.verified = true;
    return;
  }
  std::string reasons;
  for (size_t i = 0; i < why.size(); ++i) reasons += (i ? "; " : "") + why[i];
  if (env_on("REPLICATE_UNVERIFIED_BLAS")) {
    b.note = reasons;
    return;
  }
  g_exact_error = "exact BLAS mode reproduces Caffe 1.0's bits only with OpenBLAS " + std::string(kExactVersion) +
                  " running its " + kExactCore + " kernels on 1 thread, and " + b.path + " (" + b.file + ") is " +
                  describe(b) + ": " + reasons + ". To fix: " + kInstall +
                  (std::getenv("REPLICATE_CBLAS") ? ", and unset REPLICATE_CBLAS" : "") +
                  "; or use --blas fast (no bit promise); or set REPLICATE_UNVERIFIED_BLAS=1 to run exact mode on "
                  "this library anyway (logged as unverified).";
}

const Cblas& exact_cblas() {
  std::call_once(g_exact_once, load_exact);
  TORCH_CHECK(g_exact_error.empty(), g_exact_error);
  return g_exact;
}

// Fast mode's library: exact mode's when that was loaded first (this process then has the Haswell
// kernels), else the CBLAS opened as is, so OpenBLAS picks its kernels for this CPU (unless the
// user's OPENBLAS_CORETYPE pins them).
void load_fast() {
  {
    std::lock_guard<std::mutex> lock(g_load_mu);
    if (g_exact.handle && g_exact_error.empty()) {
      g_fast = &g_exact;
      return;
    }
    std::string errors;
    for (const auto& c : candidates()) {
      void* h = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (!h) {
        const char* e = dlerror();
        errors += "\n  " + c + ": " + (e ? e : "not found");
        continue;
      }
      std::string err = bind_lib(h, c, g_fast_own);
      if (!err.empty()) {
        g_fast_error = err;
        return;
      }
      g_fast = &g_fast_own;
      return;
    }
    g_fast_error = "no CBLAS library:" + errors;
  }
}

inline bool exact() { return g_mode.load(std::memory_order_relaxed) == static_cast<int>(Mode::Exact); }

// Fast mode's GEMMs: the system CBLAS when it loads (OpenBLAS picks its best kernels for the CPU
// unless OPENBLAS_CORETYPE pins them; MKL, torch's matmul here, takes its AVX2 path on AMD cores),
// else torch's matmul.  REPLICATE_FAST_GEMM=torch forces torch's matmul.
bool fast_cblas() {
  static const bool use = [] {
    const char* env = std::getenv("REPLICATE_FAST_GEMM");
    if (env && std::string(env) == "torch") return false;
    std::call_once(g_fast_once, load_fast);
    return g_fast != nullptr;
  }();
  return use;
}
const Cblas& fast_lib() { return *g_fast; }  // after fast_cblas() returned true

inline int cb(Op t) { return t == NoTrans ? kNoTrans : kTrans; }

template <typename T>
at::Tensor wrap(const T* p, at::IntArrayRef sizes) {
  return at::from_blob(const_cast<T*>(p), sizes, at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value));
}

}  // namespace

Mode mode() { return static_cast<Mode>(g_mode.load()); }

void set_mode(Mode m) {
  if (m == Mode::Exact) exact_cblas();  // fail now, with the library named, rather than mid-layer
  g_mode.store(static_cast<int>(m));
}

std::string library_path() { return g_exact.handle ? g_exact.path : std::string(); }

namespace {
thread_local bool t_caffe_order = false;
}  // namespace

bool caffe_order() { return t_caffe_order || mode() == Mode::Exact; }

bool set_thread_caffe_order(bool wanted) {
  const bool prev = t_caffe_order;
  t_caffe_order = wanted;
  return prev;
}

namespace {
std::string info_of(const Cblas& b, const std::string& status) {
  std::string s = b.path + " | " + (b.openblas_get_config ? b.config() : std::string("not OpenBLAS"));
  if (b.openblas_get_corename) s += " | core=" + b.core();
  s += " | threads=" + std::to_string(b.threads()) + " | parallel=" + b.parallel() + " | file=" + b.file +
       " | copy=" + (b.private_copy ? "private" : "shared") + " | status=" + status;
  return s;
}
}  // namespace

std::string library_info() {
  if (exact()) {
    const Cblas& b = exact_cblas();
    return info_of(b, b.verified ? "verified" : "unverified: " + b.note);
  }
  if (fast_cblas()) return info_of(fast_lib(), "fast");
  const char* env = std::getenv("REPLICATE_FAST_GEMM");
  return std::string("torch | at::addmm | status=fast: ") +
         (env && std::string(env) == "torch" ? "REPLICATE_FAST_GEMM=torch" : "no CBLAS loaded (" + g_fast_error + ")");
}

template <typename T>
void gemm(Op ta, Op tb, int M, int N, int K, T alpha, const T* A, const T* B, T beta, T* C) {
  // caffe_cpu_gemm: lda = (TransA == NoTrans) ? K : M, ldb = (TransB == NoTrans) ? N : K, ldc = N.
  gemm_ld<T>(ta, tb, M, N, K, alpha, A, (ta == NoTrans) ? K : M, B, (tb == NoTrans) ? N : K, beta, C, N);
}

template <typename T>
void gemm_ld(Op ta, Op tb, int M, int N, int K, T alpha, const T* A, int lda, const T* B, int ldb, T beta, T* C,
             int ldc) {
  if (!exact() && fast_cblas() && !at::in_parallel_region() && double(M) * N * K >= 1e7) {
    // fast mode, one big product from the calling thread (inner product): split the larger of the
    // rows/columns of C into fixed blocks of 16 over the threads, each a single-threaded CBLAS call
    // (fixed blocks: the bits do not depend on the thread count)
    const Cblas& b = fast_lib();
    const bool by_rows = M >= N;
    const int64_t len = by_rows ? M : N;
    at::parallel_for(0, (len + 15) / 16, 1, [&](int64_t b0, int64_t b1) {
      const int lo = static_cast<int>(b0 * 16), hi = static_cast<int>(std::min<int64_t>(b1 * 16, len));
      const int m = by_rows ? hi - lo : M, n = by_rows ? N : hi - lo;
      const T* a = by_rows ? (ta == NoTrans ? A + int64_t(lo) * lda : A + lo) : A;
      const T* bb = by_rows ? B : (tb == NoTrans ? B + lo : B + int64_t(lo) * ldb);
      T* c = by_rows ? C + int64_t(lo) * ldc : C + lo;
      if constexpr (std::is_same_v<T, float>)
        b.sgemm(kRowMajor, cb(ta), cb(tb), m, n, K, alpha, a, lda, bb, ldb, beta, c, ldc);
      else
        b.dgemm(kRowMajor, cb(ta), cb(tb), m, n, K, alpha, a, lda, bb, ldb, beta, c, ldc);
    });
    return;
  }
  if (exact() || fast_cblas()) {
    const Cblas& b = exact() ? exact_cblas() : fast_lib();
    if constexpr (std::is_same_v<T, float>)
      b.sgemm(kRowMajor, cb(ta), cb(tb), M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    else
      b.dgemm(kRowMajor, cb(ta), cb(tb), M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  if (M == 0 || N == 0) return;
  const auto opts = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
  auto view = [&](const T* p, int64_t r, int64_t cols, int64_t ld) {
    return at::from_blob(const_cast<T*>(p), {r, cols}, {ld, 1}, opts);
  };
  at::Tensor a = ta == NoTrans ? view(A, M, K, lda) : view(A, K, M, lda).t();
  at::Tensor bm = tb == NoTrans ? view(B, K, N, ldb) : view(B, N, K, ldb).t();
  at::Tensor c = view(C, M, N, ldc);
  if (ldc == N) {
    at::addmm_out(c, c, a, bm, beta, alpha);  // beta == 0 ignores C, as BLAS does
  } else {
    at::Tensor r = beta == T(0) ? at::mm(a, bm).mul_(alpha) : at::addmm(c, a, bm, beta, alpha);
    c.copy_(r);
  }
}

template <typename T>
void gemv(Op ta, int M, int N, T alpha, const T* A, const T* x, T beta, T* y) {
  if (exact() || fast_cblas()) {
    const Cblas& b = exact() ? exact_cblas() : fast_lib();
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
    const Cblas& b = exact_cblas();
    if constexpr (std::is_same_v<T, float>) b.saxpy(N, alpha, X, 1, Y, 1);
    else b.daxpy(N, alpha, X, 1, Y, 1);
    return;
  }
  fast_axpy<T>(N, alpha, X, Y);
}

template <typename T>
void scal(int N, T alpha, T* X) {
  if (exact()) {
    const Cblas& b = exact_cblas();
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
    const Cblas& b = exact_cblas();
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
    const Cblas& b = exact_cblas();
    if constexpr (std::is_same_v<T, float>) return b.sasum(N, X, 1);
    else return b.dasum(N, X, 1);
  }
  T s = 0;
  for (int i = 0; i < N; ++i) s += std::abs(X[i]);
  return s;
}

#define REPLICATE_INSTANTIATE(T)                                                           \
  template void gemm<T>(Op, Op, int, int, int, T, const T*, const T*, T, T*);        \
  template void gemm_ld<T>(Op, Op, int, int, int, T, const T*, int, const T*, int, T, T*, int); \
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
