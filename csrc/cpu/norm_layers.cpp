// Building blocks of Caffe 1.0's reduction and normalisation layers (Reduction, BatchNorm, Bias,
// Scale, MVN, Embed), CPU only.  The layers (replicate/layers/*.py) call these in Caffe's order:
//   blas_gemm / blas_gemv / blas_axpby: caffe_cpu_gemm, caffe_cpu_gemv, caffe_cpu_axpby with
//       Caffe's arguments (row-major, contiguous operands), in place on C / y, through the BLAS seam.
//   blas_asum: caffe_cpu_asum.
//   powx: caffe_powx, i.e. std::pow on Dtype (glibc's powf for float), element by element.
//   scale_chunks: caffe_cpu_scale (copy then BLAS scal) on each `inner`-element chunk of x with the
//       factor scale[chunk % scale.numel()] (ScaleLayer's forward and bottom backward loops).
#include <cmath>

#include "../blas.h"
#include "../common.h"

namespace replicate {
namespace cpu {
namespace {

void check_count(const char* op, const char* arg, const at::Tensor& t, int64_t want) {
  TORCH_CHECK(t.is_contiguous(), op, ": argument '", arg, "' must be contiguous");
  TORCH_CHECK(t.numel() == want, op, ": argument '", arg, "' has ", t.numel(), " elements; expected ", want);
}

void blas_gemm(int64_t ta, int64_t tb, int64_t M, int64_t N, int64_t K, double alpha, const at::Tensor& A,
               const at::Tensor& B, double beta, at::Tensor& C) {
  const char* op = "blas_gemm";
  check_inplace(op, "C", C, c10::DeviceType::CPU);
  check_tensor(op, "A", A, -1, "any shape", c10::DeviceType::CPU);
  check_tensor(op, "B", B, -1, "any shape", c10::DeviceType::CPU);
  check_same_dtype(op, "A", A, C);
  check_same_dtype(op, "B", B, C);
  check_count(op, "A", A, M * K);
  check_count(op, "B", B, K * N);
  check_count(op, "C", C, M * N);
  REPLICATE_DISPATCH(C.scalar_type(), op, [&] {
    using T = scalar_t;
    blas::gemm<T>(ta ? blas::Trans : blas::NoTrans, tb ? blas::Trans : blas::NoTrans, static_cast<int>(M),
                  static_cast<int>(N), static_cast<int>(K), static_cast<T>(alpha), A.data_ptr<T>(), B.data_ptr<T>(),
                  static_cast<T>(beta), C.data_ptr<T>());
  });
}

void blas_gemv(int64_t ta, int64_t M, int64_t N, double alpha, const at::Tensor& A, const at::Tensor& x, double beta,
               at::Tensor& y) {
  const char* op = "blas_gemv";
  check_inplace(op, "y", y, c10::DeviceType::CPU);
  check_tensor(op, "A", A, -1, "any shape", c10::DeviceType::CPU);
  check_tensor(op, "x", x, -1, "any shape", c10::DeviceType::CPU);
  check_same_dtype(op, "A", A, y);
  check_same_dtype(op, "x", x, y);
  check_count(op, "A", A, M * N);
  check_count(op, "x", x, ta ? M : N);
  check_count(op, "y", y, ta ? N : M);
  REPLICATE_DISPATCH(y.scalar_type(), op, [&] {
    using T = scalar_t;
    blas::gemv<T>(ta ? blas::Trans : blas::NoTrans, static_cast<int>(M), static_cast<int>(N), static_cast<T>(alpha),
                  A.data_ptr<T>(), x.data_ptr<T>(), static_cast<T>(beta), y.data_ptr<T>());
  });
}

void blas_axpby(double alpha, const at::Tensor& x, double beta, at::Tensor& y) {
  const char* op = "blas_axpby";
  check_inplace(op, "y", y, c10::DeviceType::CPU);
  check_tensor(op, "x", x, -1, "any shape", c10::DeviceType::CPU);
  check_same_dtype(op, "x", x, y);
  check_count(op, "x", x, y.numel());
  REPLICATE_DISPATCH(y.scalar_type(), op, [&] {
    using T = scalar_t;
    blas::axpby<T>(static_cast<int>(y.numel()), static_cast<T>(alpha), x.data_ptr<T>(), static_cast<T>(beta),
                   y.data_ptr<T>());
  });
}

at::Tensor blas_asum(const at::Tensor& x) {
  const char* op = "blas_asum";
  check_input(op, "x", x, -1, "any shape");
  TORCH_CHECK(x.numel() <= INT32_MAX, op, ": more elements than Caffe's int count");
  const at::Tensor xc = x.contiguous();
  at::Tensor out = at::empty({}, x.options());
  REPLICATE_DISPATCH(x.scalar_type(), op, [&] {
    using T = scalar_t;
    *out.data_ptr<T>() = blas::asum<T>(static_cast<int>(x.numel()), xc.data_ptr<T>());
  });
  return out;
}

at::Tensor powx(const at::Tensor& x, double p) {
  const char* op = "powx";
  check_input(op, "x", x, -1, "any shape");
  const at::Tensor xc = x.contiguous();
  at::Tensor out = at::empty_like(xc);
  REPLICATE_DISPATCH(x.scalar_type(), op, [&] {
    using T = scalar_t;
    const T e = caffe_param<T>(p);
    const T* in = xc.data_ptr<T>();
    T* o = out.data_ptr<T>();
    const int64_t n = xc.numel();
    at::parallel_for(0, n, 1 << 14, [&](int64_t b, int64_t end) {
      for (int64_t i = b; i < end; ++i) o[i] = std::pow(in[i], e);
    });
  });
  return out;
}

at::Tensor scale_chunks(const at::Tensor& x, const at::Tensor& scale, int64_t inner) {
  const char* op = "scale_chunks";
  check_input(op, "x", x, -1, "any shape");
  check_tensor(op, "scale", scale, -1, "any shape", c10::DeviceType::CPU);
  check_same_dtype(op, "scale", scale, x);
  const int64_t sd = scale.numel();
  TORCH_CHECK(inner > 0 && sd > 0 && x.numel() % (sd * inner) == 0, op, ": x has ", x.numel(),
              " elements, not a multiple of scale (", sd, ") x inner (", inner, ")");
  const at::Tensor xc = x.contiguous(), sc = scale.contiguous();
  at::Tensor out = at::empty_like(xc);
  REPLICATE_DISPATCH(x.scalar_type(), op, [&] {
    using T = scalar_t;
    const T* in = xc.data_ptr<T>();
    const T* s = sc.data_ptr<T>();
    T* o = out.data_ptr<T>();
    const int64_t chunks = xc.numel() / inner;
    for (int64_t c = 0; c < chunks; ++c) {
      std::copy_n(in + c * inner, inner, o + c * inner);
      blas::scal<T>(static_cast<int>(inner), s[c % sd], o + c * inner);
    }
  });
  return out;
}

}  // namespace
}  // namespace cpu

TORCH_LIBRARY_IMPL(replicate, CPU, m) {
  m.impl("blas_gemm", &cpu::blas_gemm);
  m.impl("blas_gemv", &cpu::blas_gemv);
  m.impl("blas_axpby", &cpu::blas_axpby);
  m.impl("blas_asum", &cpu::blas_asum);
  m.impl("powx", &cpu::powx);
  m.impl("scale_chunks", &cpu::scale_chunks);
}

}  // namespace replicate
