// Op schemas (namespace `replicate`) and the small Python module that selects the BLAS backend.
// Kernels register themselves per backend in csrc/cpu/*.cpp (and csrc/cuda/glue.cpp in CUDA builds).
#include <Python.h>
#include <torch/extension.h>
#include <torch/library.h>

#include "blas.h"
#include "cpu_cache.h"
#include "cpu/rng.h"

TORCH_LIBRARY(replicate, m) {
  m.def("im2col(Tensor im, int[2] kernel, int[2] pad, int[2] stride, int[2] dilation) -> Tensor");
  m.def("col2im(Tensor col, int[2] image_size, int channels, int[2] kernel, int[2] pad, int[2] stride, "
        "int[2] dilation) -> Tensor");
  m.def("conv_forward(Tensor input, Tensor weight, Tensor? bias, int[2] stride, int[2] pad, int[2] dilation, "
        "int group) -> Tensor");
  m.def("conv_backward(Tensor grad_output, Tensor input, Tensor weight, int[2] stride, int[2] pad, "
        "int[2] dilation, int group, bool[3] output_mask, Tensor? weight_diff=None, Tensor? bias_diff=None) "
        "-> (Tensor, Tensor, Tensor)");
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
                          pybind11::arg("hits") = s.hits, pybind11::arg("misses") = s.misses);
  });
}
