// Softmax, SoftmaxWithLoss and Accuracy as Caffe 1.0's GPU kernels.  Each channel reduction is a
// sequential loop per (outer, inner) position (max from -FLT_MAX, sum and dot from 0, channels
// ascending) and exp is CUDA's expf: within a few ulps of the CPU op, whose sums go through BLAS
// (gemv / dot) and whose exp is the C library's.  The loss and accuracy sums over positions are
// done by the glue (cuBLAS asum in exact mode, as Caffe).
#include <cfloat>
#include <cmath>

#include "launch.cuh"
#include "softmax.cuh"

namespace replicate {
namespace cuda {
namespace {

template <typename T>
__global__ void channel_max_kernel(int64_t n, Split s, const T* data, T* out) {
  REPLICATE_KERNEL_LOOP(index, n) {
    const int64_t o = index / s.inner, i = index % s.inner;
    T m = T(-FLT_MAX);
    for (int64_t c = 0; c < s.channels; ++c) m = max(data[(o * s.channels + c) * s.inner + i], m);
    out[index] = m;
  }
}

template <typename T>
__global__ void channel_subtract_kernel(int64_t n, Split s, const T* per_pos, T* data) {
  REPLICATE_KERNEL_LOOP(index, n) {
    const int64_t o = index / s.channels / s.inner, i = index % s.inner;
    data[index] -= per_pos[o * s.inner + i];
  }
}

template <typename T>
__global__ void exp_kernel(int64_t n, T* data) {
  REPLICATE_KERNEL_LOOP(index, n) data[index] = exp(data[index]);  // expf for float
}

template <typename T>
__global__ void channel_sum_kernel(int64_t n, Split s, const T* data, T* out) {
  REPLICATE_KERNEL_LOOP(index, n) {
    const int64_t o = index / s.inner, i = index % s.inner;
    T sum = 0;
    for (int64_t c = 0; c < s.channels; ++c) sum += data[(o * s.channels + c) * s.inner + i];
    out[index] = sum;
  }
}

template <typename T>
__global__ void channel_div_kernel(int64_t n, Split s, const T* per_pos, T* data) {
  REPLICATE_KERNEL_LOOP(index, n) {
    const int64_t o = index / s.channels / s.inner, i = index % s.inner;
    data[index] /= per_pos[o * s.inner + i];
  }
}

template <typename T>
__global__ void channel_dot_kernel(int64_t n, Split s, const T* a, const T* b, T* out) {
  REPLICATE_KERNEL_LOOP(index, n) {
    const int64_t o = index / s.inner, i = index % s.inner;
    T dot = 0;
    for (int64_t c = 0; c < s.channels; ++c) {
      const int64_t k = (o * s.channels + c) * s.inner + i;
      dot += a[k] * b[k];
    }
    out[index] = dot;
  }
}

template <typename T>
__global__ void copy_kernel(int64_t n, const T* a, T* out) {
  REPLICATE_KERNEL_LOOP(i, n) out[i] = a[i];
}

template <typename T>
__global__ void mul_inplace_kernel(int64_t n, const T* a, T* out) {
  REPLICATE_KERNEL_LOOP(i, n) out[i] = out[i] * a[i];
}

__device__ bool label_ok(int label, int64_t channels, int32_t* bad_label) {
  if (label >= 0 && label < channels) return true;
  *bad_label = 1;
  return false;
}

template <typename T>
__global__ void loss_forward_kernel(int64_t n, const T* prob, const int32_t* label, Split s, bool has_ignore,
                                    int ignore_label, T* loss, T* counts, int32_t* bad_label) {
  REPLICATE_KERNEL_LOOP(index, n) {
    const int64_t o = index / s.inner, i = index % s.inner;
    const int l = label[index];
    if ((has_ignore && l == ignore_label) || !label_ok(l, s.channels, bad_label)) {
      loss[index] = 0;
      counts[index] = 0;
    } else {
      loss[index] = -log(max(prob[(o * s.channels + l) * s.inner + i], T(FLT_MIN)));
      counts[index] = 1;
    }
  }
}

template <typename T>
__global__ void loss_backward_kernel(int64_t n, const int32_t* label, Split s, bool has_ignore, int ignore_label,
                                     T* bottom_diff, T* counts, int32_t* bad_label) {
  REPLICATE_KERNEL_LOOP(index, n) {
    const int64_t o = index / s.inner, i = index % s.inner;
    const int l = label[index];
    if (has_ignore && l == ignore_label) {
      for (int64_t c = 0; c < s.channels; ++c) bottom_diff[(o * s.channels + c) * s.inner + i] = 0;
      counts[index] = 0;
    } else if (label_ok(l, s.channels, bad_label)) {
      bottom_diff[(o * s.channels + l) * s.inner + i] -= 1;
      counts[index] = 1;
    } else {
      counts[index] = 0;
    }
  }
}

template <typename T>
__global__ void accuracy_kernel(int64_t n, const T* in, const int32_t* label, Split s, int top_k, bool has_ignore,
                                int ignore_label, T* acc, T* counts, int32_t* bad_label) {
  REPLICATE_KERNEL_LOOP(index, n) {
    const int64_t o = index / s.inner, i = index % s.inner;
    const int l = label[index];
    if ((has_ignore && l == ignore_label) || !label_ok(l, s.channels, bad_label)) {
      acc[index] = 0;
      counts[index] = 0;
      continue;
    }
    const T truth = in[(o * s.channels + l) * s.inner + i];
    int better = -1;  // the true class counts itself
    for (int64_t c = 0; c < s.channels && better < top_k; ++c)
      better += (in[(o * s.channels + c) * s.inner + i] >= truth);
    acc[index] = better < top_k;
    counts[index] = 1;
  }
}

}  // namespace

#define REPLICATE_LAUNCH(kernel, n, ...)                                              \
  do {                                                                                \
    if ((n) > 0) kernel<<<launch_blocks(n), kThreads, 0, stream>>>((n), __VA_ARGS__); \
    const cudaError_t e_ = cudaGetLastError();                                        \
    if (e_ != cudaSuccess) return e_;                                                 \
  } while (0)

template <typename T>
cudaError_t softmax_forward(const T* in, const Split& s, T* out, T* scratch, cudaStream_t stream) {
  const int64_t count = s.outer * s.channels * s.inner, pos = s.outer * s.inner;
  REPLICATE_LAUNCH(copy_kernel<T>, count, in, out);
  REPLICATE_LAUNCH(channel_max_kernel<T>, pos, s, out, scratch);
  REPLICATE_LAUNCH(channel_subtract_kernel<T>, count, s, scratch, out);
  REPLICATE_LAUNCH(exp_kernel<T>, count, out);
  REPLICATE_LAUNCH(channel_sum_kernel<T>, pos, s, out, scratch);
  REPLICATE_LAUNCH(channel_div_kernel<T>, count, s, scratch, out);
  return cudaSuccess;
}

template <typename T>
cudaError_t softmax_backward(const T* top_diff, const T* top, const Split& s, T* bottom_diff, T* scratch,
                             cudaStream_t stream) {
  const int64_t count = s.outer * s.channels * s.inner, pos = s.outer * s.inner;
  REPLICATE_LAUNCH(copy_kernel<T>, count, top_diff, bottom_diff);
  REPLICATE_LAUNCH(channel_dot_kernel<T>, pos, s, top_diff, top, scratch);
  REPLICATE_LAUNCH(channel_subtract_kernel<T>, count, s, scratch, bottom_diff);
  REPLICATE_LAUNCH(mul_inplace_kernel<T>, count, top, bottom_diff);
  return cudaSuccess;
}

template <typename T>
cudaError_t softmax_loss_forward(const T* prob, const int32_t* label, const Split& s, bool has_ignore,
                                 int ignore_label, T* loss, T* counts, int32_t* bad_label, cudaStream_t stream) {
  const int64_t pos = s.outer * s.inner;
  REPLICATE_LAUNCH(loss_forward_kernel<T>, pos, prob, label, s, has_ignore, ignore_label, loss, counts, bad_label);
  return cudaSuccess;
}

template <typename T>
cudaError_t softmax_loss_backward(const int32_t* label, const Split& s, bool has_ignore, int ignore_label,
                                  T* bottom_diff, T* counts, int32_t* bad_label, cudaStream_t stream) {
  const int64_t pos = s.outer * s.inner;
  REPLICATE_LAUNCH(loss_backward_kernel<T>, pos, label, s, has_ignore, ignore_label, bottom_diff, counts,
                   bad_label);
  return cudaSuccess;
}

template <typename T>
cudaError_t accuracy_forward(const T* in, const int32_t* label, const Split& s, int top_k, bool has_ignore,
                             int ignore_label, T* acc, T* counts, int32_t* bad_label, cudaStream_t stream) {
  const int64_t pos = s.outer * s.inner;
  REPLICATE_LAUNCH(accuracy_kernel<T>, pos, in, label, s, top_k, has_ignore, ignore_label, acc, counts, bad_label);
  return cudaSuccess;
}

#define REPLICATE_SOFTMAX_INSTANTIATE(T)                                                                        \
  template cudaError_t softmax_forward<T>(const T*, const Split&, T*, T*, cudaStream_t);                       \
  template cudaError_t softmax_backward<T>(const T*, const T*, const Split&, T*, T*, cudaStream_t);            \
  template cudaError_t softmax_loss_forward<T>(const T*, const int32_t*, const Split&, bool, int, T*, T*,      \
                                               int32_t*, cudaStream_t);                                        \
  template cudaError_t softmax_loss_backward<T>(const int32_t*, const Split&, bool, int, T*, T*, int32_t*,     \
                                                cudaStream_t);                                                 \
  template cudaError_t accuracy_forward<T>(const T*, const int32_t*, const Split&, int, bool, int, T*, T*,     \
                                           int32_t*, cudaStream_t);
REPLICATE_SOFTMAX_INSTANTIATE(float)
REPLICATE_SOFTMAX_INSTANTIATE(double)

}  // namespace cuda
}  // namespace replicate
