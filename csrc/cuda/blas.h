// The GPU half of the BLAS seam (the CPU half is csrc/blas.*): Caffe's caffe_gpu_gemm,
// caffe_gpu_gemv, caffe_gpu_asum, caffe_gpu_scal, caffe_gpu_axpy and caffe_gpu_dot with their
// arguments (row-major, as the CPU seam).  exact: the cuBLAS routine Caffe calls with Caffe's
// arguments (operands swapped for cuBLAS's column-major order), TF32 off; fast: torch's matmul
// on views of the same memory, TF32 off too (axpy: our unfused kernel, see blas.cpp).  The mode is the one selected for the CPU seam (replicate::blas::mode()).  CUDA
// builds only; pointers are device pointers on the current device, work on the current stream.
#pragma once
#include "../blas.h"

namespace replicate {
namespace cuda_blas {

using blas::Op;

// C = alpha * op(A) * op(B) + beta * C; op(A) MxK, op(B) KxN, C MxN, all row-major.
template <typename T>
void gemm(Op ta, Op tb, int M, int N, int K, T alpha, const T* A, const T* B, T beta, T* C);
// y = alpha * op(A) * x + beta * y; A MxN row-major.
template <typename T>
void gemv(Op ta, int M, int N, T alpha, const T* A, const T* x, T beta, T* y);
// sum |x_i|, returned to the host (synchronises, as Caffe's does).
template <typename T>
T asum(int n, const T* x);
// x = alpha * x.
template <typename T>
void scal(int n, T alpha, T* x);
// y = alpha * x + y.
template <typename T>
void axpy(int n, T alpha, const T* x, T* y);
// sum x_i * y_i, returned to the host (synchronises, as Caffe's does).
template <typename T>
T dot(int n, const T* x, const T* y);

}  // namespace cuda_blas
}  // namespace replicate
