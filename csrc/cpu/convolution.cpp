// Convolution as Caffe 1.0's BaseConvolutionLayer (CPU): im2col + one GEMM per image and group,
// bias by a K=1 GEMM against ones; backward: bias diff by GEMV per image, weight diff by one GEMM
// per image accumulated with beta = 1 in image order, bottom diff by GEMM + col2im.
//
// Every image makes exactly Caffe's calls.  Images whose results are independent (forward, bottom
// diff) run in parallel.  The parameter diffs accumulate over images: in exact mode sequentially,
// in Caffe's image order; in fast mode per fixed block of images, the block sums added in block
// order at the end (no bit promise there beyond the fast-mode tolerance).
#include <algorithm>
#include <vector>

#include "../blas.h"
#include "../common.h"
#include "../conv.h"
#include "im2col.h"

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

// Caffe's backward_cpu_bias and weight_cpu_gemm for one image: accumulate into gw / gb.
template <typename T>
void param_diff_image(const Conv& c, const T* x, const T* t, const T* ones, T* gw, T* gb, std::vector<T>& col) {
  const int64_t M = c.M();
  if (gb) blas::gemv<T>(blas::NoTrans, c.out_channels, c.S, T(1), t, ones, T(1), gb);
  if (!gw) return;
  const T* col_buff = columns(c, x, col);
  for (int64_t gi = 0; gi < c.group; ++gi)
    blas::gemm<T>(blas::NoTrans, blas::Trans, M, c.kernel_dim, c.S, T(1), t + gi * M * c.S,
                  col_buff + gi * c.kernel_dim * c.S, T(1), gw + gi * M * c.kernel_dim);
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

at::Tensor conv_forward(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                        at::IntArrayRef stride, at::IntArrayRef pad, at::IntArrayRef dilation, int64_t group) {
  const char* op = "conv_forward";
  const Conv c = setup(op, input, weight, stride, pad, dilation, group);
  if (bias) {
    check_like(op, "bias", *bias, input, {c.out_channels}, 1, "(num_output,)");
  }
  const at::Tensor x = input.contiguous(), w = weight.contiguous();
  const at::Tensor b = bias ? bias->contiguous() : at::Tensor();
  at::Tensor top = at::empty({c.num, c.out_channels, c.g.out_h(), c.g.out_w()}, x.options());
  REPLICATE_DISPATCH(x.scalar_type(), op, [&] {
    using T = scalar_t;
    const T *xd = x.data_ptr<T>(), *wd = w.data_ptr<T>(), *bd = b.defined() ? b.data_ptr<T>() : nullptr;
    T* td = top.data_ptr<T>();
    const std::vector<T> ones(c.S, T(1));
    at::parallel_for(0, c.num, grain(c.col_rows() * c.S), [&](int64_t n0, int64_t n1) {
      std::vector<T> col;
      for (int64_t n = n0; n < n1; ++n)
        forward_image<T>(c, xd + n * c.in_dim(), wd, bd, ones.data(), td + n * c.out_dim(), col);
    });
  });
  return top;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> conv_backward(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
    at::IntArrayRef pad, at::IntArrayRef dilation, int64_t group, std::array<bool, 3> output_mask,
    const std::optional<at::Tensor>& weight_diff, const std::optional<at::Tensor>& bias_diff) {
  const char* op = "conv_backward";
  const Conv c = setup(op, input, weight, stride, pad, dilation, group);
  check_like(op, "grad_output", grad_output, input, {c.num, c.out_channels, c.g.out_h(), c.g.out_w()}, 4,
             "(N, num_output, out_h, out_w)");
  at::Tensor gw = param_diff_out(op, "weight_diff", output_mask[1], weight_diff, weight.sizes(), input);
  at::Tensor gb = param_diff_out(op, "bias_diff", output_mask[2], bias_diff, {c.out_channels}, input);
  at::Tensor gx = output_mask[0] ? at::empty(input.sizes(), input.options()) : at::empty({0}, input.options());
  const at::Tensor x = input.contiguous(), w = weight.contiguous(), td = grad_output.contiguous();
  const bool exact = blas::mode() == blas::Mode::Exact;
  REPLICATE_DISPATCH(x.scalar_type(), op, [&] {
    using T = scalar_t;
    const T *xd = x.data_ptr<T>(), *wd = w.data_ptr<T>(), *tdd = td.data_ptr<T>();
    T* gxd = output_mask[0] ? gx.data_ptr<T>() : nullptr;
    T* gwd = output_mask[1] ? gw.data_ptr<T>() : nullptr;
    T* gbd = output_mask[2] ? gb.data_ptr<T>() : nullptr;
    const std::vector<T> ones(c.S, T(1));
    const int64_t work = c.col_rows() * c.S;
    if (exact) {
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
    constexpr int64_t kBlock = 16;
    const int64_t blocks = (c.num + kBlock - 1) / kBlock;
    const int64_t wcount = gwd ? gw.numel() : 0, bcount = gbd ? gb.numel() : 0;
    std::vector<std::vector<T>> partial_w(blocks), partial_b(blocks);
    at::parallel_for(0, blocks, 1, [&](int64_t k0, int64_t k1) {
      std::vector<T> col;
      for (int64_t k = k0; k < k1; ++k) {
        std::vector<T>& pw = partial_w[k];
        std::vector<T>& pb = partial_b[k];
        pw.assign(wcount, T(0));
        pb.assign(bcount, T(0));
        for (int64_t n = k * kBlock; n < std::min(c.num, (k + 1) * kBlock); ++n) {
          const T* t = tdd + n * c.out_dim();
          if (gwd || gbd)
            param_diff_image<T>(c, xd + n * c.in_dim(), t, ones.data(), gwd ? pw.data() : nullptr,
                                gbd ? pb.data() : nullptr, col);
          if (gxd) bottom_diff_image<T>(c, t, wd, gxd + n * c.in_dim(), col);
        }
      }
    });
    for (int64_t k = 0; k < blocks; ++k) {
      for (int64_t j = 0; j < wcount; ++j) gwd[j] += partial_w[k][j];
      for (int64_t j = 0; j < bcount; ++j) gbd[j] += partial_b[k][j];
    }
  });
  return {gx, gw, gb};
}

}  // namespace
}  // namespace cpu

TORCH_LIBRARY_IMPL(replicate, CPU, m) {
  m.impl("conv_forward", &cpu::conv_forward);
  m.impl("conv_backward", &cpu::conv_backward);
}

}  // namespace replicate
