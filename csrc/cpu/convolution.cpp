// Convolution as Caffe 1.0's BaseConvolutionLayer (CPU): im2col + one GEMM per image and group,
// bias by a K=1 GEMM against ones; backward: bias diff by GEMV per image, weight diff by one GEMM
// per image accumulated with beta = 1 in image order, bottom diff by GEMM + col2im.
//
// In exact BLAS mode every call is Caffe's, image by image.  In fast mode the same calls take a
// chunk of B images side by side (the column matrix is C*kh*kw x B*out_h*out_w), which gives the
// matmul long rows; no result bit is promised there beyond the fast-mode tolerance.
#include <algorithm>
#include <vector>

#include "../blas.h"
#include "../common.h"
#include "im2col.h"

namespace replicate {
namespace cpu {
namespace {

struct Conv {
  ConvGeom g;
  int64_t num, out_channels, group, S, kernel_dim;
  bool is_1x1;
  int64_t in_dim() const { return g.channels * g.height * g.width; }
  int64_t out_dim() const { return out_channels * S; }
  int64_t col_rows() const { return kernel_dim * group; }
  int64_t M() const { return out_channels / group; }
};

Conv setup(const char* op, const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
           at::IntArrayRef pad, at::IntArrayRef dilation, int64_t group) {
  check_input(op, "input", input, 4, "(N, C, H, W)");
  check_input(op, "weight", weight, 4, "(num_output, C / group, kh, kw)");
  check_same_dtype(op, "weight", weight, input);
  TORCH_CHECK(group > 0, op, ": group must be positive, got ", group);
  const int64_t C = input.size(1), Cout = weight.size(0);
  TORCH_CHECK(C % group == 0 && Cout % group == 0, op, ": input channels (", C, ") and num_output (", Cout,
              ") must be multiples of group (", group, ")");
  TORCH_CHECK(weight.size(1) == C / group, op, ": argument 'weight' has shape ", shape_str(weight.sizes()),
              "; expected (", Cout, ", ", C / group, ", kh, kw) for ", C, " input channels and group ", group);
  Conv c;
  c.g = conv_geometry(op, C, input.size(2), input.size(3), {weight.size(2), weight.size(3)}, pad, stride, dilation);
  c.num = input.size(0);
  c.out_channels = Cout;
  c.group = group;
  c.S = c.g.out_h() * c.g.out_w();
  c.kernel_dim = (C / group) * c.g.kernel_h * c.g.kernel_w;
  c.is_1x1 = c.g.kernel_h == 1 && c.g.kernel_w == 1 && c.g.stride_h == 1 && c.g.stride_w == 1 &&
             c.g.pad_h == 0 && c.g.pad_w == 0;
  return c;
}

// Images per GEMM: 1 (Caffe's calls) in exact mode; in fast mode as many as keep the column
// matrix near 16M elements.
int64_t chunk_images(const Conv& c) {
  if (blas::mode() == blas::Mode::Exact) return 1;
  const int64_t per_image = std::max<int64_t>(1, std::max(c.col_rows(), c.out_channels) * c.S);
  return std::clamp<int64_t>((int64_t(1) << 24) / per_image, 1, std::max<int64_t>(c.num, 1));
}

// (B, rows, S) images -> (rows, B*S) side by side.
template <typename T>
void to_side_by_side(const T* src, int64_t B, int64_t rows, int64_t S, T* dst) {
  at::parallel_for(0, rows, grain(B * S), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t b = 0; b < B; ++b) std::copy_n(src + (b * rows + r) * S, S, dst + r * B * S + b * S);
  });
}
template <typename T>
void im2col_chunk(const Conv& c, const T* x, int64_t B, T* col) {
  const int64_t ld = B * c.S;
  at::parallel_for(0, B, grain(c.S * c.col_rows()), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) im2col(x + b * c.in_dim(), c.g, col + b * c.S, ld);
  });
}

// top (B images) = W * col (+ bias).  B == 1: Caffe's forward_cpu_gemm + forward_cpu_bias.
// B > 1 (fast mode): the transposed product col^T * W^T per group, whose long dimension is the
// rows of the output (torch's matmul runs that shape faster), and the bias added while the result
// is scattered back to (image, channel, position).
template <typename T>
void forward_chunk(const Conv& c, const T* x, const T* w, const T* bias, const T* ones, int64_t B, T* top,
                   std::vector<T>& col, std::vector<T>& out) {
  const int64_t ld = B * c.S, M = c.M();
  const T* col_buff = x;
  if (!(c.is_1x1 && B == 1)) {
    col.resize(c.col_rows() * ld);
    im2col_chunk(c, x, B, col.data());
    col_buff = col.data();
  }
  if (B == 1) {
    for (int64_t gi = 0; gi < c.group; ++gi)
      blas::gemm<T>(blas::NoTrans, blas::NoTrans, M, ld, c.kernel_dim, T(1), w + gi * M * c.kernel_dim,
                    col_buff + gi * c.kernel_dim * ld, T(0), top + gi * M * ld);
    if (bias) blas::gemm<T>(blas::NoTrans, blas::NoTrans, c.out_channels, ld, 1, T(1), bias, ones, T(1), top);
    return;
  }
  out.resize(ld * M);
  for (int64_t gi = 0; gi < c.group; ++gi) {
    blas::gemm<T>(blas::Trans, blas::Trans, ld, M, c.kernel_dim, T(1), col_buff + gi * c.kernel_dim * ld,
                  w + gi * M * c.kernel_dim, T(0), out.data());
    at::parallel_for(0, B * M, grain(c.S), [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t b = i / M, m = i % M;
        const T* src = out.data() + b * c.S * M + m;
        T* dst = top + (b * c.out_channels + gi * M + m) * c.S;
        const T bv = bias ? bias[gi * M + m] : T(0);
        for (int64_t s = 0; s < c.S; ++s) dst[s] = src[s * M] + bv;
      }
    });
  }
}

at::Tensor conv_forward(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                        at::IntArrayRef stride, at::IntArrayRef pad, at::IntArrayRef dilation, int64_t group) {
  const char* op = "conv_forward";
  const Conv c = setup(op, input, weight, stride, pad, dilation, group);
  if (bias) {
    check_input(op, "bias", *bias, 1, "(num_output,)");
    check_same_dtype(op, "bias", *bias, input);
    check_shape(op, "bias", *bias, {c.out_channels});
  }
  const at::Tensor x = input.contiguous(), w = weight.contiguous();
  const at::Tensor b = bias ? bias->contiguous() : at::Tensor();
  at::Tensor top = at::empty({c.num, c.out_channels, c.g.out_h(), c.g.out_w()}, x.options());
  const int64_t B = chunk_images(c);
  REPLICATE_DISPATCH(x.scalar_type(), op, [&] {
    using T = scalar_t;
    const T *xd = x.data_ptr<T>(), *wd = w.data_ptr<T>(), *bd = b.defined() ? b.data_ptr<T>() : nullptr;
    T* td = top.data_ptr<T>();
    const std::vector<T> ones(B * c.S, T(1));
    if (B == 1) {  // Caffe's per-image calls; images are independent, so run them in parallel
      at::parallel_for(0, c.num, grain(c.col_rows() * c.S), [&](int64_t n0, int64_t n1) {
        std::vector<T> col, out;
        for (int64_t n = n0; n < n1; ++n)
          forward_chunk<T>(c, xd + n * c.in_dim(), wd, bd, ones.data(), 1, td + n * c.out_dim(), col, out);
      });
    } else {
      std::vector<T> col, out;
      for (int64_t n = 0; n < c.num; n += B) {
        const int64_t nb = std::min(B, c.num - n);
        forward_chunk<T>(c, xd + n * c.in_dim(), wd, bd, ones.data(), nb, td + n * c.out_dim(), col, out);
      }
    }
  });
  return top;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> conv_backward(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
    at::IntArrayRef pad, at::IntArrayRef dilation, int64_t group, std::array<bool, 3> output_mask,
    const std::optional<at::Tensor>& weight_diff, const std::optional<at::Tensor>& bias_diff) {
  const char* op = "conv_backward";
  const Conv c = setup(op, input, weight, stride, pad, dilation, group);
  check_input(op, "grad_output", grad_output, 4, "(N, num_output, out_h, out_w)");
  check_same_dtype(op, "grad_output", grad_output, input);
  check_shape(op, "grad_output", grad_output, {c.num, c.out_channels, c.g.out_h(), c.g.out_w()});
  at::Tensor gw = at::empty({0}, input.options()), gb = at::empty({0}, input.options());
  if (output_mask[1]) {
    if (weight_diff) {
      check_input(op, "weight_diff", *weight_diff, 4, "like weight");
      check_same_dtype(op, "weight_diff", *weight_diff, input);
      check_shape(op, "weight_diff", *weight_diff, weight.sizes());
      gw = weight_diff->clone(at::MemoryFormat::Contiguous);
    } else {
      gw = at::zeros(weight.sizes(), input.options());
    }
  }
  if (output_mask[2]) {
    if (bias_diff) {
      check_input(op, "bias_diff", *bias_diff, 1, "(num_output,)");
      check_same_dtype(op, "bias_diff", *bias_diff, input);
      check_shape(op, "bias_diff", *bias_diff, {c.out_channels});
      gb = bias_diff->clone(at::MemoryFormat::Contiguous);
    } else {
      gb = at::zeros({c.out_channels}, input.options());
    }
  }
  at::Tensor gx = output_mask[0] ? at::empty(input.sizes(), input.options()) : at::empty({0}, input.options());
  const at::Tensor x = input.contiguous(), w = weight.contiguous(), td = grad_output.contiguous();
  const int64_t B = chunk_images(c), M = c.M();
  REPLICATE_DISPATCH(x.scalar_type(), op, [&] {
    using T = scalar_t;
    const T *xd = x.data_ptr<T>(), *wd = w.data_ptr<T>(), *tdd = td.data_ptr<T>();
    T* gxd = output_mask[0] ? gx.data_ptr<T>() : nullptr;
    const std::vector<T> ones(B * c.S, T(1));
    // One chunk of nb images: bias diff (GEMV) and weight diff (GEMM, beta 1) accumulate in image
    // order; with `bottom` also the bottom diff.  nb == 1 is exactly Caffe's sequence of calls.
    auto chunk = [&](int64_t n, int64_t nb, bool params, bool bottom, std::vector<T>& col, std::vector<T>& tb) {
      const int64_t ld = nb * c.S;
      const T* t = tdd + n * c.out_dim();
      if (nb > 1) {
        tb.resize(c.out_channels * ld);
        to_side_by_side(t, nb, c.out_channels, c.S, tb.data());
        t = tb.data();
      }
      if (params && output_mask[2])
        blas::gemv<T>(blas::NoTrans, c.out_channels, ld, T(1), t, ones.data(), T(1), gb.data_ptr<T>());
      if (params && output_mask[1]) {
        const T* col_buff = xd + n * c.in_dim();
        if (!(c.is_1x1 && nb == 1)) {
          col.resize(c.col_rows() * ld);
          im2col_chunk(c, xd + n * c.in_dim(), nb, col.data());
          col_buff = col.data();
        }
        T* gwd = gw.data_ptr<T>();
        for (int64_t gi = 0; gi < c.group; ++gi)
          blas::gemm<T>(blas::NoTrans, blas::Trans, M, c.kernel_dim, ld, T(1), t + gi * M * ld,
                        col_buff + gi * c.kernel_dim * ld, T(1), gwd + gi * M * c.kernel_dim);
      }
      if (!bottom) return;
      if (nb == 1) {  // Caffe's backward_cpu_gemm; a 1x1 convolution writes its diff in place
        const bool direct = c.is_1x1;
        T* col_buff = gxd + n * c.in_dim();
        if (!direct) {
          col.resize(c.col_rows() * ld);
          col_buff = col.data();
        }
        for (int64_t gi = 0; gi < c.group; ++gi)
          blas::gemm<T>(blas::Trans, blas::NoTrans, c.kernel_dim, ld, M, T(1), wd + gi * M * c.kernel_dim,
                        t + gi * M * ld, T(0), col_buff + gi * c.kernel_dim * ld);
        if (!direct) col2im(col_buff, c.g, gxd + n * c.in_dim(), ld);
        return;
      }
      // Fast mode: (col diff)^T = top_diff^T * W per group (long rows for the matmul), added back
      // position by position.
      ConvGeom gg = c.g;
      gg.channels = c.g.channels / c.group;
      const int64_t group_in = gg.channels * c.g.height * c.g.width;
      at::parallel_for(0, nb, grain(c.in_dim()), [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) std::fill_n(gxd + (n + b) * c.in_dim(), c.in_dim(), T(0));
      });
      col.resize(c.kernel_dim * ld);
      for (int64_t gi = 0; gi < c.group; ++gi) {
        blas::gemm<T>(blas::Trans, blas::NoTrans, ld, c.kernel_dim, M, T(1), t + gi * M * ld,
                      wd + gi * M * c.kernel_dim, T(0), col.data());
        at::parallel_for(0, nb, grain(c.S * c.kernel_dim), [&](int64_t b0, int64_t b1) {
          for (int64_t b = b0; b < b1; ++b)
            row2im_add(col.data() + b * c.S * c.kernel_dim, gg, c.kernel_dim,
                       gxd + (n + b) * c.in_dim() + gi * group_in);
        });
      }
    };
    const bool params = output_mask[1] || output_mask[2];
    if (B > 1) {  // fast mode: everything chunk by chunk
      std::vector<T> col, tb;
      for (int64_t n = 0; n < c.num; n += B) chunk(n, std::min(B, c.num - n), params, output_mask[0], col, tb);
      return;
    }
    // Exact mode: parameter diffs sequentially in image order; bottom diffs are independent.
    std::vector<T> col, tb;
    for (int64_t n = 0; n < c.num && params; ++n) chunk(n, 1, true, false, col, tb);
    if (output_mask[0])
      at::parallel_for(0, c.num, grain(c.col_rows() * c.S), [&](int64_t n0, int64_t n1) {
        std::vector<T> colb, tbb;
        for (int64_t n = n0; n < n1; ++n) chunk(n, 1, false, true, colb, tbb);
      });
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
