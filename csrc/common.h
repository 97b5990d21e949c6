// Shared argument checks and helpers for the CPU kernels and the CUDA glue.
#pragma once
#include <torch/library.h>
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

namespace replicate {

// Caffe's layer parameters are protobuf floats: a kernel of Dtype double still
// sees the float value, so every real parameter goes through float first.
template <typename T>
inline T caffe_param(double v) { return static_cast<T>(static_cast<float>(v)); }

std::string shape_str(at::IntArrayRef s);

// A floating tensor (float32/float64) on a device of type `device` with `dim` dimensions (-1: any).
// Errors name the op, the argument and the expected shape.  check_input is the CPU kernels' form;
// the CUDA glue's check_cuda is the same check for CUDA tensors.
void check_tensor(const char* op, const char* arg, const at::Tensor& t, int64_t dim, const char* expected_shape,
                  c10::DeviceType device);
inline void check_input(const char* op, const char* arg, const at::Tensor& t, int64_t dim,
                        const char* expected_shape) {
  check_tensor(op, arg, t, dim, expected_shape, c10::DeviceType::CPU);
}
void check_same_device(const char* op, const char* arg, const at::Tensor& t, const at::Tensor& ref);
void check_same_dtype(const char* op, const char* arg, const at::Tensor& t, const at::Tensor& ref);
void check_shape(const char* op, const char* arg, const at::Tensor& t, at::IntArrayRef shape);
void check_int_tensor(const char* op, const char* arg, const at::Tensor& t, at::ScalarType st);
// `t` like `ref` and shaped `shape`: check_tensor on ref's device type (with `dim` and
// `expected_shape` for its message), then ref's dtype, ref's device and the shape.
void check_like(const char* op, const char* arg, const at::Tensor& t, const at::Tensor& ref, at::IntArrayRef shape,
                int64_t dim = -1, const char* expected_shape = "any shape");
// A tensor an op updates in place (the solver's level-1 BLAS steps): a floating tensor on `device`,
// contiguous, with at most INT32_MAX elements (Caffe's int count).  check_inplace_like: and like `ref`
// (dtype, device, shape).
void check_inplace(const char* op, const char* arg, const at::Tensor& t, c10::DeviceType device);
void check_inplace_like(const char* op, const char* arg, const at::Tensor& t, const at::Tensor& ref);
// A parameter diff for a backward op: empty when not requested (mask off), else a contiguous
// copy of the accumulator the caller passes (Caffe accumulates into param diffs), else zeros.
// The accumulator must be a tensor like `like` (same device type, device and dtype).
at::Tensor param_diff_out(const char* op, const char* arg, bool wanted, const std::optional<at::Tensor>& acc,
                          at::IntArrayRef shape, const at::Tensor& like);

// Items per task for at::parallel_for when each item costs `per_item` element operations: small
// tensors stay on the calling thread (waking the pool costs more than the work).
inline int64_t grain(int64_t per_item) { return std::max<int64_t>(1, (int64_t(1) << 15) / std::max<int64_t>(per_item, 1)); }

// SoftmaxWithLoss's normaliser (Caffe's LossLayer::GetNormalizer) for `outer` x `inner` predictions:
// LossParameter.NormalizationMode FULL 0, VALID 1 (the valid count; -1: none ignored, as FULL),
// BATCH_SIZE 2, NONE 3; at least 1.
template <typename T>
T loss_normalizer(const char* op, int64_t mode, int64_t outer, int64_t inner, int64_t valid_count) {
  T v;
  switch (mode) {
    case 0: v = T(outer * inner); break;
    case 1: v = valid_count == -1 ? T(outer * inner) : T(valid_count); break;
    case 2: v = T(outer); break;
    case 3: v = T(1); break;
    default: TORCH_CHECK(false, op, ": unknown normalization mode ", mode, " (FULL 0, VALID 1, BATCH_SIZE 2, NONE 3)");
  }
  return std::max(T(1.0), v);
}

std::pair<int64_t, int64_t> pair_arg(const char* op, const char* arg, at::IntArrayRef v, bool positive);

}  // namespace replicate

// float32 and float64, as Caffe instantiates its layers.
#define REPLICATE_DISPATCH(TYPE, NAME, ...) AT_DISPATCH_FLOATING_TYPES(TYPE, "replicate", __VA_ARGS__)
