// The one seam through which every BLAS call of the kernels goes.
//
// The functions mirror Caffe's math wrappers (caffe_cpu_gemm, caffe_cpu_gemv,
// caffe_axpy, caffe_cpu_axpby, caffe_scal, caffe_cpu_strided_dot, ...) and take
// exactly their arguments.  Two backends:
//   exact: the same CBLAS routine Caffe calls, with Caffe's arguments (row-major,
//          leading dimensions as caffe_cpu_gemm derives them), from a system
//          CBLAS loaded at run time (env REPLICATE_CBLAS, default Debian's OpenBLAS).
//          The loader pins OpenBLAS's Haswell kernels and one thread (OPENBLAS_CORETYPE and
//          OPENBLAS_NUM_THREADS set in-process around dlopen; a private copy of the library when
//          this process already loaded it with other kernels) and then checks, with the
//          library's own openblas_get_config/corename/num_threads, that it is OpenBLAS 0.3.21 on
//          Haswell kernels with 1 thread: Caffe's golden bits.  Anything else is refused unless
//          REPLICATE_UNVERIFIED_BLAS=1 (then reported "unverified").
//   fast:  the system CBLAS with the kernels it picks for this CPU for gemm/gemv (torch's matmul
//          when none loads or REPLICATE_FAST_GEMM=torch) and plain loops for level-1 routines.
#pragma once
#include <cstdint>
#include <string>

namespace replicate {
namespace blas {

enum class Mode { Fast = 0, Exact = 1 };
Mode mode();
void set_mode(Mode m);             // Exact loads and checks the library now; errors name it
std::string library_path();        // exact mode's CBLAS ("" before exact mode is first used)
// The library the current mode computes with, as "path | config | core=C | threads=N | parallel=P |
// file=F | copy=shared|private | status=S" (status: verified, unverified: why, or fast), or
// "torch | at::addmm | status=fast: why" when fast mode's GEMMs are torch's.  May load the library.
std::string library_info();

// Kernel order, apart from the library.  Exact mode always computes in Caffe's order; fast mode
// may reorder a layer's sums (csrc/cpu/convolution.cpp: parameter diffs in blocks of images; the
// CUDA convolution: batched matmuls) unless the calling thread asked for Caffe's order, which a
// layer whose Caffe `engine` is CAFFE does around its op calls (replicate/layers/engine.py).  The
// library stays the mode's either way.  A kernel with a fast-mode order must branch on
// caffe_order(), not on mode(), so that `engine: CAFFE` reaches it.
bool caffe_order();                       // mode() == Exact, or this thread asked for Caffe's order
bool set_thread_caffe_order(bool wanted);  // this thread's request; returns the previous one

enum Op { NoTrans = 0, Trans = 1 };

// C = alpha * op(A) * op(B) + beta * C, row-major, op(A) MxK, op(B) KxN (caffe_cpu_gemm).
template <typename T>
void gemm(Op ta, Op tb, int M, int N, int K, T alpha, const T* A, const T* B, T beta, T* C);
// The same with explicit leading dimensions (row-major lda, ldb, ldc): for fast-mode kernels that
// multiply several images' columns at once; exact-mode kernels make Caffe's calls through gemm().
template <typename T>
void gemm_ld(Op ta, Op tb, int M, int N, int K, T alpha, const T* A, int lda, const T* B, int ldb, T beta, T* C,
             int ldc);
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
