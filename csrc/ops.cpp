// Op schemas (namespace `replicate`) and the small Python module that selects the BLAS backend.
// Kernels register themselves per backend in csrc/cpu/*.cpp (and csrc/cuda/glue.cpp in CUDA builds).
#include <Python.h>
#include <torch/extension.h>
#include <torch/library.h>

#include "blas.h"
#include "conv.h"
#include "cpu_cache.h"
#include "cpu/rng.h"

TORCH_LIBRARY(replicate, m) {
  m.def("im2col(Tensor im, int[2] kernel, int[2] pad, int[2] stride, int[2] dilation) -> Tensor");
  m.def("col2im(Tensor col, int[2] image_size, int channels, int[2] kernel, int[2] pad, int[2] stride, "
        "int[2] dilation) -> Tensor");
  m.def("conv_forward(Tensor input, Tensor weight, Tensor? bias, int[2] stride, int[2] pad, int[2] dilation, "
        "int group, float? relu_slope=None) -> Tensor");
  m.def("conv_backward(Tensor grad_output, Tensor input, Tensor weight, int[2] stride, int[2] pad, "
        "int[2] dilation, int group, bool[3] output_mask, Tensor? weight_diff=None, Tensor? bias_diff=None, "
        "Tensor? relu_top=None, float relu_slope=0.) -> (Tensor, Tensor, Tensor)");
  m.def("pool_max_forward(Tensor input, int[2] kernel, int[2] stride, int[2] pad, bool ceil_mode) "
        "-> (Tensor, Tensor)");
  m.def("pool_max_backward(Tensor grad_output, Tensor mask, SymInt[] input_size) -> Tensor");
  m.def("pool_ave_forward(Tensor input, int[2] kernel, int[2] stride, int[2] pad, bool ceil_mode) -> Tensor");
  m.def("pool_ave_backward(Tensor grad_output, SymInt[] input_size, int[2] kernel, int[2] stride, int[2] pad) "
        "-> Tensor");
  // returns (output, scale, scale^-beta): backward reuses the power Caffe would recompute
  m.def("lrn_across_forward(Tensor input, int size, float alpha, float beta, float k) "
        "-> (Tensor, Tensor, Tensor)");
  m.def("lrn_across_backward(Tensor grad_output, Tensor input, Tensor output, Tensor scale, "
        "Tensor scale_power, int size, float alpha, float beta) -> Tensor");
  m.def("lrn_within_forward(Tensor input, int size, float alpha, float beta) -> (Tensor, Tensor, Tensor)");
  m.def("lrn_within_backward(Tensor grad_output, Tensor input, Tensor pool_output, Tensor power_output, "
        "int size, float alpha, float beta) -> Tensor");
  m.def("inner_product_forward(Tensor input, Tensor weight, Tensor? bias, bool transpose) -> Tensor");
  m.def("inner_product_backward(Tensor grad_output, Tensor input, Tensor weight, bool transpose, "
        "bool[3] output_mask, Tensor? weight_diff=None, Tensor? bias_diff=None) -> (Tensor, Tensor, Tensor)");
  m.def("relu_forward(Tensor input, float negative_slope) -> Tensor");
  m.def("relu_backward(Tensor grad_output, Tensor input, float negative_slope) -> Tensor");
  // Caffe's in-place ReLU: the bottom diff overwrites the top diff (same blob)
  m.def("relu_backward_(Tensor(a!) grad_output, Tensor input, float negative_slope) -> ()");
  m.def("dropout_forward(Tensor input, Tensor mask, float ratio) -> Tensor");
  m.def("dropout_backward(Tensor grad_output, Tensor mask, float ratio) -> Tensor");
  m.def("softmax_forward(Tensor input, int axis) -> Tensor");
  m.def("softmax_backward(Tensor grad_output, Tensor output, int axis) -> Tensor");
  m.def("softmax_loss_forward(Tensor input, Tensor label, int axis, int normalization, int? ignore_label) "
        "-> (Tensor, Tensor)");
  m.def("softmax_loss_backward(Tensor grad_loss, Tensor prob, Tensor label, int axis, int normalization, "
        "int? ignore_label) -> Tensor");
  m.def("accuracy_forward(Tensor input, Tensor label, int axis, int top_k, int? ignore_label) "
        "-> (Tensor, Tensor)");
  // group B layers (csrc/cpu/norm_layers.cpp): Caffe's BLAS calls with its arguments, in place
  m.def("blas_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, Tensor A, Tensor B, float beta, "
        "Tensor(a!) C) -> ()");
  m.def("blas_gemv(int trans_a, int M, int N, float alpha, Tensor A, Tensor x, float beta, Tensor(a!) y) -> ()");
  m.def("blas_axpby(float alpha, Tensor x, float beta, Tensor(a!) y) -> ()");
  m.def("blas_asum(Tensor x) -> Tensor");
  m.def("powx(Tensor x, float p) -> Tensor");
  m.def("scale_chunks(Tensor x, Tensor scale, int inner) -> Tensor");
  // Caffe's other solvers: one learnable blob's Normalize, Regularize, ComputeUpdateValue and Update
  // (csrc/cpu/solver_updates.cpp), in place.
  m.def("nesterov_update(Tensor(a!) data, Tensor(b!) diff, Tensor(c!) history, float local_rate, "
        "float momentum, float local_decay, int regularization, float diff_scale) -> ()");
  m.def("adagrad_update(Tensor(a!) data, Tensor(b!) diff, Tensor(c!) history, float local_rate, float delta, "
        "float local_decay, int regularization, float diff_scale) -> ()");
  m.def("rmsprop_update(Tensor(a!) data, Tensor(b!) diff, Tensor(c!) history, float local_rate, "
        "float rms_decay, float delta, float local_decay, int regularization, float diff_scale) -> ()");
  m.def("adadelta_update(Tensor(a!) data, Tensor(b!) diff, Tensor(c!) history, Tensor(d!) history2, "
        "float local_rate, float momentum, float delta, float local_decay, int regularization, "
        "float diff_scale) -> ()");
  m.def("adam_update(Tensor(a!) data, Tensor(b!) diff, Tensor(c!) m, Tensor(d!) v, float local_rate, "
        "float beta1, float beta2, float delta, int t, float local_decay, int regularization, "
        "float diff_scale) -> ()");
  // group A layers: neurons (csrc/cpu/neuron.cpp) and losses (csrc/cpu/losses.cpp)
  m.def("absval_forward(Tensor input) -> Tensor");
  m.def("absval_backward(Tensor grad_output, Tensor input) -> Tensor");
  m.def("bnll_forward(Tensor input) -> Tensor");
  m.def("bnll_backward(Tensor grad_output, Tensor input) -> Tensor");
  m.def("elu_forward(Tensor input, float alpha) -> Tensor");
  m.def("elu_backward(Tensor grad_output, Tensor input, Tensor output, float alpha) -> Tensor");
  m.def("exp_forward(Tensor input, float base, float scale, float shift) -> Tensor");
  m.def("exp_backward(Tensor grad_output, Tensor output, float base, float scale, float shift) -> Tensor");
  m.def("log_forward(Tensor input, float base, float scale, float shift) -> Tensor");
  m.def("log_backward(Tensor grad_output, Tensor input, float base, float scale, float shift) -> Tensor");
  m.def("power_forward(Tensor input, float power, float scale, float shift) -> Tensor");
  m.def("power_backward(Tensor grad_output, Tensor input, Tensor output, float power, float scale, float shift) "
        "-> Tensor");
  m.def("prelu_forward(Tensor input, Tensor slope, bool channel_shared) -> Tensor");
  m.def("prelu_backward(Tensor grad_output, Tensor input, Tensor slope, bool channel_shared, bool[2] output_mask, "
        "Tensor? slope_diff=None) -> (Tensor, Tensor)");
  m.def("sigmoid_forward(Tensor input) -> Tensor");
  m.def("sigmoid_backward(Tensor grad_output, Tensor output) -> Tensor");
  m.def("tanh_forward(Tensor input) -> Tensor");
  m.def("tanh_backward(Tensor grad_output, Tensor output) -> Tensor");
  m.def("threshold_forward(Tensor input, float threshold) -> Tensor");
  m.def("clip_forward(Tensor input, float min, float max) -> Tensor");
  m.def("clip_backward(Tensor grad_output, Tensor input, float min, float max) -> Tensor");
  m.def("swish_forward(Tensor input, float beta) -> (Tensor, Tensor)");
  m.def("swish_backward(Tensor grad_output, Tensor output, Tensor sigmoid_output, float beta) -> Tensor");
  m.def("euclidean_loss_forward(Tensor a, Tensor b) -> (Tensor, Tensor)");
  m.def("euclidean_loss_backward(Tensor grad_loss, Tensor diff, float sign, int num) -> Tensor");
  m.def("hinge_loss_forward(Tensor input, Tensor label, int norm) -> (Tensor, Tensor)");
  m.def("hinge_loss_backward(Tensor grad_loss, Tensor diff, Tensor label, int norm) -> Tensor");
  m.def("sigmoid_cross_entropy_loss_forward(Tensor input, Tensor target, int normalization, int? ignore_label) "
        "-> (Tensor, Tensor, Tensor)");
  m.def("sigmoid_cross_entropy_loss_backward(Tensor grad_loss, Tensor sigmoid, Tensor target, Tensor normalizer, "
        "int? ignore_label) -> Tensor");
  m.def("multinomial_logistic_loss_forward(Tensor prob, Tensor label) -> Tensor");
  m.def("multinomial_logistic_loss_backward(Tensor grad_loss, Tensor prob, Tensor label) -> Tensor");
  m.def("contrastive_loss_forward(Tensor a, Tensor b, Tensor y, float margin, bool legacy) "
        "-> (Tensor, Tensor, Tensor)");
  m.def("contrastive_loss_backward(Tensor grad_loss, Tensor diff, Tensor dist_sq, Tensor y, float margin, "
        "bool legacy, float sign) -> Tensor");
  m.def("infogain_loss_forward(Tensor prob, Tensor label, Tensor H, int axis, int normalization, "
        "int? ignore_label) -> Tensor");
  m.def("infogain_loss_backward(Tensor grad_loss, Tensor prob, Tensor label, Tensor H, int axis, "
        "int normalization, int? ignore_label) -> Tensor");
  // group C: recurrent layers (csrc/cpu/recurrent.cpp): LSTMUnit, returns (c, h) / (c_prev diff, x diff)
  m.def("lstm_unit_forward(Tensor c_prev, Tensor x, Tensor cont) -> (Tensor, Tensor)");
  m.def("lstm_unit_backward(Tensor c_diff, Tensor h_diff, Tensor c_prev, Tensor x, Tensor cont, Tensor c) "
        "-> (Tensor, Tensor)");
  // The solver's and the net's BLAS-level steps (csrc/cpu/solver_math.cpp), in place.
  m.def("sgd_update(Tensor(a!) data, Tensor(b!) diff, Tensor(c!) history, float local_rate, float momentum, "
        "float local_decay, int regularization, float diff_scale) -> ()");
  m.def("blas_axpy(float alpha, Tensor x, Tensor(a!) y) -> ()");
  m.def("blas_scal(float alpha, Tensor(a!) x) -> ()");
  m.def("blas_dot(Tensor x, Tensor y) -> Tensor");
}

namespace {

void set_blas(const std::string& name) {
  using replicate::blas::Mode;
  TORCH_CHECK(name == "fast" || name == "exact", "unknown BLAS mode '", name, "': use 'fast' or 'exact'");
  replicate::blas::set_mode(name == "exact" ? Mode::Exact : Mode::Fast);
}

std::string get_blas() { return replicate::blas::mode() == replicate::blas::Mode::Exact ? "exact" : "fast"; }

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "Caffe 1.0 layers as torch ops (namespace torch.ops.replicate)";
  m.def("set_blas", &set_blas, "Select the BLAS backend: 'fast' (torch) or 'exact' (system CBLAS, Caffe's calls)");
  m.def("get_blas", &get_blas, "The BLAS backend in use");
  m.def("blas_library", &replicate::blas::library_info, "The CBLAS library loaded for exact mode, with its config");
  m.def("set_thread_caffe_order", &replicate::blas::set_thread_caffe_order,
        "This thread asks (True) or stops asking for Caffe's kernel order in fast mode (a layer's engine: CAFFE); "
        "returns the previous request", pybind11::arg("wanted"));
  m.def("caffe_order", &replicate::blas::caffe_order,
        "Whether ops called from this thread compute in Caffe's order (exact mode, or asked for)");
  m.def("conv_algorithm", &replicate::cpu::conv_algorithm,
        "The kernel a CPU convolution with these operands runs from this thread: 'caffe', 'winograd', 'onednn' "
        "or 'im2col'", pybind11::arg("input"), pybind11::arg("weight"), pybind11::arg("stride"),
        pybind11::arg("pad"), pybind11::arg("dilation"), pybind11::arg("group"));
  m.def("enable_cpu_cache", &replicate::enable_cpu_cache, "Install the caching CPU allocator (cap in bytes)",
        pybind11::arg("max_cached_bytes"));
  m.def("cpu_cache_enabled", &replicate::cpu_cache_enabled);
  {  // Caffe's generator and Boost's distributions (csrc/cpu/rng.cpp); the GIL is released
    namespace rng = replicate::rng;
    using nogil = pybind11::call_guard<pybind11::gil_scoped_release>;
    m.def("rng_seed", &rng::seed, "init_genrand(seed) into a 625-word state tensor", nogil());
    m.def("rng_raw", &rng::raw, "n raw mt19937 outputs (int64)", nogil());
    m.def("rng_uniform", &rng::uniform, "caffe_rng_uniform: boost::uniform_real<Dtype>(a, nextafter(b))", nogil());
    m.def("rng_gaussian", &rng::gaussian, "caffe_rng_gaussian: boost::normal_distribution<Dtype>", nogil());
    m.def("rng_bernoulli", &rng::bernoulli, "caffe_rng_bernoulli: boost::bernoulli_distribution<Dtype>", nogil());
    m.def("rng_exponential", &rng::exponential, "boost::exponential_distribution<Dtype>", nogil());
    m.def("rng_uniform01", &rng::uniform01, "boost::uniform_01<Dtype>", nogil());
  }
  m.def("empty_cpu_cache", &replicate::empty_cpu_cache);
  m.def("cpu_cache_stats", [] {
    auto s = replicate::cpu_cache_stats();
    return pybind11::dict(pybind11::arg("cached_bytes") = s.cached_bytes, pybind11::arg("live_bytes") = s.live_bytes,
                          pybind11::arg("hits") = s.hits, pybind11::arg("misses") = s.misses,
                          pybind11::arg("peak_live_bytes") = s.peak_live_bytes);
  });
  m.def("reset_cpu_cache_peak", &replicate::reset_cpu_cache_peak,
        "cpu_cache_stats()['peak_live_bytes'] restarts from the bytes in use now");
}
