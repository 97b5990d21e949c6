// Caffe 1.0's elementwise ("neuron") layers on CPU, one small op each: AbsVal, BNLL, ELU, Exp, Log,
// Power, PReLU, Sigmoid, TanH, Threshold, Clip, Swish.
//
// Every expression keeps Caffe's types: on float blobs Caffe's unqualified exp/log/tanh/pow/fabs
// resolve to the float overloads (glibc's expf, logf, tanhf, powf), except where a double literal
// makes the argument double (Sigmoid's 0.5 * tanh(0.5 * x) + 0.5 is a double tanh; BNLL's
// log(1. + exp(x)) is a float exp inside a double log), so the same std:: overloads are called here
// on the same types.  Caffe's BLAS-level steps (caffe_scal, caffe_cpu_scale, caffe_cpu_axpby) go
// through the BLAS seam; caffe_add_scalar, caffe_mul, caffe_div and caffe_powx are plain loops.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "../blas.h"
#include "../common.h"

namespace replicate {
namespace cpu {
namespace {

constexpr int64_t kGrain = 1 << 14;

// out[i] = f(a[i]) for a contiguous copy of `a`; f is called with values of the blob's type.
template <typename F>
at::Tensor map1(const char* op, const at::Tensor& input, F f) {
  check_input(op, "input", input, -1, "any shape");
  const at::Tensor x = input.contiguous();
  at::Tensor out = at::empty_like(x, at::MemoryFormat::Contiguous);
  REPLICATE_DISPATCH(x.scalar_type(), op, [&] {
    using T = scalar_t;
    const T* in = x.data_ptr<T>();
    T* o = out.data_ptr<T>();
    at::parallel_for(0, x.numel(), kGrain, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) o[i] = static_cast<T>(f(in[i]));
    });
  });
  return out;
}

// out[i] = f(top_diff[i], a[i]) (and b[i] for map3): the backward kernels.
template <typename F>
at::Tensor map2(const char* op, const at::Tensor& grad_output, const char* arg, const at::Tensor& a, F f) {
  check_input(op, arg, a, -1, "any shape");
  check_like(op, "grad_output", grad_output, a, a.sizes(), -1, "the shape of the layer's blobs");
  const at::Tensor x = a.contiguous(), td = grad_output.contiguous();
  at::Tensor out = at::empty_like(x, at::MemoryFormat::Contiguous);
  REPLICATE_DISPATCH(x.scalar_type(), op, [&] {
    using T = scalar_t;
    const T *in = x.data_ptr<T>(), *t = td.data_ptr<T>();
    T* o = out.data_ptr<T>();
    at::parallel_for(0, x.numel(), kGrain, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) o[i] = static_cast<T>(f(t[i], in[i]));
    });
  });
  return out;
}

template <typename F>
at::Tensor map3(const char* op, const at::Tensor& grad_output, const char* arg_a, const at::Tensor& a,
                const char* arg_b, const at::Tensor& b, F f) {
  check_input(op, arg_a, a, -1, "any shape");
  check_like(op, arg_b, b, a, a.sizes(), -1, "the shape of the layer's blobs");
  check_like(op, "grad_output", grad_output, a, a.sizes(), -1, "the shape of the layer's blobs");
  const at::Tensor x = a.contiguous(), y = b.contiguous(), td = grad_output.contiguous();
  at::Tensor out = at::empty_like(x, at::MemoryFormat::Contiguous);
  REPLICATE_DISPATCH(x.scalar_type(), op, [&] {
    using T = scalar_t;
    const T *xa = x.data_ptr<T>(), *yb = y.data_ptr<T>(), *t = td.data_ptr<T>();
    T* o = out.data_ptr<T>();
    at::parallel_for(0, x.numel(), kGrain, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) o[i] = static_cast<T>(f(t[i], xa[i], yb[i]));
    });
  });
  return out;
}

int count_of(const char* op, const at::Tensor& t) {
  TORCH_CHECK(t.numel() <= INT32_MAX, op, ": the blob has more elements than Caffe's int count");
  return static_cast<int>(t.numel());
}

// ---- AbsVal: fabs; backward sign(x) * top_diff (caffe_cpu_sign gives +0 at +-0) -------------------

at::Tensor absval_forward(const at::Tensor& input) {
  return map1("absval_forward", input, [](auto x) { return std::fabs(x); });
}

at::Tensor absval_backward(const at::Tensor& grad_output, const at::Tensor& input) {
  return map2("absval_backward", grad_output, "input", input, [](auto t, auto x) {
    using T = decltype(x);
    const T sign = static_cast<T>((T(0) < x) - (x < T(0)));
    return sign * t;
  });
}

// ---- BNLL: log(1 + e^x), with the float exp inside a double log -----------------------------------

at::Tensor bnll_forward(const at::Tensor& input) {
  return map1("bnll_forward", input, [](auto x) {
    return x > 0 ? x + std::log(1. + std::exp(-x)) : std::log(1. + std::exp(x));
  });
}

at::Tensor bnll_backward(const at::Tensor& grad_output, const at::Tensor& input) {
  return map2("bnll_backward", grad_output, "input", input, [](auto t, auto x) {
    using T = decltype(x);
    const T e = std::exp(std::min(x, T(50)));  // kBNLL_THRESHOLD
    return t * e / (e + 1.);                    // float product, double division
  });
}

// ---- ELU ---------------------------------------------------------------------------------------

at::Tensor elu_forward(const at::Tensor& input, double alpha) {
  const char* op = "elu_forward";
  at::Tensor out;
  REPLICATE_DISPATCH(input.scalar_type(), op, [&] {
    using T = scalar_t;
    const T a = caffe_param<T>(alpha);
    out = map1(op, input, [a](T x) { return std::max(x, T(0)) + a * (std::exp(std::min(x, T(0))) - T(1)); });
  });
  return out;
}

// `output` is the layer's top; Caffe's ELU backward reads both (in place, both are the top).
at::Tensor elu_backward(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& output,
                        double alpha) {
  const char* op = "elu_backward";
  at::Tensor out;
  REPLICATE_DISPATCH(input.scalar_type(), op, [&] {
    using T = scalar_t;
    const T a = caffe_param<T>(alpha);
    out = map3(op, grad_output, "input", input, "output", output,
               [a](T t, T x, T y) { return t * (T(x > 0) + (a + y) * T(x <= 0)); });
  });
  return out;
}

// ---- Exp: base^(shift + scale * x) as Caffe factors it -------------------------------------------

template <typename T>
void exp_scales(double base_d, double scale_d, double shift_d, T& inner, T& outer) {
  const T base = caffe_param<T>(base_d), scale = caffe_param<T>(scale_d), shift = caffe_param<T>(shift_d);
  const T log_base = base == T(-1) ? T(1) : std::log(base);
  inner = log_base * scale;
  outer = shift == T(0) ? T(1) : (base != T(-1) ? std::pow(base, shift) : std::exp(shift));
}

at::Tensor exp_forward(const at::Tensor& input, double base, double scale, double shift) {
  const char* op = "exp_forward";
  check_input(op, "input", input, -1, "any shape");
  at::Tensor top = input.clone(at::MemoryFormat::Contiguous);
  REPLICATE_DISPATCH(top.scalar_type(), op, [&] {
    using T = scalar_t;
    T inner, outer;
    exp_scales<T>(base, scale, shift, inner, outer);
    const int n = count_of(op, top);
    T* y = top.data_ptr<T>();
    if (inner != T(1)) blas::scal<T>(n, inner, y);  // caffe_cpu_scale: copy, then scal
    for (int i = 0; i < n; ++i) y[i] = std::exp(y[i]);
    if (outer != T(1)) blas::scal<T>(n, outer, y);
  });
  return top;
}

at::Tensor exp_backward(const at::Tensor& grad_output, const at::Tensor& output, double base, double scale,
                        double shift) {
  const char* op = "exp_backward";
  at::Tensor bottom = map2(op, grad_output, "output", output, [](auto t, auto y) { return y * t; });
  REPLICATE_DISPATCH(bottom.scalar_type(), op, [&] {
    using T = scalar_t;
    T inner, outer;
    exp_scales<T>(base, scale, shift, inner, outer);
    if (inner != T(1)) blas::scal<T>(count_of(op, bottom), inner, bottom.data_ptr<T>());
  });
  return bottom;
}

// ---- Log: log_base(shift + scale * x) -------------------------------------------------------------

template <typename T>
struct LogScales {
  T scale, shift, base_scale, backward_num_scale;
};

template <typename T>
LogScales<T> log_scales(double base_d, double scale_d, double shift_d) {
  const T base = caffe_param<T>(base_d);
  const T log_base = base == T(-1) ? T(1) : std::log(base);
  LogScales<T> s;
  s.base_scale = T(1) / log_base;
  s.scale = caffe_param<T>(scale_d);
  s.shift = caffe_param<T>(shift_d);
  s.backward_num_scale = s.scale / log_base;
  return s;
}

at::Tensor log_forward(const at::Tensor& input, double base, double scale, double shift) {
  const char* op = "log_forward";
  check_input(op, "input", input, -1, "any shape");
  at::Tensor top = input.clone(at::MemoryFormat::Contiguous);
  REPLICATE_DISPATCH(top.scalar_type(), op, [&] {
    using T = scalar_t;
    const LogScales<T> s = log_scales<T>(base, scale, shift);
    const int n = count_of(op, top);
    T* y = top.data_ptr<T>();
    if (s.scale != T(1)) blas::scal<T>(n, s.scale, y);
    if (s.shift != T(0))
      for (int i = 0; i < n; ++i) y[i] += s.shift;
    for (int i = 0; i < n; ++i) y[i] = std::log(y[i]);
    if (s.base_scale != T(1)) blas::scal<T>(n, s.base_scale, y);
  });
  return top;
}

at::Tensor log_backward(const at::Tensor& grad_output, const at::Tensor& input, double base, double scale,
                        double shift) {
  const char* op = "log_backward";
  check_input(op, "input", input, -1, "any shape");
  check_like(op, "grad_output", grad_output, input, input.sizes(), -1, "the shape of input");
  at::Tensor bottom = input.clone(at::MemoryFormat::Contiguous);
  const at::Tensor td = grad_output.contiguous();
  REPLICATE_DISPATCH(bottom.scalar_type(), op, [&] {
    using T = scalar_t;
    const LogScales<T> s = log_scales<T>(base, scale, shift);
    const int n = count_of(op, bottom);
    T* d = bottom.data_ptr<T>();
    const T* t = td.data_ptr<T>();
    if (s.scale != T(1)) blas::scal<T>(n, s.scale, d);
    if (s.shift != T(0))
      for (int i = 0; i < n; ++i) d[i] += s.shift;
    for (int i = 0; i < n; ++i) d[i] = std::pow(d[i], T(-1));  // caffe_powx(..., -1)
    if (s.backward_num_scale != T(1)) blas::scal<T>(n, s.backward_num_scale, d);
    for (int i = 0; i < n; ++i) d[i] = t[i] * d[i];
  });
  return bottom;
}

// ---- Power: (shift + scale * x)^power ------------------------------------------------------------

at::Tensor power_forward(const at::Tensor& input, double power_d, double scale_d, double shift_d) {
  const char* op = "power_forward";
  check_input(op, "input", input, -1, "any shape");
  at::Tensor top = input.clone(at::MemoryFormat::Contiguous);
  REPLICATE_DISPATCH(top.scalar_type(), op, [&] {
    using T = scalar_t;
    const T power = caffe_param<T>(power_d), scale = caffe_param<T>(scale_d), shift = caffe_param<T>(shift_d);
    const T diff_scale = power * scale;
    const int n = count_of(op, top);
    T* y = top.data_ptr<T>();
    if (diff_scale == T(0)) {
      const T value = power == 0 ? T(1) : std::pow(shift, power);
      std::fill_n(y, n, value);
      return;
    }
    if (scale != T(1)) blas::scal<T>(n, scale, y);
    if (shift != T(0))
      for (int i = 0; i < n; ++i) y[i] += shift;
    if (power != T(1))
      for (int i = 0; i < n; ++i) y[i] = std::pow(y[i], power);
  });
  return top;
}

at::Tensor power_backward(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& output,
                          double power_d, double scale_d, double shift_d) {
  const char* op = "power_backward";
  check_input(op, "input", input, -1, "any shape");
  check_like(op, "output", output, input, input.sizes(), -1, "the shape of input");
  check_like(op, "grad_output", grad_output, input, input.sizes(), -1, "the shape of input");
  const at::Tensor x = input.contiguous(), y = output.contiguous(), td = grad_output.contiguous();
  at::Tensor bottom = at::zeros_like(x, at::MemoryFormat::Contiguous);
  REPLICATE_DISPATCH(x.scalar_type(), op, [&] {
    using T = scalar_t;
    const T power = caffe_param<T>(power_d), scale = caffe_param<T>(scale_d), shift = caffe_param<T>(shift_d);
    const T diff_scale = power * scale;
    const int n = count_of(op, x);
    const T *xd = x.data_ptr<T>(), *yd = y.data_ptr<T>(), *t = td.data_ptr<T>();
    T* d = bottom.data_ptr<T>();
    if (diff_scale == T(0) || power == T(1)) {
      std::fill_n(d, n, diff_scale);
    } else if (power == T(2)) {  // d/dx = diff_scale * (scale * x + shift)
      blas::axpby<T>(n, diff_scale * scale, xd, T(0), d);
      if (shift != T(0))
        for (int i = 0; i < n; ++i) d[i] += diff_scale * shift;
    } else if (shift == T(0)) {  // power * y / x
      for (int i = 0; i < n; ++i) d[i] = yd[i] / xd[i];
      blas::scal<T>(n, power, d);
    } else {  // diff_scale * y / (shift + scale * x)
      std::memcpy(d, xd, sizeof(T) * static_cast<size_t>(n));
      if (scale != T(1)) blas::scal<T>(n, scale, d);
      if (shift != T(0))
        for (int i = 0; i < n; ++i) d[i] += shift;
      for (int i = 0; i < n; ++i) d[i] = yd[i] / d[i];
      if (diff_scale != T(1)) blas::scal<T>(n, diff_scale, d);
    }
    if (diff_scale != T(0))
      for (int i = 0; i < n; ++i) d[i] = t[i] * d[i];
  });
  return bottom;
}

// ---- PReLU: one slope per channel (axis 1), or one shared ------------------------------------------

struct PreluShape {
  int64_t count, dim, channels, div_factor;
};

PreluShape prelu_shape(const char* op, const at::Tensor& x, const at::Tensor& slope, bool channel_shared) {
  check_input(op, "input", x, -1, "(N, C, ...)");
  TORCH_CHECK(x.dim() >= 2, op, ": argument 'input' has shape ", shape_str(x.sizes()),
              "; expected at least 2 axes (N, C, ...)");
  check_input(op, "slope", slope, -1, channel_shared ? "() or (1)" : "(C)");
  check_same_dtype(op, "slope", slope, x);
  check_same_device(op, "slope", slope, x);
  const int64_t channels = x.size(1);
  TORCH_CHECK(slope.numel() == (channel_shared ? 1 : channels), op, ": argument 'slope' has ", slope.numel(),
              " values; expected ", channel_shared ? int64_t(1) : channels,
              " (Negative slope size is inconsistent with prototxt config)");
  const int64_t dim = x.numel() / std::max<int64_t>(1, x.size(0) * channels);
  return {x.numel(), dim, channels, channel_shared ? channels : 1};
}

at::Tensor prelu_forward(const at::Tensor& input, const at::Tensor& slope, bool channel_shared) {
  const char* op = "prelu_forward";
  const PreluShape s = prelu_shape(op, input, slope, channel_shared);
  const at::Tensor x = input.contiguous(), a = slope.contiguous();
  at::Tensor top = at::empty_like(x, at::MemoryFormat::Contiguous);
  REPLICATE_DISPATCH(x.scalar_type(), op, [&] {
    using T = scalar_t;
    const T *in = x.data_ptr<T>(), *sl = a.data_ptr<T>();
    T* o = top.data_ptr<T>();
    at::parallel_for(0, s.count, kGrain, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const int64_t c = (i / s.dim) % s.channels / s.div_factor;
        o[i] = std::max(in[i], T(0)) + sl[c] * std::min(in[i], T(0));
      }
    });
  });
  return top;
}

// (bottom_diff, slope_diff); the slope diff accumulates into `slope_diff` (Caffe's += in index order).
std::tuple<at::Tensor, at::Tensor> prelu_backward(const at::Tensor& grad_output, const at::Tensor& input,
                                                  const at::Tensor& slope, bool channel_shared,
                                                  std::array<bool, 2> output_mask,
                                                  const std::optional<at::Tensor>& slope_diff) {
  const char* op = "prelu_backward";
  const PreluShape s = prelu_shape(op, input, slope, channel_shared);
  check_like(op, "grad_output", grad_output, input, input.sizes(), -1, "the shape of input");
  const at::Tensor x = input.contiguous(), a = slope.contiguous(), td = grad_output.contiguous();
  at::Tensor sd = param_diff_out(op, "slope_diff", output_mask[1], slope_diff, slope.sizes(), slope);
  at::Tensor bottom = output_mask[0] ? at::empty_like(x, at::MemoryFormat::Contiguous) : at::empty({0}, x.options());
  REPLICATE_DISPATCH(x.scalar_type(), op, [&] {
    using T = scalar_t;
    const T *in = x.data_ptr<T>(), *sl = a.data_ptr<T>(), *t = td.data_ptr<T>();
    if (output_mask[1]) {
      T* g = sd.data_ptr<T>();
      for (int64_t i = 0; i < s.count; ++i) {
        const int64_t c = (i / s.dim) % s.channels / s.div_factor;
        g[c] += t[i] * in[i] * T(in[i] <= 0);
      }
    }
    if (output_mask[0]) {
      T* o = bottom.data_ptr<T>();
      at::parallel_for(0, s.count, kGrain, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          const int64_t c = (i / s.dim) % s.channels / s.div_factor;
          o[i] = t[i] * (T(in[i] > 0) + sl[c] * T(in[i] <= 0));
        }
      });
    }
  });
  return {bottom, sd};
}

// ---- Sigmoid: 0.5 * tanh(0.5 * x) + 0.5 in double; TanH: the float tanh ----------------------------

template <typename T>
T caffe_sigmoid(T x) {
  return static_cast<T>(0.5 * std::tanh(0.5 * x) + 0.5);
}

at::Tensor sigmoid_forward(const at::Tensor& input) {
  return map1("sigmoid_forward", input, [](auto x) { return caffe_sigmoid(x); });
}

at::Tensor sigmoid_backward(const at::Tensor& grad_output, const at::Tensor& output) {
  return map2("sigmoid_backward", grad_output, "output", output,
              [](auto t, auto y) { return t * y * (1. - y); });  // float product, then a double one
}

at::Tensor tanh_forward(const at::Tensor& input) {
  return map1("tanh_forward", input, [](auto x) { return std::tanh(x); });
}

at::Tensor tanh_backward(const at::Tensor& grad_output, const at::Tensor& output) {
  return map2("tanh_backward", grad_output, "output", output, [](auto t, auto y) {
    using T = decltype(y);
    return t * (T(1) - y * y);
  });
}

// ---- Threshold (forward only), Clip ---------------------------------------------------------------

at::Tensor threshold_forward(const at::Tensor& input, double threshold) {
  const char* op = "threshold_forward";
  at::Tensor out;
  REPLICATE_DISPATCH(input.scalar_type(), op, [&] {
    using T = scalar_t;
    const T th = caffe_param<T>(threshold);
    out = map1(op, input, [th](T x) { return x > th ? T(1) : T(0); });
  });
  return out;
}

at::Tensor clip_forward(const at::Tensor& input, double min_d, double max_d) {
  const char* op = "clip_forward";
  at::Tensor out;
  REPLICATE_DISPATCH(input.scalar_type(), op, [&] {
    using T = scalar_t;
    const T lo = caffe_param<T>(min_d), hi = caffe_param<T>(max_d);
    out = map1(op, input, [lo, hi](T x) { return std::max(lo, std::min(x, hi)); });
  });
  return out;
}

at::Tensor clip_backward(const at::Tensor& grad_output, const at::Tensor& input, double min_d, double max_d) {
  const char* op = "clip_backward";
  at::Tensor out;
  REPLICATE_DISPATCH(input.scalar_type(), op, [&] {
    using T = scalar_t;
    const T lo = caffe_param<T>(min_d), hi = caffe_param<T>(max_d);
    out = map2(op, grad_output, "input", input, [lo, hi](T t, T x) { return t * T(x >= lo && x <= hi); });
  });
  return out;
}

// ---- Swish: x * sigmoid(beta * x); returns (top, the internal sigmoid's output) --------------------

std::tuple<at::Tensor, at::Tensor> swish_forward(const at::Tensor& input, double beta_d) {
  const char* op = "swish_forward";
  check_input(op, "input", input, -1, "any shape");
  const at::Tensor x = input.contiguous();
  at::Tensor sig = x.clone(at::MemoryFormat::Contiguous);
  at::Tensor top = at::empty_like(x, at::MemoryFormat::Contiguous);
  REPLICATE_DISPATCH(x.scalar_type(), op, [&] {
    using T = scalar_t;
    const int n = count_of(op, x);
    T* s = sig.data_ptr<T>();
    const T* in = x.data_ptr<T>();
    T* o = top.data_ptr<T>();
    blas::scal<T>(n, caffe_param<T>(beta_d), s);
    for (int i = 0; i < n; ++i) s[i] = caffe_sigmoid(s[i]);
    for (int i = 0; i < n; ++i) o[i] = in[i] * s[i];
  });
  return {top, sig};
}

at::Tensor swish_backward(const at::Tensor& grad_output, const at::Tensor& output, const at::Tensor& sigmoid_output,
                          double beta_d) {
  const char* op = "swish_backward";
  at::Tensor out;
  REPLICATE_DISPATCH(output.scalar_type(), op, [&] {
    using T = scalar_t;
    const T beta = caffe_param<T>(beta_d);
    out = map3(op, grad_output, "output", output, "sigmoid_output", sigmoid_output,
               [beta](T t, T y, T s) { return t * (beta * y + s * (1. - beta * y)); });
  });
  return out;
}

}  // namespace
}  // namespace cpu

TORCH_LIBRARY_IMPL(replicate, CPU, m) {
  m.impl("absval_forward", &cpu::absval_forward);
  m.impl("absval_backward", &cpu::absval_backward);
  m.impl("bnll_forward", &cpu::bnll_forward);
  m.impl("bnll_backward", &cpu::bnll_backward);
  m.impl("elu_forward", &cpu::elu_forward);
  m.impl("elu_backward", &cpu::elu_backward);
  m.impl("exp_forward", &cpu::exp_forward);
  m.impl("exp_backward", &cpu::exp_backward);
  m.impl("log_forward", &cpu::log_forward);
  m.impl("log_backward", &cpu::log_backward);
  m.impl("power_forward", &cpu::power_forward);
  m.impl("power_backward", &cpu::power_backward);
  m.impl("prelu_forward", &cpu::prelu_forward);
  m.impl("prelu_backward", &cpu::prelu_backward);
  m.impl("sigmoid_forward", &cpu::sigmoid_forward);
  m.impl("sigmoid_backward", &cpu::sigmoid_backward);
  m.impl("tanh_forward", &cpu::tanh_forward);
  m.impl("tanh_backward", &cpu::tanh_backward);
  m.impl("threshold_forward", &cpu::threshold_forward);
  m.impl("clip_forward", &cpu::clip_forward);
  m.impl("clip_backward", &cpu::clip_backward);
  m.impl("swish_forward", &cpu::swish_forward);
  m.impl("swish_backward", &cpu::swish_backward);
}

}  // namespace replicate
