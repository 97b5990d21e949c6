// Local response normalisation as Caffe 1.0's LRNLayer (CPU).
//   ACROSS_CHANNELS: CrossChannelForward_cpu / CrossChannelBackward_cpu, sums built with axpy.
//   WITHIN_CHANNEL: Caffe's composition split -> square (Power 2) -> AVE pooling (pad (size-1)/2,
//   stride 1) -> Power(-beta, scale alpha, shift 1) -> Eltwise PROD, and its backward in reverse.
#include <cmath>
#include <cstring>
#include <vector>

#include "../blas.h"
#include "../common.h"
#include "../lrn.h"
#include "pooling.h"

namespace replicate {
namespace cpu {
namespace {

using blas::axpy;


// Returns (top, scale, scale^-beta).  Caffe's backward recomputes caffe_powx(scale, -beta): the
// same function of the same values, so keeping the forward's result gives the same bits.
std::tuple<at::Tensor, at::Tensor, at::Tensor> across_forward(const at::Tensor& input, int64_t size,
                                                              double alpha_arg, double beta_arg, double k_arg) {
  const char* op = "lrn_across_forward";
  check_lrn(op, input, size, c10::DeviceType::CPU);
  const at::Tensor x = input.contiguous();
  const int64_t N = x.size(0), C = x.size(1);
  const int HW = static_cast<int>(x.size(2) * x.size(3));
  const int64_t pre_pad = (size - 1) / 2;
  at::Tensor top = at::empty_like(x), scale = at::empty_like(x), power = at::empty_like(x);
  REPLICATE_DISPATCH(x.scalar_type(), op, [&] {
    using T = scalar_t;
    const T alpha = caffe_param<T>(alpha_arg), beta = caffe_param<T>(beta_arg), k = caffe_param<T>(k_arg);
    T* pw = power.data_ptr<T>();
    const T alpha_over_size = alpha / static_cast<int>(size);
    const T* bottom = x.data_ptr<T>();
    T* sc = scale.data_ptr<T>();
    T* out = top.data_ptr<T>();
    at::parallel_for(0, N, grain(C * HW), [&](int64_t b, int64_t e) {
      std::vector<T> padded((C + size - 1) * HW, T(0));  // padding rows stay zero
      for (int64_t n = b; n < e; ++n) {
        const T* xn = bottom + n * C * HW;
        T* s = sc + n * C * HW;
        for (int64_t i = 0; i < C * HW; ++i) s[i] = k;
        T* sq = padded.data() + pre_pad * HW;
        for (int64_t i = 0; i < C * HW; ++i) sq[i] = xn[i] * xn[i];
        for (int64_t c = 0; c < size; ++c) axpy<T>(HW, alpha_over_size, padded.data() + c * HW, s);
        for (int64_t c = 1; c < C; ++c) {
          T* sc_c = s + c * HW;
          std::memcpy(sc_c, sc_c - HW, sizeof(T) * HW);
          axpy<T>(HW, alpha_over_size, padded.data() + (c + size - 1) * HW, sc_c);
          axpy<T>(HW, -alpha_over_size, padded.data() + (c - 1) * HW, sc_c);
        }
        T *o = out + n * C * HW, *p = pw + n * C * HW;
        // caffe_powx then caffe_mul
        for (int64_t i = 0; i < C * HW; ++i) {
          p[i] = std::pow(s[i], -beta);
          o[i] = p[i] * xn[i];
        }
      }
    });
  });
  return {top, scale, power};
}

at::Tensor across_backward(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& output,
                           const at::Tensor& scale, const at::Tensor& scale_power, int64_t size, double alpha_arg,
                           double beta_arg) {
  const char* op = "lrn_across_backward";
  check_lrn(op, input, size, c10::DeviceType::CPU);
  check_lrn_saved(op, {{"grad_output", &grad_output}, {"output", &output}, {"scale", &scale}, {"scale_power", &scale_power}},
                  input);
  const at::Tensor x = input.contiguous(), td = grad_output.contiguous(), y = output.contiguous(),
                   sc = scale.contiguous(), scp = scale_power.contiguous();
  const int64_t N = x.size(0), C = x.size(1);
  const int HW = static_cast<int>(x.size(2) * x.size(3));
  const int64_t inverse_pre_pad = size - (size + 1) / 2;
  at::Tensor bottom_diff = at::empty_like(x);
  REPLICATE_DISPATCH(x.scalar_type(), op, [&] {
    using T = scalar_t;
    const T alpha = caffe_param<T>(alpha_arg), beta = caffe_param<T>(beta_arg);
    const T cache_ratio_value = static_cast<T>(2. * alpha * beta / static_cast<int>(size));
    const T *xd = x.data_ptr<T>(), *tdd = td.data_ptr<T>(), *yd = y.data_ptr<T>(), *sd = sc.data_ptr<T>(),
            *pd = scp.data_ptr<T>();
    T* bd = bottom_diff.data_ptr<T>();
    at::parallel_for(0, N, grain(C * HW), [&](int64_t b, int64_t e) {
      std::vector<T> padded_ratio((C + size - 1) * HW, T(0));
      std::vector<T> accum(HW), accum_times_bottom(HW);
      for (int64_t n = b; n < e; ++n) {
        const int64_t off = n * C * HW;
        // powx (kept from forward), mul; then mul, div into the padded ratio
        T* ratio = padded_ratio.data() + inverse_pre_pad * HW;
        for (int64_t i = 0; i < C * HW; ++i) {
          bd[off + i] = tdd[off + i] * pd[off + i];
          const T r = tdd[off + i] * yd[off + i];
          ratio[i] = r / sd[off + i];
        }
        std::fill(accum.begin(), accum.end(), T(0));
        for (int64_t c = 0; c < size - 1; ++c) axpy<T>(HW, T(1), padded_ratio.data() + c * HW, accum.data());
        for (int64_t c = 0; c < C; ++c) {
          axpy<T>(HW, T(1), padded_ratio.data() + (c + size - 1) * HW, accum.data());
          const T* xc = xd + off + c * HW;
          for (int i = 0; i < HW; ++i) accum_times_bottom[i] = xc[i] * accum[i];
          axpy<T>(HW, -cache_ratio_value, accum_times_bottom.data(), bd + off + c * HW);
          axpy<T>(HW, T(-1), padded_ratio.data() + c * HW, accum.data());
        }
      }
    });
  });
  return bottom_diff;
}

// Caffe's PowerLayer y = (shift + scale * x)^power, forward and backward (CPU).
template <typename T>
struct Power {
  T power, scale, shift;
  T diff_scale() const { return power * scale; }

  void forward(int64_t count, const T* x, T* y) const {
    if (diff_scale() == T(0)) {
      const T v = (power == T(0)) ? T(1) : std::pow(shift, power);
      std::fill(y, y + count, v);
      return;
    }
    if (y != x) std::memcpy(y, x, sizeof(T) * count);
    if (scale != T(1)) blas::scal<T>(static_cast<int>(count), scale, y);
    if (shift != T(0)) for (int64_t i = 0; i < count; ++i) y[i] += shift;
    if (power != T(1)) for (int64_t i = 0; i < count; ++i) y[i] = std::pow(y[i], power);
  }

  void backward(int64_t count, const T* x, const T* y, const T* top_diff, T* bottom_diff) const {
    const T ds = diff_scale();
    const int cnt = static_cast<int>(count);
    if (ds == T(0) || power == T(1)) {
      std::fill(bottom_diff, bottom_diff + count, ds);
    } else if (power == T(2)) {
      blas::axpby<T>(cnt, ds * scale, x, T(0), bottom_diff);
      if (shift != T(0)) for (int64_t i = 0; i < count; ++i) bottom_diff[i] += ds * shift;
    } else if (shift == T(0)) {
      for (int64_t i = 0; i < count; ++i) bottom_diff[i] = y[i] / x[i];
      blas::scal<T>(cnt, power, bottom_diff);
    } else {
      std::memcpy(bottom_diff, x, sizeof(T) * count);
      if (scale != T(1)) blas::scal<T>(cnt, scale, bottom_diff);
      if (shift != T(0)) for (int64_t i = 0; i < count; ++i) bottom_diff[i] += shift;
      for (int64_t i = 0; i < count; ++i) bottom_diff[i] = y[i] / bottom_diff[i];
      if (ds != T(1)) blas::scal<T>(cnt, ds, bottom_diff);
    }
    if (ds != T(0)) for (int64_t i = 0; i < count; ++i) bottom_diff[i] = top_diff[i] * bottom_diff[i];
  }
};

PoolGeom within_pool(const at::Tensor& x, int64_t size) {
  const int64_t pad = (size - 1) / 2;
  PoolGeom g{x.size(2), x.size(3), size, size, 1, 1, pad, pad, 0, 0};
  g.pooled_h = pooled_size(g.height, size, 1, pad, true);
  g.pooled_w = pooled_size(g.width, size, 1, pad, true);
  return g;
}

// Returns (top, pool_output, power_output): the last two are what backward needs.
std::tuple<at::Tensor, at::Tensor, at::Tensor> within_forward(const at::Tensor& input, int64_t size,
                                                              double alpha_arg, double beta_arg) {
  const char* op = "lrn_within_forward";
  check_lrn(op, input, size, c10::DeviceType::CPU);
  const at::Tensor x = input.contiguous();
  const PoolGeom g = within_pool(x, size);
  const int64_t planes = x.size(0) * x.size(1), plane = g.height * g.width;
  at::Tensor top = at::empty_like(x), pooled = at::empty_like(x), powered = at::empty_like(x);
  REPLICATE_DISPATCH(x.scalar_type(), op, [&] {
    using T = scalar_t;
    const T alpha = caffe_param<T>(alpha_arg), beta = caffe_param<T>(beta_arg);
    const Power<T> square{T(2), T(1), T(0)}, power{-beta, alpha, T(1)};
    const T* xd = x.data_ptr<T>();
    T *pd = pooled.data_ptr<T>(), *wd = powered.data_ptr<T>(), *od = top.data_ptr<T>();
    at::parallel_for(0, planes, grain(plane), [&](int64_t b, int64_t e) {
      std::vector<T> sq(plane);
      for (int64_t p = b; p < e; ++p) {
        square.forward(plane, xd + p * plane, sq.data());
        ave_pool_plane(sq.data(), g, pd + p * plane);
        power.forward(plane, pd + p * plane, wd + p * plane);
        for (int64_t i = 0; i < plane; ++i) od[p * plane + i] = xd[p * plane + i] * wd[p * plane + i];
      }
    });
  });
  return {top, pooled, powered};
}

at::Tensor within_backward(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& pool_output,
                           const at::Tensor& power_output, int64_t size, double alpha_arg, double beta_arg) {
  const char* op = "lrn_within_backward";
  check_lrn(op, input, size, c10::DeviceType::CPU);
  check_lrn_saved(op, {{"grad_output", &grad_output}, {"pool_output", &pool_output}, {"power_output", &power_output}},
                  input);
  const at::Tensor x = input.contiguous(), td = grad_output.contiguous(), pooled = pool_output.contiguous(),
                   powered = power_output.contiguous();
  const PoolGeom g = within_pool(x, size);
  const int64_t planes = x.size(0) * x.size(1), plane = g.height * g.width;
  at::Tensor bottom_diff = at::empty_like(x);
  REPLICATE_DISPATCH(x.scalar_type(), op, [&] {
    using T = scalar_t;
    const T alpha = caffe_param<T>(alpha_arg), beta = caffe_param<T>(beta_arg);
    const Power<T> square{T(2), T(1), T(0)}, power{-beta, alpha, T(1)};
    const T *xd = x.data_ptr<T>(), *tdd = td.data_ptr<T>(), *pd = pooled.data_ptr<T>(), *wd = powered.data_ptr<T>();
    T* bd = bottom_diff.data_ptr<T>();
    at::parallel_for(0, planes, grain(plane), [&](int64_t b, int64_t e) {
      std::vector<T> prod_diff(plane), power_top_diff(plane), pool_top_diff(plane), sq_top_diff(plane),
          sq_diff(plane, T(0));
      for (int64_t p = b; p < e; ++p) {
        const T *xp = xd + p * plane, *tp = tdd + p * plane;
        // Eltwise PROD backward (stable_prod_grad): each input's diff = the other input * top diff.
        for (int64_t i = 0; i < plane; ++i) prod_diff[i] = wd[p * plane + i] * tp[i];
        for (int64_t i = 0; i < plane; ++i) power_top_diff[i] = xp[i] * tp[i];
        power.backward(plane, pd + p * plane, wd + p * plane, power_top_diff.data(), pool_top_diff.data());
        std::fill(sq_top_diff.begin(), sq_top_diff.end(), T(0));
        ave_pool_backward_plane(pool_top_diff.data(), g, sq_top_diff.data());
        square.backward(plane, xp, nullptr, sq_top_diff.data(), sq_diff.data());
        // Split backward: the two branches' diffs added.
        for (int64_t i = 0; i < plane; ++i) bd[p * plane + i] = prod_diff[i] + sq_diff[i];
      }
    });
  });
  return bottom_diff;
}

}  // namespace
}  // namespace cpu

TORCH_LIBRARY_IMPL(replicate, CPU, m) {
  m.impl("lrn_across_forward", &cpu::across_forward);
  m.impl("lrn_across_backward", &cpu::across_backward);
  m.impl("lrn_within_forward", &cpu::within_forward);
  m.impl("lrn_within_backward", &cpu::within_backward);
}

}  // namespace replicate
