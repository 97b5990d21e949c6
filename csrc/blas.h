// The one seam through which every BLAS call of the kernels goes.
//
// The functions mirror Caffe's math wrappers (caffe_cpu_gemm, caffe_cpu_gemv,
// caffe_axpy, caffe_cpu_axpby, caffe_scal, caffe_cpu_strided_dot, ...) and take
// exactly their arguments.  Two backends:
//   exact: the same CBLAS routine Caffe calls, with Caffe's arguments (row-major,
//          leading dimensions as caffe_cpu_gemm derives them), from a system
//          CBLAS loaded at run time (env REPLICATE_CBLAS, default Debian's OpenBLAS);
//   fast:  torch's matmul for gemm/gemv and plain loops for the level-1 routines.
#pragma once
#include <cstdint>
#include <string>

namespace replicate {
namespace blas {

enum class Mode { Fast = 0, Exact = 1 };
Mode mode();
void set_mode(Mode m);             // Exact loads the library now; errors name it
std::string library_path();        // the CBLAS in use ("" before exact mode is first used)
std::string library_info();        // e.g. OpenBLAS's config and core name

enum Op { NoTrans = 0, Trans = 1 };

// C = alpha * op(A) * op(B) + beta * C, row-major, op(A) MxK, op(B) KxN (caffe_cpu_gemm).
template <typename T>
void gemm(Op ta, Op tb, int M, int N, int K, T alpha, const T* A, const T* B, T beta, T* C);
// y = alpha * op(A) * x + beta * y, A is MxN row-major (caffe_cpu_gemv).
template <typename T>
void gemv(Op ta, int M, int N, T alpha, const T* A, const T* x, T beta, T* y);
// Y = alpha * X + Y (caffe_axpy).
template <typename T>
void axpy(int N, T alpha, const T* X, T* Y);
// Y = alpha * X + beta * Y, as Caffe's non-MKL build does it: scal(beta) then axpy (caffe_cpu_axpby).
template <typename T>
void axpby(int N, T alpha, const T* X, T beta, T* Y);
// X = alpha * X (caffe_scal).
template <typename T>
void scal(int N, T alpha, T* X);
// Y = alpha * X via copy + scal (caffe_cpu_scale).
template <typename T>
void scale(int N, T alpha, const T* X, T* Y);
// caffe_cpu_strided_dot / caffe_cpu_dot.
template <typename T>
T strided_dot(int N, const T* X, int incx, const T* Y, int incy);
template <typename T>
T dot(int N, const T* X, const T* Y) { return strided_dot<T>(N, X, 1, Y, 1); }
// caffe_cpu_asum.
template <typename T>
T asum(int N, const T* X);

}  // namespace blas
}  // namespace replicate
