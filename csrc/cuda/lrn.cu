// LRN as Caffe 1.0's LRNLayer GPU path.  ACROSS_CHANNELS: LRNFillScale, LRNComputeOutput and
// LRNComputeDiff, whose per-pixel running sums add and subtract in a different order than the
// CPU path's axpy rows, and whose pow is CUDA's powf: results are within a few ulps of the CPU
// op, not bit-identical (as in Caffe).  WITHIN_CHANNEL: the elementwise kernels of Caffe's
// composition (Power, Eltwise PROD, Split) used by csrc/cuda/glue.cpp with the AVE pooling kernels.
// Built with --fmad=false: every product is rounded on its own, as the source says.
#include <cmath>

#include "launch.cuh"
#include "lrn.cuh"

namespace replicate {
namespace cuda {
namespace {

template <typename T>
__device__ T caffe_pow(T x, T y) { return pow(x, y); }  // powf for float, pow for double

template <typename T>
__global__ void fill_scale_kernel(int64_t n, const T* in, int64_t channels, int64_t hw, int size,
                                  T alpha_over_size, T k, T* scale) {
  REPLICATE_KERNEL_LOOP(index, n) {
    const int64_t p = index % hw, img = index / hw;
    const int64_t offset = img * channels * hw + p;
    const T* x = in + offset;
    T* s = scale + offset;
    const int pre_pad = (size - 1) / 2, post_pad = size - pre_pad - 1;
    T accum = 0;
    int head = 0;
    while (head < post_pad && head < channels) {
      accum += x[head * hw] * x[head * hw];
      ++head;
    }
    while (head < channels) {
      accum += x[head * hw] * x[head * hw];
      if (head - size >= 0) accum -= x[(head - size) * hw] * x[(head - size) * hw];
      s[(head - post_pad) * hw] = k + accum * alpha_over_size;
      ++head;
    }
    while (head < channels + post_pad) {
      if (head - size >= 0) accum -= x[(head - size) * hw] * x[(head - size) * hw];
      s[(head - post_pad) * hw] = k + accum * alpha_over_size;
      ++head;
    }
  }
}

template <typename T>
__global__ void compute_output_kernel(int64_t n, const T* in, const T* scale, T negative_beta, T* out, T* power) {
  REPLICATE_KERNEL_LOOP(index, n) {
    const T p = caffe_pow(scale[index], negative_beta);
    power[index] = p;
    out[index] = in[index] * p;
  }
}

template <typename T>
__global__ void compute_diff_kernel(int64_t n, const T* bottom, const T* top, const T* scale, const T* power,
                                    const T* top_diff, int64_t channels, int64_t hw, int size, T cache_ratio,
                                    T* bottom_diff) {
  REPLICATE_KERNEL_LOOP(index, n) {
    const int64_t p = index % hw, img = index / hw;
    const int64_t offset = img * channels * hw + p;
    const T *b = bottom + offset, *t = top + offset, *s = scale + offset, *pw = power + offset,
            *td = top_diff + offset;
    T* bd = bottom_diff + offset;
    const int pre_pad = size - (size + 1) / 2, post_pad = size - pre_pad - 1;
    T accum = 0;
    int head = 0;
    while (head < post_pad && head < channels) {
      accum += td[head * hw] * t[head * hw] / s[head * hw];
      ++head;
    }
    while (head < channels) {
      accum += td[head * hw] * t[head * hw] / s[head * hw];
      if (head - size >= 0) accum -= td[(head - size) * hw] * t[(head - size) * hw] / s[(head - size) * hw];
      const int64_t c = (head - post_pad) * hw;
      bd[c] = td[c] * pw[c] - cache_ratio * b[c] * accum;
      ++head;
    }
    while (head < channels + post_pad) {
      if (head - size >= 0) accum -= td[(head - size) * hw] * t[(head - size) * hw] / s[(head - size) * hw];
      const int64_t c = (head - post_pad) * hw;
      bd[c] = td[c] * pw[c] - cache_ratio * b[c] * accum;
      ++head;
    }
  }
}

template <typename T>
__global__ void power_forward_kernel(int64_t n, const T* x, T power, T scale, T shift, T* y) {
  const T diff_scale = power * scale;
  REPLICATE_KERNEL_LOOP(i, n) {
    if (diff_scale == T(0)) {
      y[i] = power == T(0) ? T(1) : caffe_pow(shift, power);
      continue;
    }
    T v = x[i];
    if (scale != T(1)) v = v * scale;  // caffe_gpu_scal
    if (shift != T(0)) v += shift;     // caffe_gpu_add_scalar
    if (power != T(1)) v = caffe_pow(v, power);  // caffe_gpu_powx
    y[i] = v;
  }
}

template <typename T>
__global__ void power_backward_kernel(int64_t n, const T* x, const T* y, const T* top_diff, T power, T scale,
                                      T shift, T* bottom_diff) {
  const T diff_scale = power * scale;
  REPLICATE_KERNEL_LOOP(i, n) {
    T d;
    if (diff_scale == T(0) || power == T(1)) {
      d = diff_scale;
    } else if (power == T(2)) {
      // caffe_gpu_axpby(diff_scale * scale, x, 0, d): scal by 0 then axpy onto zero
      d = T(0) + (diff_scale * scale) * x[i];
      if (shift != T(0)) d += diff_scale * shift;
    } else if (shift == T(0)) {
      d = y[i] / x[i];
      d = d * power;
    } else {
      d = x[i];
      if (scale != T(1)) d = d * scale;
      if (shift != T(0)) d += shift;
      d = y[i] / d;
      if (diff_scale != T(1)) d = d * diff_scale;
    }
    bottom_diff[i] = top_diff[i] * d;
  }
}

template <typename T>
__global__ void mul_kernel(int64_t n, const T* a, const T* b, T* out) {
  REPLICATE_KERNEL_LOOP(i, n) out[i] = a[i] * b[i];
}

template <typename T>
__global__ void add_kernel(int64_t n, const T* a, const T* b, T* out) {
  REPLICATE_KERNEL_LOOP(i, n) out[i] = a[i] + b[i];
}

}  // namespace

template <typename T>
cudaError_t lrn_across_forward(const T* in, int64_t num, int64_t channels, int64_t hw, int64_t size, T alpha,
                               T beta, T k, T* out, T* scale, T* scale_power, cudaStream_t stream) {
  const int64_t pixels = num * hw, count = num * channels * hw;
  if (count == 0) return cudaSuccess;
  const T alpha_over_size = alpha / static_cast<int>(size);
  fill_scale_kernel<T><<<launch_blocks(pixels), kThreads, 0, stream>>>(pixels, in, channels, hw,
                                                                        static_cast<int>(size), alpha_over_size, k,
                                                                        scale);
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  compute_output_kernel<T><<<launch_blocks(count), kThreads, 0, stream>>>(count, in, scale, -beta, out, scale_power);
  return cudaGetLastError();
}

template <typename T>
cudaError_t lrn_across_backward(const T* top_diff, const T* bottom, const T* top, const T* scale,
                                const T* scale_power, int64_t num, int64_t channels, int64_t hw, int64_t size,
                                T alpha, T beta, T* bottom_diff, cudaStream_t stream) {
  const int64_t pixels = num * hw;
  if (pixels == 0 || channels == 0) return cudaSuccess;
  const T cache_ratio = static_cast<T>(2. * alpha * beta / static_cast<int>(size));
  compute_diff_kernel<T><<<launch_blocks(pixels), kThreads, 0, stream>>>(
      pixels, bottom, top, scale, scale_power, top_diff, channels, hw, static_cast<int>(size), cache_ratio,
      bottom_diff);
  return cudaGetLastError();
}

template <typename T>
cudaError_t power_forward(const T* x, int64_t n, T power, T scale, T shift, T* y, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  power_forward_kernel<T><<<launch_blocks(n), kThreads, 0, stream>>>(n, x, power, scale, shift, y);
  return cudaGetLastError();
}

template <typename T>
cudaError_t power_backward(const T* x, const T* y, const T* top_diff, int64_t n, T power, T scale, T shift,
                           T* bottom_diff, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  power_backward_kernel<T><<<launch_blocks(n), kThreads, 0, stream>>>(n, x, y, top_diff, power, scale, shift,
                                                                       bottom_diff);
  return cudaGetLastError();
}

template <typename T>
cudaError_t mul(const T* a, const T* b, int64_t n, T* out, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  mul_kernel<T><<<launch_blocks(n), kThreads, 0, stream>>>(n, a, b, out);
  return cudaGetLastError();
}

template <typename T>
cudaError_t add(const T* a, const T* b, int64_t n, T* out, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  add_kernel<T><<<launch_blocks(n), kThreads, 0, stream>>>(n, a, b, out);
  return cudaGetLastError();
}

#define REPLICATE_LRN_INSTANTIATE(T)                                                                         \
  template cudaError_t lrn_across_forward<T>(const T*, int64_t, int64_t, int64_t, int64_t, T, T, T, T*, T*, \
                                             T*, cudaStream_t);                                              \
  template cudaError_t lrn_across_backward<T>(const T*, const T*, const T*, const T*, const T*, int64_t,    \
                                              int64_t, int64_t, int64_t, T, T, T*, cudaStream_t);            \
  template cudaError_t power_forward<T>(const T*, int64_t, T, T, T, T*, cudaStream_t);                      \
  template cudaError_t power_backward<T>(const T*, const T*, const T*, int64_t, T, T, T, T*, cudaStream_t); \
  template cudaError_t mul<T>(const T*, const T*, int64_t, T*, cudaStream_t);                                \
  template cudaError_t add<T>(const T*, const T*, int64_t, T*, cudaStream_t);
REPLICATE_LRN_INSTANTIATE(float)
REPLICATE_LRN_INSTANTIATE(double)

}  // namespace cuda
}  // namespace replicate
