#include "common.h"

#include <sstream>

namespace replicate {

std::string shape_str(at::IntArrayRef s) {
  std::ostringstream os;
  os << "(";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << ")";
  return os.str();
}

void check_tensor(const char* op, const char* arg, const at::Tensor& t, int64_t dim, const char* expected_shape,
                  c10::DeviceType device) {
  TORCH_CHECK(t.defined(), op, ": argument '", arg, "' is undefined; expected ", expected_shape);
  TORCH_CHECK(t.device().type() == device, op, ": argument '", arg, "' is on ", t.device(),
              "; this kernel expects a ", device == c10::DeviceType::CPU ? "CPU" : "CUDA", " tensor of shape ",
              expected_shape);
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble, op,
              ": argument '", arg, "' has dtype ", t.scalar_type(),
              "; expected float32 or float64 of shape ", expected_shape);
  TORCH_CHECK(dim < 0 || t.dim() == dim, op, ": argument '", arg, "' has shape ",
              shape_str(t.sizes()), "; expected ", expected_shape);
}

void check_same_device(const char* op, const char* arg, const at::Tensor& t, const at::Tensor& ref) {
  TORCH_CHECK(t.device() == ref.device(), op, ": argument '", arg, "' is on ", t.device(), "; expected ",
              ref.device(), " like the input");
}

void check_same_dtype(const char* op, const char* arg, const at::Tensor& t, const at::Tensor& ref) {
  TORCH_CHECK(t.scalar_type() == ref.scalar_type(), op, ": argument '", arg, "' has dtype ",
              t.scalar_type(), "; expected ", ref.scalar_type(), " like the input");
}

void check_shape(const char* op, const char* arg, const at::Tensor& t, at::IntArrayRef shape) {
  TORCH_CHECK(t.sizes() == shape, op, ": argument '", arg, "' has shape ", shape_str(t.sizes()),
              "; expected ", shape_str(shape));
}

void check_int_tensor(const char* op, const char* arg, const at::Tensor& t, at::ScalarType st) {
  TORCH_CHECK(t.defined() && t.device().is_cpu() && t.scalar_type() == st, op, ": argument '", arg,
              "' must be a CPU tensor of dtype ", st, ", got ",
              t.defined() ? std::string(c10::toString(t.scalar_type())) : std::string("undefined"));
}

void check_like(const char* op, const char* arg, const at::Tensor& t, const at::Tensor& ref, at::IntArrayRef shape,
                int64_t dim, const char* expected_shape) {
  check_tensor(op, arg, t, dim, expected_shape, ref.device().type());
  check_same_dtype(op, arg, t, ref);
  check_same_device(op, arg, t, ref);
  check_shape(op, arg, t, shape);
}

void check_inplace(const char* op, const char* arg, const at::Tensor& t, c10::DeviceType device) {
  check_tensor(op, arg, t, -1, "any shape", device);
  TORCH_CHECK(t.is_contiguous(), op, ": ", arg, " must be contiguous (it is updated in place)");
  TORCH_CHECK(t.numel() <= INT32_MAX, op, ": ", arg, " has more elements than Caffe's int count");
}

void check_inplace_like(const char* op, const char* arg, const at::Tensor& t, const at::Tensor& ref) {
  check_inplace(op, arg, t, ref.device().type());
  check_same_dtype(op, arg, t, ref);
  check_same_device(op, arg, t, ref);
  check_shape(op, arg, t, ref.sizes());
}

at::Tensor param_diff_out(const char* op, const char* arg, bool wanted, const std::optional<at::Tensor>& acc,
                          at::IntArrayRef shape, const at::Tensor& like) {
  if (!wanted) return at::empty({0}, like.options());
  if (!acc) return at::zeros(shape, like.options());
  check_like(op, arg, *acc, like, shape, static_cast<int64_t>(shape.size()), shape_str(shape).c_str());
  return acc->clone(at::MemoryFormat::Contiguous);
}

std::pair<int64_t, int64_t> pair_arg(const char* op, const char* arg, at::IntArrayRef v, bool positive) {
  TORCH_CHECK(v.size() == 2, op, ": argument '", arg, "' must have 2 values (h, w), got ", v.size());
  TORCH_CHECK(positive ? (v[0] > 0 && v[1] > 0) : (v[0] >= 0 && v[1] >= 0), op, ": argument '", arg,
              "' must be ", positive ? "positive" : "non-negative", ", got ", shape_str(v));
  return {v[0], v[1]};
}

}  // namespace replicate
