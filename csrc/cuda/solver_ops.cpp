// CUDA twins of csrc/cpu/solver_math.cpp, following Caffe 1.0's GPU path (CUDA builds only):
//   sgd_update: SGDSolver::Normalize (caffe_gpu_scal, 1/iter_size), Regularize (L2:
//               caffe_gpu_axpy(decay, w, diff); L1: caffe_gpu_sign into a temporary, then
//               caffe_gpu_axpy(decay, sign, diff)), ComputeUpdateValue (Caffe's fused SGDUpdate
//               kernel, g = h = momentum * h + local_rate * g) and Blob::Update
//               (caffe_gpu_axpy(-1, diff, w)), in that order, in place on one learnable blob.
//   blas_axpy / blas_scal / blas_dot: caffe_gpu_axpy, caffe_gpu_scal, caffe_gpu_dot.
// The BLAS steps go through the GPU seam (csrc/cuda/blas.*): exact mode makes Caffe's cuBLAS
// calls; fast mode uses our unfused axpy kernel, torch's mul_ and torch's dot.  The CPU op runs
// ComputeUpdateValue as scal + axpy (caffe_cpu_axpby); the GPU kernel's single expression gives
// the same bits as the CPU's fast mode (both products rounded, see solver_math.cu), and differs
// from an FMA-based CBLAS axpy by the rounding of one product (tests/cuda/test_cuda_ops.py).
#include "blas.h"
#include "glue.h"
#include "solver_math.cuh"

namespace replicate {
namespace cuda_glue {
namespace {

void sgd_update(at::Tensor& data, at::Tensor& diff, at::Tensor& history, double local_rate, double momentum,
                double local_decay, int64_t regularization, double diff_scale) {
  const char* op = "sgd_update";
  check_inplace(op, "data", data, c10::DeviceType::CUDA);
  check_inplace_like(op, "diff", diff, data);
  check_inplace_like(op, "history", history, data);
  TORCH_CHECK(regularization == 0 || regularization == 1, op,
              ": regularization must be 0 (L2) or 1 (L1), got ", regularization);
  const c10::cuda::CUDAGuard guard(data.device());
  const int n = static_cast<int>(data.numel());
  AT_DISPATCH_FLOATING_TYPES(data.scalar_type(), "replicate_cuda", [&] {
    using T = scalar_t;
    T* w = data.data_ptr<T>();
    T* g = diff.data_ptr<T>();
    T* h = history.data_ptr<T>();
    const T scale = static_cast<T>(diff_scale);
    if (scale != T(1)) cuda_blas::scal<T>(n, scale, g);
    const T decay = static_cast<T>(local_decay);
    if (decay != T(0)) {
      if (regularization == 0) {
        cuda_blas::axpy<T>(n, decay, w, g);
      } else {
        at::Tensor sign = at::empty_like(data);  // SGDSolver's temp_ blob
        REPLICATE_CUDA_OK(cuda::sign<T>(n, w, sign.data_ptr<T>(), stream()));
        cuda_blas::axpy<T>(n, decay, sign.data_ptr<T>(), g);
      }
    }
    REPLICATE_CUDA_OK(cuda::sgd_update_value<T>(n, g, h, static_cast<T>(momentum), static_cast<T>(local_rate),
                                                stream()));
    cuda_blas::axpy<T>(n, T(-1), g, w);
  });
}

void blas_axpy(double alpha, const at::Tensor& x, at::Tensor& y) {
  const char* op = "blas_axpy";
  check_inplace(op, "y", y, c10::DeviceType::CUDA);
  check_like(op, "x", x, y, y.sizes(), -1, "the shape of y");
  const c10::cuda::CUDAGuard guard(y.device());
  const at::Tensor xc = x.contiguous();
  AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "replicate_cuda", [&] {
    using T = scalar_t;
    cuda_blas::axpy<T>(static_cast<int>(y.numel()), static_cast<T>(alpha), xc.data_ptr<T>(), y.data_ptr<T>());
  });
}

void blas_scal(double alpha, at::Tensor& x) {
  const char* op = "blas_scal";
  check_inplace(op, "x", x, c10::DeviceType::CUDA);
  const c10::cuda::CUDAGuard guard(x.device());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "replicate_cuda", [&] {
    using T = scalar_t;
    cuda_blas::scal<T>(static_cast<int>(x.numel()), static_cast<T>(alpha), x.data_ptr<T>());
  });
}

// caffe_gpu_dot returns its sum to the host; the op hands it back as a 0-dim tensor on x's device.
at::Tensor blas_dot(const at::Tensor& x, const at::Tensor& y) {
  const char* op = "blas_dot";
  check_cuda(op, "x", x);
  check_like(op, "y", y, x, x.sizes(), -1, "the shape of x");
  TORCH_CHECK(x.numel() <= INT32_MAX, op, ": more elements than Caffe's int count");
  const c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor xc = x.contiguous(), yc = y.contiguous();
  at::Tensor out = at::empty({}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "replicate_cuda", [&] {
    using T = scalar_t;
    out.fill_(cuda_blas::dot<T>(static_cast<int>(x.numel()), xc.data_ptr<T>(), yc.data_ptr<T>()));
  });
  return out;
}

}  // namespace
}  // namespace cuda_glue

TORCH_LIBRARY_IMPL(replicate, CUDA, m) {
  m.impl("sgd_update", &cuda_glue::sgd_update);
  m.impl("blas_axpy", &cuda_glue::blas_axpy);
  m.impl("blas_scal", &cuda_glue::blas_scal);
  m.impl("blas_dot", &cuda_glue::blas_dot);
}

}  // namespace replicate
