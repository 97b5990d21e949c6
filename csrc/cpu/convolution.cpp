// Convolution as Caffe 1.0's BaseConvolutionLayer (CPU): im2col + one GEMM per image and group,
// bias by a K=1 GEMM against ones; backward: bias diff by GEMV per image, weight diff by one GEMM
// per image accumulated with beta = 1 in image order, bottom diff by GEMM + col2im.
//
// In Caffe's order (exact mode, or a layer with engine CAFFE: blas::caffe_order()) every image
// makes exactly Caffe's calls.  Images whose results are independent (forward, bottom diff) run in
// parallel.  The parameter diffs accumulate over images sequentially, in Caffe's image order.
//
// Fast mode computes the same sums by faster means: parameter diffs per fixed block of 16 images,
// the block sums added in block order at the end; images with few output pixels (CaffeNet's
// conv3-5: 169) multiplied several at a time (their columns side by side, so one GEMM has enough
// columns to run near the machine's rate); the bias added while the output is in cache.  No bit
// promise there beyond the fast-mode tolerance.
//
// Fast mode in float32, where torch has oneDNN (and REPLICATE_CONV_ONEDNN is not 0), hands the
// whole convolution to torch's own CPU convolution (at::convolution / at::convolution_backward:
// oneDNN's direct kernels, no im2col), as Caffe's engine: CUDNN handed it to cuDNN on a GPU; the
// fused ReLU and the accumulation into the given diffs stay here.
//
// A ReLU working in place on the output (`relu_slope`; the net fuses it: replicate/net.py) is
// applied to each image's output right after it is made, and its backward (`relu_top`: the
// rectified output) multiplies each image's top diff before use: Caffe's ReLU expressions
// (relu.h), element by element, so in Caffe's order the bits equal the two layers run apart.
#include <algorithm>
#include <array>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <ATen/Context.h>
#include <ATen/ops/convolution.h>
#include <ATen/ops/convolution_backward.h>
#include <c10/core/GradMode.h>

#include "../blas.h"
#include "../common.h"
#include "../conv.h"
#include "conv_winograd.h"
#include "im2col.h"
#include "relu.h"

namespace replicate {
namespace cpu {
namespace {

Conv setup(const char* op, const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
           at::IntArrayRef pad, at::IntArrayRef dilation, int64_t group) {
  return conv_setup(op, input, weight, stride, pad, dilation, group, c10::DeviceType::CPU);
}

// The column matrix of one image: the image itself for a 1x1 convolution (Caffe skips im2col).
template <typename T>
const T* columns(const Conv& c, const T* x, std::vector<T>& col) {
  if (c.is_1x1) return x;
  col.resize(c.col_rows() * c.S);
  im2col(x, c.g, col.data());
  return col.data();
}

// Caffe's forward_cpu_gemm + forward_cpu_bias for one image.
template <typename T>
void forward_image(const Conv& c, const T* x, const T* w, const T* bias, const T* ones, T* top, std::vector<T>& col) {
  const int64_t M = c.M();
  const T* col_buff = columns(c, x, col);
  for (int64_t gi = 0; gi < c.group; ++gi)
    blas::gemm<T>(blas::NoTrans, blas::NoTrans, M, c.S, c.kernel_dim, T(1), w + gi * M * c.kernel_dim,
                  col_buff + gi * c.kernel_dim * c.S, T(0), top + gi * M * c.S);
  if (bias) blas::gemm<T>(blas::NoTrans, blas::NoTrans, c.out_channels, c.S, 1, T(1), bias, ones, T(1), top);
}

// Caffe's weight_cpu_gemm for one image, given its columns: accumulate into gw, group by group.
template <typename T>
void weight_gemms(const Conv& c, const T* t, const T* col_buff, T* gw) {
  const int64_t M = c.M();
  for (int64_t gi = 0; gi < c.group; ++gi)
    blas::gemm<T>(blas::NoTrans, blas::Trans, M, c.kernel_dim, c.S, T(1), t + gi * M * c.S,
                  col_buff + gi * c.kernel_dim * c.S, T(1), gw + gi * M * c.kernel_dim);
}

// Caffe's backward_cpu_bias and weight_cpu_gemm for one image: accumulate into gw / gb.
template <typename T>
void param_diff_image(const Conv& c, const T* x, const T* t, const T* ones, T* gw, T* gb, std::vector<T>& col) {
  if (gb) blas::gemv<T>(blas::NoTrans, c.out_channels, c.S, T(1), t, ones, T(1), gb);
  if (gw) weight_gemms(c, t, columns(c, x, col), gw);
}

// Caffe's weight_cpu_gemm over the batch when no bottom diff shares the work (CaffeNet's conv1):
// the GEMMs on this thread, image by image in Caffe's order (the same calls, the same bits), while a
// helper thread makes the next image's columns (im2col: data movement only, a fifth of conv1's
// backward).  Two column buffers, each reused once its GEMMs are done.
template <typename T>
void weight_diffs_pipelined(const Conv& c, const T* xd, const T* tdd, T* gwd) {
  const int64_t size = c.col_rows() * c.S;
  std::vector<T> buf[2] = {std::vector<T>(size), std::vector<T>(size)};
  std::mutex mu;
  std::condition_variable cv;
  int64_t made = 0, used = 0;
  bool stop = false;
  std::thread maker([&] {
    for (int64_t n = 0; n < c.num; ++n) {
      {
        std::unique_lock<std::mutex> g(mu);
        cv.wait(g, [&] { return stop || n - used < 2; });
        if (stop) return;
      }
      im2col(xd + n * c.in_dim(), c.g, buf[n % 2].data());
      {
        std::lock_guard<std::mutex> g(mu);
        made = n + 1;
      }
      cv.notify_all();
    }
  });
  try {
    for (int64_t n = 0; n < c.num; ++n) {
      {
        std::unique_lock<std::mutex> g(mu);
        cv.wait(g, [&] { return made > n; });
      }
      weight_gemms(c, tdd + n * c.out_dim(), buf[n % 2].data(), gwd);
      {
        std::lock_guard<std::mutex> g(mu);
        used = n + 1;
      }
      cv.notify_all();
    }
  } catch (...) {
    {
      std::lock_guard<std::mutex> g(mu);
      stop = true;
    }
    cv.notify_all();
    maker.join();
    throw;
  }
  maker.join();
}

// Caffe's backward_cpu_gemm for one image; a 1x1 convolution writes its diff in place.
template <typename T>
void bottom_diff_image(const Conv& c, const T* t, const T* w, T* gx, std::vector<T>& col) {
  const int64_t M = c.M();
  T* col_buff = gx;
  if (!c.is_1x1) {
    col.resize(c.col_rows() * c.S);
    col_buff = col.data();
  }
  for (int64_t gi = 0; gi < c.group; ++gi)
    blas::gemm<T>(blas::Trans, blas::NoTrans, c.kernel_dim, c.S, M, T(1), w + gi * M * c.kernel_dim,
                  t + gi * M * c.S, T(0), col_buff + gi * c.kernel_dim * c.S);
  if (!c.is_1x1) col2im(col_buff, c.g, gx);
}

// Fast mode: images per GEMM.  1 when an image has enough output pixels for an efficient GEMM
// (or for a 1x1 convolution, whose columns are the image itself).
int64_t images_per_gemm(const Conv& c) {
  if (c.is_1x1 || c.S >= 512) return 1;
  return std::min<int64_t>(16, (512 + c.S - 1) / c.S);
}

// A growable buffer from the tensor allocator (so a training loop's caching allocator reuses it,
// csrc/cpu_cache.cpp, instead of malloc arenas keeping it after use).
template <typename T>
struct Buffer {
  at::Tensor t;
  T* data() { return t.data_ptr<T>(); }
  void resize(int64_t n) {
    if (!t.defined() || t.numel() < n) t = at::empty({n}, at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value));
  }
};

// A thread's buffers for fast mode's blocks of images.
template <typename T>
struct Scratch {
  Buffer<T> col, out, t;
  std::vector<T> ones;
};

// Fast mode's column matrix of `count` images side by side (rows `count * S` apart, in the
// scratch's col buffer); a 1x1 convolution's columns are the images themselves.
template <typename T>
const T* columns_side_by_side(const Conv& c, int64_t count, const T* x, Scratch<T>& s) {
  if (c.is_1x1) return x;
  const int64_t ld = count * c.S;
  s.col.resize(c.col_rows() * ld);
  for (int64_t j = 0; j < count; ++j) im2col(x + j * c.in_dim(), c.g, s.col.data() + j * c.S, ld);
  return s.col.data();
}

// Fast mode's forward of `count` images: their columns side by side (rows count*S apart), one GEMM
// per group, then per image the bias and the fused ReLU while copying out.
template <typename T>
void forward_images(const Conv& c, int64_t count, const T* x, const T* w, const T* bias, const T* relu_slope,
                    T* top, Scratch<T>& s) {
  const int64_t M = c.M(), ld = count * c.S;
  const T* col = columns_side_by_side(c, count, x, s);
  T* out = top;  // one image: the GEMMs write the top itself
  if (count > 1) {
    s.out.resize(c.out_channels * ld);
    out = s.out.data();
  }
  for (int64_t gi = 0; gi < c.group; ++gi)
    blas::gemm_ld<T>(blas::NoTrans, blas::NoTrans, M, ld, c.kernel_dim, T(1), w + gi * M * c.kernel_dim, c.kernel_dim,
                     col + gi * c.kernel_dim * ld, ld, T(0), out + gi * M * ld, ld);
  for (int64_t j = 0; j < count; ++j) {
    for (int64_t ch = 0; ch < c.out_channels; ++ch) {
      const T* src = out + ch * ld + j * c.S;
      T* dst = top + j * c.out_dim() + ch * c.S;
      const T b = bias ? bias[ch] : T(0);
      if (relu_slope) {
        const T slope = *relu_slope;
        for (int64_t i = 0; i < c.S; ++i) dst[i] = relu_value(src[i] + b, slope);
      } else if (bias || count > 1) {
        for (int64_t i = 0; i < c.S; ++i) dst[i] = src[i] + b;
      }
    }
  }
}

// Fast mode's backward of `count` images into the block's parameter-diff sums pw / pb and the
// bottom diff gx: the top diffs (times the fused ReLU's derivative) side by side, one GEMM per
// group for the weight diff and one for the bottom diff's columns, col2im per image.
template <typename T>
void backward_images(const Conv& c, int64_t count, const T* x, const T* tdiff, const T* rtop, const T* relu_slope,
                     const T* w, T* pw, T* pb, T* gx, Scratch<T>& s) {
  const int64_t M = c.M(), ld = count * c.S;
  const T* t = tdiff;
  if (count > 1 || relu_slope) {
    s.t.resize(c.out_channels * ld);
    for (int64_t j = 0; j < count; ++j)
      for (int64_t ch = 0; ch < c.out_channels; ++ch) {
        const T* src = tdiff + j * c.out_dim() + ch * c.S;
        T* dst = s.t.data() + ch * ld + j * c.S;
        if (relu_slope) {
          const T* r = rtop + j * c.out_dim() + ch * c.S;
          const T slope = *relu_slope;
          for (int64_t i = 0; i < c.S; ++i) dst[i] = relu_grad(src[i], r[i], slope);
        } else {
          std::copy(src, src + c.S, dst);
        }
      }
    t = s.t.data();
  }
  if (pb) {
    if (static_cast<int64_t>(s.ones.size()) < ld) s.ones.assign(ld, T(1));
    blas::gemv<T>(blas::NoTrans, c.out_channels, ld, T(1), t, s.ones.data(), T(1), pb);
  }
  if (pw) {
    const T* col = columns_side_by_side(c, count, x, s);
    for (int64_t gi = 0; gi < c.group; ++gi)
      blas::gemm_ld<T>(blas::NoTrans, blas::Trans, M, c.kernel_dim, ld, T(1), t + gi * M * ld, ld,
                       col + gi * c.kernel_dim * ld, ld, T(1), pw + gi * M * c.kernel_dim, c.kernel_dim);
  }
  if (gx) {
    T* cd = gx;  // a 1x1 convolution (one image at a time) writes its diff in place
    if (!c.is_1x1) {
      s.out.resize(c.col_rows() * ld);
      cd = s.out.data();
    }
    for (int64_t gi = 0; gi < c.group; ++gi)
      blas::gemm_ld<T>(blas::Trans, blas::NoTrans, c.kernel_dim, ld, M, T(1), w + gi * M * c.kernel_dim,
                       c.kernel_dim, t + gi * M * ld, ld, T(0), cd + gi * c.kernel_dim * ld, ld);
    if (!c.is_1x1)
      for (int64_t j = 0; j < count; ++j) col2im(cd + j * c.S, c.g, gx + j * c.in_dim(), ld);
  }
}

// torch's own convolution (oneDNN) for this call: fast mode, float32, oneDNN present and enabled.
bool use_onednn(const at::Tensor& x) {
  static const bool allowed = [] {
    const char* v = std::getenv("REPLICATE_CONV_ONEDNN");
    return !(v && std::strcmp(v, "0") == 0);
  }();
  return allowed && !blas::caffe_order() && x.scalar_type() == at::kFloat && at::hasMKLDNN() &&
         at::globalContext().userEnabledMkldnn();
}

// Images per oneDNN call: a batch whose operands pass a budget goes in equal slices.  oneDNN
// reorders whole operands to its blocked layouts, and a CaffeNet batch's calls held up to 0.57 GB
// of such copies at once (conv1's forward); sliced, they are a fraction.  Measured per layer at
// batch 256 (best of 3): conv1 forward 191 -> 180 ms and backward 384 -> 189 ms in 4 slices; conv2
// forward +5% and backward +11% in 2; conv3-4 within 5% in 2; conv5's backward in 2 slices saved
// 20 MB and cost 15%.  Forward: a slice's output at most 80 MB; backward: its input and output
// together at most 128 MB (the backward copies both, when the most activations are held).
int64_t onednn_images_per_call(const Conv& c, int64_t bytes_per_image, int64_t budget) {
  const int64_t per_image = std::max<int64_t>(1, bytes_per_image);
  const int64_t calls = std::max<int64_t>(1, (c.num * per_image + budget - 1) / budget);
  return (c.num + calls - 1) / calls;
}

template <typename T>
void relu_in_place(at::Tensor& t, T slope) {
  T* d = t.data_ptr<T>();
  at::parallel_for(0, t.numel(), 1 << 14, [&](int64_t b, int64_t e) {
    relu_value_in_place(d + b, e - b, slope);
  });
}

template <typename T>
at::Tensor relu_masked(const at::Tensor& td, const at::Tensor& rt, T slope) {
  at::Tensor masked = at::empty_like(td);
  const T *t = td.data_ptr<T>(), *r = rt.data_ptr<T>();
  T* m = masked.data_ptr<T>();
  at::parallel_for(0, td.numel(), 1 << 14, [&](int64_t b0, int64_t b1) {
    relu_grad_range(t + b0, r + b0, m + b0, b1 - b0, slope);
  });
  return masked;
}

at::Tensor conv_forward(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                        at::IntArrayRef stride, at::IntArrayRef pad, at::IntArrayRef dilation, int64_t group,
                        std::optional<double> relu_slope) {
  const char* op = "conv_forward";
  const Conv c = setup(op, input, weight, stride, pad, dilation, group);
  if (bias) {
    check_like(op, "bias", *bias, input, {c.out_channels}, 1, "(num_output,)");
  }
  const at::Tensor x = input.contiguous(), w = weight.contiguous();
  const at::Tensor b = bias ? bias->contiguous() : at::Tensor();
  if (winograd::applies(c, x)) {
    c10::AutoGradMode no_grad(false);
    return winograd::forward(c, x, w, b, relu_slope ? std::optional<float>(caffe_param<float>(*relu_slope)) : std::nullopt);
  }
  if (use_onednn(x)) {
    c10::AutoGradMode no_grad(false);
    const std::optional<at::Tensor> ob = bias ? std::optional<at::Tensor>(b) : std::nullopt;
    const int64_t per = onednn_images_per_call(c, c.out_dim() * int64_t(sizeof(float)), int64_t(80) << 20);
    if (per >= c.num) {
      at::Tensor top = at::convolution(x, w, ob, stride, pad, dilation, false, {0, 0}, group).contiguous();
      if (relu_slope) relu_in_place<float>(top, caffe_param<float>(*relu_slope));
      return top;
    }
    at::Tensor top = at::empty({c.num, c.out_channels, c.g.out_h(), c.g.out_w()}, x.options());
    for (int64_t n = 0; n < c.num; n += per) {
      const int64_t k = std::min(per, c.num - n);
      at::Tensor part = at::convolution(x.narrow(0, n, k), w, ob, stride, pad, dilation, false, {0, 0}, group);
      if (relu_slope) {  // rectified while the slice is in cache
        part = part.contiguous();
        relu_in_place<float>(part, caffe_param<float>(*relu_slope));
      }
      top.narrow(0, n, k).copy_(part);
    }
    return top;
  }
  at::Tensor top = at::empty({c.num, c.out_channels, c.g.out_h(), c.g.out_w()}, x.options());
  const bool caffe = blas::caffe_order();
  REPLICATE_DISPATCH(x.scalar_type(), op, [&] {
    using T = scalar_t;
    const T *xd = x.data_ptr<T>(), *wd = w.data_ptr<T>(), *bd = b.defined() ? b.data_ptr<T>() : nullptr;
    T* td = top.data_ptr<T>();
    const std::optional<T> slope = relu_slope ? std::optional<T>(caffe_param<T>(*relu_slope)) : std::nullopt;
    const T* sp = slope ? &*slope : nullptr;
    if (caffe) {
      const std::vector<T> ones(c.S, T(1));
      at::parallel_for(0, c.num, grain(c.col_rows() * c.S), [&](int64_t n0, int64_t n1) {
        std::vector<T> col;
        for (int64_t n = n0; n < n1; ++n) {
          T* t = td + n * c.out_dim();
          forward_image<T>(c, xd + n * c.in_dim(), wd, bd, ones.data(), t, col);
          if (sp)
            relu_value_in_place(t, c.out_dim(), *sp);
        }
      });
      return;
    }
    const int64_t k = images_per_gemm(c), chunks = (c.num + k - 1) / k;
    at::parallel_for(0, chunks, grain(k * c.col_rows() * c.S), [&](int64_t q0, int64_t q1) {
      Scratch<T> s;
      for (int64_t q = q0; q < q1; ++q) {
        const int64_t n = q * k, count = std::min(k, c.num - n);
        forward_images<T>(c, count, xd + n * c.in_dim(), wd, bd, sp, td + n * c.out_dim(), s);
      }
    });
  });
  return top;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> conv_backward(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
    at::IntArrayRef pad, at::IntArrayRef dilation, int64_t group, std::array<bool, 3> output_mask,
    const std::optional<at::Tensor>& weight_diff, const std::optional<at::Tensor>& bias_diff,
    const std::optional<at::Tensor>& relu_top, double relu_slope) {
  const char* op = "conv_backward";
  const Conv c = setup(op, input, weight, stride, pad, dilation, group);
  check_like(op, "grad_output", grad_output, input, {c.num, c.out_channels, c.g.out_h(), c.g.out_w()}, 4,
             "(N, num_output, out_h, out_w)");
  if (relu_top)
    check_like(op, "relu_top", *relu_top, input, {c.num, c.out_channels, c.g.out_h(), c.g.out_w()}, 4,
               "(N, num_output, out_h, out_w)");
  const at::Tensor x = input.contiguous(), w = weight.contiguous();
  at::Tensor td = grad_output.contiguous();
  const at::Tensor rt = relu_top ? relu_top->contiguous() : at::Tensor();
  if (winograd::applies(c, x)) {
    c10::AutoGradMode no_grad(false);
    return winograd::backward(c, td, x, w, rt, caffe_param<float>(relu_slope), output_mask, weight_diff, bias_diff);
  }
  if (use_onednn(x)) {
    if (weight_diff && output_mask[1])
      check_like(op, "weight_diff", *weight_diff, input, weight.sizes(), 4, "the weight's shape");
    if (bias_diff && output_mask[2]) check_like(op, "bias_diff", *bias_diff, input, {c.out_channels}, 1, "(num_output,)");
    c10::AutoGradMode no_grad(false);
    const std::array<int64_t, 1> bias_shape{c.out_channels};  // outlives the calls below
    const std::optional<at::IntArrayRef> bias_sizes =
        output_mask[2] ? std::optional<at::IntArrayRef>(at::IntArrayRef(bias_shape)) : std::nullopt;
    // in slices of images (onednn_images_per_call), the parameter diffs summed in slice order; one
    // call for a batch within the budget (an empty batch included: oneDNN's zero diffs)
    const int64_t per = std::max<int64_t>(
        1, onednn_images_per_call(c, (c.in_dim() + c.out_dim()) * int64_t(sizeof(float)), int64_t(128) << 20));
    const bool sliced = per < c.num;
    at::Tensor dx, dw, db;
    if (sliced && output_mask[0]) dx = at::empty(x.sizes(), x.options());
    for (int64_t n = 0; n == 0 || n < c.num; n += per) {
      const int64_t k = sliced ? std::min(per, c.num - n) : c.num;
      at::Tensor tk = sliced ? td.narrow(0, n, k) : td;
      if (rt.defined()) tk = relu_masked<float>(tk, sliced ? rt.narrow(0, n, k) : rt, caffe_param<float>(relu_slope));
      auto [gx, gw, gb] = at::convolution_backward(tk, sliced ? x.narrow(0, n, k) : x, w, bias_sizes, stride, pad,
                                                   dilation, false, {0, 0}, group, output_mask);
      if (output_mask[0]) {
        if (sliced) dx.narrow(0, n, k).copy_(gx);
        else dx = gx;
      }
      if (output_mask[1]) dw = n == 0 ? gw : dw.add_(gw);
      if (output_mask[2]) db = n == 0 ? gb : db.add_(gb);
    }
    // Caffe adds the parameter diffs into the blobs' diffs
    at::Tensor gw = !output_mask[1] ? at::empty({0}, x.options())
                    : weight_diff ? weight_diff->add(dw) : dw.contiguous();
    at::Tensor gb = !output_mask[2] ? at::empty({0}, x.options())
                    : bias_diff ? bias_diff->add(db) : db.contiguous();
    return {output_mask[0] ? dx.contiguous() : at::empty({0}, x.options()), gw, gb};
  }
  at::Tensor gw = param_diff_out(op, "weight_diff", output_mask[1], weight_diff, weight.sizes(), input);
  at::Tensor gb = param_diff_out(op, "bias_diff", output_mask[2], bias_diff, {c.out_channels}, input);
  at::Tensor gx = output_mask[0] ? at::empty(input.sizes(), input.options()) : at::empty({0}, input.options());
  const bool caffe = blas::caffe_order();
  REPLICATE_DISPATCH(x.scalar_type(), op, [&] {
    using T = scalar_t;
    const T slope = caffe_param<T>(relu_slope);
    if (caffe && rt.defined()) td = relu_masked<T>(td, rt, slope);  // the ReLU's backward first, over the batch
    const T *xd = x.data_ptr<T>(), *wd = w.data_ptr<T>(), *tdd = td.data_ptr<T>();
    T* gxd = output_mask[0] ? gx.data_ptr<T>() : nullptr;
    T* gwd = output_mask[1] ? gw.data_ptr<T>() : nullptr;
    T* gbd = output_mask[2] ? gb.data_ptr<T>() : nullptr;
    const int64_t work = c.col_rows() * c.S;
    if (caffe) {
      const std::vector<T> ones(c.S, T(1));
      // Parameter diffs in Caffe's order: all bias GEMVs, then weight GEMMs image by image.
      auto params = [&] {
        std::vector<T> col;
        for (int64_t n = 0; n < c.num && gbd; ++n)
          param_diff_image<T>(c, xd + n * c.in_dim(), tdd + n * c.out_dim(), ones.data(), nullptr, gbd, col);
        for (int64_t n = 0; n < c.num && gwd; ++n)
          param_diff_image<T>(c, xd + n * c.in_dim(), tdd + n * c.out_dim(), ones.data(), gwd, nullptr, col);
      };
      auto bottoms = [&](int64_t n0, int64_t n1) {
        std::vector<T> col;
        for (int64_t n = n0; n < n1; ++n) bottom_diff_image<T>(c, tdd + n * c.out_dim(), wd, gxd + n * c.in_dim(), col);
      };
      const int64_t threads = at::get_num_threads();
      if (!gxd && gwd && !c.is_1x1 && threads >= 2 && c.num >= 2 && c.num * work >= (int64_t(1) << 16) &&
          !at::in_parallel_region()) {
        // no bottom diff to share the cores with: the columns made beside the weight GEMMs
        std::vector<T> col;
        for (int64_t n = 0; n < c.num && gbd; ++n)
          param_diff_image<T>(c, xd + n * c.in_dim(), tdd + n * c.out_dim(), ones.data(), nullptr, gbd, col);
        weight_diffs_pipelined<T>(c, xd, tdd, gwd);
        return;
      }
      if (!gxd || !(gwd || gbd) || threads < 2 || c.num * work < (int64_t(1) << 16)) {
        params();
        if (gxd) at::parallel_for(0, c.num, grain(work), bottoms);
        return;
      }
      // The two passes are independent: one thread walks the images for the parameter diffs
      // while the others share the bottom diffs.
      at::parallel_for(0, threads, 1, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
          if (t == 0) params();
          else bottoms((t - 1) * c.num / (threads - 1), t * c.num / (threads - 1));
        }
      });
      return;
    }
    // Fast mode: fixed blocks of images (not one per thread, so the thread count cannot change
    // the sums), each with its own parameter-diff sums, added in block order at the end.
    const T* rtd = rt.defined() ? rt.data_ptr<T>() : nullptr;
    const T* sp = rtd ? &slope : nullptr;
    constexpr int64_t kBlock = 16;
    const int64_t blocks = (c.num + kBlock - 1) / kBlock, k = images_per_gemm(c);
    const int64_t wcount = gwd ? gw.numel() : 0, bcount = gbd ? gb.numel() : 0;
    const at::Tensor partial = at::empty({blocks, wcount + bcount}, x.options());
    T* const pd = partial.data_ptr<T>();
    at::parallel_for(0, blocks, 1, [&](int64_t k0, int64_t k1) {
      Scratch<T> s;
      for (int64_t blk = k0; blk < k1; ++blk) {
        T* pw = pd + blk * (wcount + bcount);
        T* pb = pw + wcount;
        std::fill_n(pw, wcount + bcount, T(0));
        const int64_t end = std::min(c.num, (blk + 1) * kBlock);
        for (int64_t n = blk * kBlock; n < end; n += k) {
          const int64_t count = std::min(k, end - n);
          backward_images<T>(c, count, xd + n * c.in_dim(), tdd + n * c.out_dim(), rtd ? rtd + n * c.out_dim() : nullptr,
                             sp, wd, gwd ? pw : nullptr, gbd ? pb : nullptr, gxd ? gxd + n * c.in_dim() : nullptr, s);
        }
      }
    });
    // the block sums in block order; the elements split over the threads
    at::parallel_for(0, wcount + bcount, 1 << 14, [&](int64_t j0, int64_t j1) {
      for (int64_t blk = 0; blk < blocks; ++blk) {
        const T* row = pd + blk * (wcount + bcount);
        for (int64_t j = j0; j < std::min(j1, wcount); ++j) gwd[j] += row[j];
        for (int64_t j = std::max(j0, wcount); j < j1; ++j) gbd[j - wcount] += row[j];
      }
    });
  });
  return {gx, gw, gb};
}

}  // namespace

std::string conv_algorithm(const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
                           at::IntArrayRef pad, at::IntArrayRef dilation, int64_t group) {
  const Conv c = setup("conv_algorithm", input, weight, stride, pad, dilation, group);
  if (blas::caffe_order()) return "caffe";
  if (winograd::applies(c, input)) return "winograd";
  if (use_onednn(input)) return "onednn";
  return "im2col";
}

}  // namespace cpu

TORCH_LIBRARY_IMPL(replicate, CPU, m) {
  m.impl("conv_forward", &cpu::conv_forward);
  m.impl("conv_backward", &cpu::conv_backward);
}

}  // namespace replicate
