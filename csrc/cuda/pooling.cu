// Caffe 1.0's MaxPoolForward / AvePoolForward / AvePoolBackward kernels, and MAX backward in the
// same per-cell order as its MaxPoolBackward (see below).  Forward: one thread per output; MAX
// starts at -FLT_MAX and keeps the first maximum (strict >) in row-major window order, AVE
// divides by the window clipped to the padded image.  AVE backward: one thread per input cell
// sums the covering windows' diffs in ascending output order, the order in which Caffe's CPU
// code scatters them, so both backends give the same bits.
#include <cfloat>

#include "../geom.h"
#include "launch.cuh"
#include "pooling.cuh"

namespace replicate {
namespace cuda {
namespace {

template <typename T>
__global__ void max_forward_kernel(int64_t n, const T* in, PoolShape g, T* out, int32_t* mask) {
  REPLICATE_KERNEL_LOOP(index, n) {
    const int64_t pw = index % g.pooled_w, ph = (index / g.pooled_w) % g.pooled_h;
    const int64_t plane = index / (g.pooled_w * g.pooled_h);
    const geom::Span hs = geom::max_span(ph, g.height, g.kernel_h, g.stride_h, g.pad_h);
    const geom::Span ws = geom::max_span(pw, g.width, g.kernel_w, g.stride_w, g.pad_w);
    const T* slice = in + plane * g.height * g.width;
    T best = T(-FLT_MAX);
    int32_t arg = -1;
    for (int64_t h = hs.start; h < hs.end; ++h)
      for (int64_t w = ws.start; w < ws.end; ++w)
        if (slice[h * g.width + w] > best) {
          arg = static_cast<int32_t>(h * g.width + w);
          best = slice[arg];
        }
    out[index] = best;
    mask[index] = arg;
  }
}

// The op's schema gives the backward no window geometry (kernel, stride, pad), so Caffe's
// per-cell gather cannot be used.  One thread per plane scatters the diffs in ascending output
// order instead: every cell receives its terms in the order of Caffe's gather (and of the CPU
// op), from zero, so the bits are the same, without atomics.  Mask entries outside the plane
// are skipped (Caffe's kernel would never match them).
//
// Why the schema stays (decided without a GPU to measure): the gather would change no bit, only
// speed.  This kernel has planes = N * C threads (CaffeNet pool1 at batch 256: 24,576, i.e. 48
// blocks, so a third of an H100's SMs) each walking its own plane with uncoalesced accesses,
// where Caffe's kernel runs one coalesced thread per bottom cell.  A rough, unmeasured estimate
// from memory traffic and latency: about a millisecond per pool1 backward against a few tenths
// for the gather, a small part of a whole CaffeNet training step.  Adding kernel/stride/pad to pool_max_backward touches the schema, the
// CPU kernel, the fake and autograd in replicate/ops.py, the Pooling layer, the benches and
// the tests, for a gain nobody can measure yet.  If a GPU run (bench/gpu.py) shows this kernel
// matters, the low-risk path is optional trailing arguments
// (`int[2]? kernel=None, int[2]? stride=None, int[2]? pad=None`): existing callers keep working,
// the CPU op ignores them (after checking grad_output's pooled size), and this glue uses Caffe's
// gather when they are given and this scatter otherwise.
template <typename T>
__global__ void max_backward_kernel(int64_t planes, const T* top_diff, const int32_t* mask, int64_t in_plane,
                                    int64_t out_plane, T* bottom) {
  REPLICATE_KERNEL_LOOP(plane, planes) {
    T* b = bottom + plane * in_plane;
    for (int64_t i = 0; i < in_plane; ++i) b[i] = T(0);
    const T* t = top_diff + plane * out_plane;
    const int32_t* m = mask + plane * out_plane;
    for (int64_t i = 0; i < out_plane; ++i)
      if (m[i] >= 0 && m[i] < in_plane) b[m[i]] += t[i];
  }
}

template <typename T>
__global__ void ave_forward_kernel(int64_t n, const T* in, PoolShape g, T* out) {
  REPLICATE_KERNEL_LOOP(index, n) {
    const int64_t pw = index % g.pooled_w, ph = (index / g.pooled_w) % g.pooled_h;
    const int64_t plane = index / (g.pooled_w * g.pooled_h);
    const geom::Span hs = geom::ave_span(ph, g.height, g.kernel_h, g.stride_h, g.pad_h);
    const geom::Span ws = geom::ave_span(pw, g.width, g.kernel_w, g.stride_w, g.pad_w);
    const int pool_size = static_cast<int>(hs.padded_extent * ws.padded_extent);
    const T* slice = in + plane * g.height * g.width;
    T sum = 0;
    for (int64_t h = hs.start; h < hs.end; ++h)
      for (int64_t w = ws.start; w < ws.end; ++w) sum += slice[h * g.width + w];
    out[index] = sum / pool_size;
  }
}

template <typename T>
__global__ void ave_backward_kernel(int64_t n, const T* top_diff, PoolShape g, T* bottom) {
  REPLICATE_KERNEL_LOOP(index, n) {
    const int64_t w = index % g.width, h = (index / g.width) % g.height, plane = index / (g.width * g.height);
    int64_t ph0, ph1, pw0, pw1;
    geom::covering(h, g.kernel_h, g.stride_h, g.pad_h, g.pooled_h, ph0, ph1);
    geom::covering(w, g.kernel_w, g.stride_w, g.pad_w, g.pooled_w, pw0, pw1);
    const T* slice = top_diff + plane * g.pooled_h * g.pooled_w;
    T gradient = 0;
    for (int64_t ph = ph0; ph < ph1; ++ph)
      for (int64_t pw = pw0; pw < pw1; ++pw) {
        const int64_t hx = geom::ave_span(ph, g.height, g.kernel_h, g.stride_h, g.pad_h).padded_extent;
        const int64_t wx = geom::ave_span(pw, g.width, g.kernel_w, g.stride_w, g.pad_w).padded_extent;
        gradient += slice[ph * g.pooled_w + pw] / static_cast<int>(hx * wx);
      }
    bottom[index] = gradient;
  }
}

}  // namespace

template <typename T>
cudaError_t max_pool_forward(const T* in, const PoolShape& g, T* out, int32_t* mask, cudaStream_t stream) {
  const int64_t n = g.planes * g.pooled_h * g.pooled_w;
  if (n == 0) return cudaSuccess;
  max_forward_kernel<T><<<launch_blocks(n), kThreads, 0, stream>>>(n, in, g, out, mask);
  return cudaGetLastError();
}

template <typename T>
cudaError_t max_pool_backward(const T* top_diff, const int32_t* mask, int64_t planes, int64_t in_plane,
                              int64_t out_plane, T* bottom_diff, cudaStream_t stream) {
  if (planes == 0 || in_plane == 0) return cudaSuccess;
  max_backward_kernel<T><<<launch_blocks(planes), kThreads, 0, stream>>>(planes, top_diff, mask, in_plane, out_plane,
                                                                          bottom_diff);
  return cudaGetLastError();
}

template <typename T>
cudaError_t ave_pool_forward(const T* in, const PoolShape& g, T* out, cudaStream_t stream) {
  const int64_t n = g.planes * g.pooled_h * g.pooled_w;
  if (n == 0) return cudaSuccess;
  ave_forward_kernel<T><<<launch_blocks(n), kThreads, 0, stream>>>(n, in, g, out);
  return cudaGetLastError();
}

template <typename T>
cudaError_t ave_pool_backward(const T* top_diff, const PoolShape& g, T* bottom_diff, cudaStream_t stream) {
  const int64_t n = g.planes * g.height * g.width;
  if (n == 0) return cudaSuccess;
  ave_backward_kernel<T><<<launch_blocks(n), kThreads, 0, stream>>>(n, top_diff, g, bottom_diff);
  return cudaGetLastError();
}

#define REPLICATE_POOL_INSTANTIATE(T)                                                                      \
  template cudaError_t max_pool_forward<T>(const T*, const PoolShape&, T*, int32_t*, cudaStream_t);       \
  template cudaError_t max_pool_backward<T>(const T*, const int32_t*, int64_t, int64_t, int64_t, T*,        \
                                           cudaStream_t);                                               \
  template cudaError_t ave_pool_forward<T>(const T*, const PoolShape&, T*, cudaStream_t);                 \
  template cudaError_t ave_pool_backward<T>(const T*, const PoolShape&, T*, cudaStream_t);
REPLICATE_POOL_INSTANTIATE(float)
REPLICATE_POOL_INSTANTIATE(double)

}  // namespace cuda
}  // namespace replicate
