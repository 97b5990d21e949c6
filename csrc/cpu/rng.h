// Caffe 1.0's random numbers (src/caffe/util/math_functions.cpp, include/caffe/util/rng.hpp): a
// boost::mt19937 and the Boost 1.74 distributions Caffe draws through boost::variate_generator,
// value for value.  The generator state lives in a caller-owned int32 tensor of 625 elements (624
// key words as uint32 bit patterns, then the position), the layout of numpy's MT19937 state, so
// Python keeps, copies and saves it (replicate/rng.py) and these functions advance it in place.
#pragma once
#include <ATen/ATen.h>

namespace replicate {
namespace rng {

// init_genrand(seed): boost::mt19937(seed) and numpy's legacy seeding.
void seed(at::Tensor& state, uint32_t seed);
// n raw 32-bit outputs (int64 tensor, values 0 .. 2^32 - 1): caffe_rng_rand() n times.
at::Tensor raw(at::Tensor& state, int64_t n);
// caffe_rng_uniform<Dtype>(n, a, b): boost::uniform_real<Dtype>(a, nextafter(b, max)).
at::Tensor uniform(at::Tensor& state, int64_t n, double a, double b, bool is_double);
// caffe_rng_gaussian<Dtype>(n, mean, sigma): boost::normal_distribution<Dtype> (128-layer ziggurat).
at::Tensor gaussian(at::Tensor& state, int64_t n, double mean, double sigma, bool is_double);
// caffe_rng_bernoulli<Dtype>(n, p, int*): boost::bernoulli_distribution<Dtype>; int32 0/1.
at::Tensor bernoulli(at::Tensor& state, int64_t n, double p, bool is_double);
// boost::exponential_distribution<Dtype>(lambda) (256-layer ziggurat) and uniform_01<Dtype>: not
// called by Caffe directly, exposed so the tests can check the normal's tail and wedge parts alone.
at::Tensor exponential(at::Tensor& state, int64_t n, double lambda, bool is_double);
at::Tensor uniform01(at::Tensor& state, int64_t n, bool is_double);

}  // namespace rng
}  // namespace replicate
