// Fast mode's Winograd convolution: F(2x2, 3x3) (Lavin & Gray, "Fast Algorithms for Convolutional
// Neural Networks", 2016), the algorithm Caffe's `engine: CUDNN` could pick on a GPU
// (CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD).  The same function as Caffe's convolution computed with
// 2.25x fewer multiplications: each output tile of 2x2 is
//     Y = A^T [ sum_c (G g_kc G^T) . (B^T d_c B) ] A
// over the 4x4 input tiles d_c (stride 2, overlapping by 2), so that the sum over channels is 16
// GEMMs, one per position of the 4x4 transformed tile, each (out channels x in channels) times
// (in channels x tiles).  The backward is the same algebra transposed:
//     dM = A dY A^T,  dU = sum_tiles dM V^T (16 GEMMs),  dV = U^T dM (16 GEMMs),
//     dg = G^T dU G,  dx += B dV B^T (the tiles' overlaps added).
// No bit promise: the sums run in another order and through the transforms' additions (their
// factors 1, -1 and 1/2 are exact), so the results differ from Caffe's by float rounding; fast
// mode's tolerance tests cover it (tests/ops/test_conv_winograd.py).
//
// Work goes in chunks of 16 images, each GEMM column one tile of the 16 images side by side, so that
// a GEMM has 16 x tiles columns and the transforms work on vectors of 16 lanes (one per image:
// GCC's vector extensions, compiled for AVX-512, AVX2 and the baseline, chosen at load time; the
// same operations, so the same bits, on each).  The GEMMs are single-threaded; the chunks go in
// blocks, each block in phases split over the threads (block_chunks).  The parameter diffs are
// summed per chunk in the Winograd domain, transformed back, and the chunks' sums added in chunk
// order at the end, as the im2col path sums its blocks of 16: the thread count cannot change a bit.
#include "conv_winograd.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "../blas.h"
#include "../common.h"
#include "relu.h"

namespace replicate {
namespace cpu {
namespace winograd {
namespace {

constexpr int64_t kMinChannels = 16;  // per group, in and out: smaller GEMMs gain little
constexpr int64_t kMaxOutput = 32;    // output height and width at most this: measured territory
constexpr int L = 16;                 // images per chunk: a tile's lanes
constexpr int64_t kMinFill = 12;      // images a chunk on average, at least (applies)

typedef float vf __attribute__((vector_size(L * sizeof(float))));
inline vf ld(const float* p) {
  vf v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void st(float* p, vf v) { std::memcpy(p, &v, sizeof v); }

#define REPLICATE_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

struct Plan {
  int64_t oh, ow, th, tw, T, P, Cg, Kg, Hp, Wp, ph, pw, H, W;
};

Plan make_plan(const Conv& c) {
  Plan p;
  p.oh = c.g.out_h();
  p.ow = c.g.out_w();
  p.th = (p.oh + 1) / 2;
  p.tw = (p.ow + 1) / 2;
  p.T = p.th * p.tw;
  p.P = p.T * L;  // GEMM columns: tile t's lane j is column t * L + j
  p.Cg = c.g.channels / c.group;
  p.Kg = c.M();
  p.Hp = 2 * p.th + 2;  // the padded input the tiles read: out = in + 2 pad - 2 <= 2 th
  p.Wp = 2 * p.tw + 2;
  p.ph = c.g.pad_h;
  p.pw = c.g.pad_w;
  p.H = c.g.height;
  p.W = c.g.width;
  return p;
}

// A lane buffer's floats: the padded input (Hp x Wp) or the output tiles (2th x 2tw), L lanes each.
int64_t lanes_size(const Plan& p) { return std::max(p.Hp * p.Wp, 4 * p.T) * L; }

// A chunk loop's workspace, taken per call from the caching allocator (csrc/cpu_cache.cpp), which
// hands the same blocks back from call to call without touching the system.
struct Work {
  at::Tensor v, m, lanes, row, du;
};
float* buf(at::Tensor& t, int64_t n) {
  if (!t.defined() || t.numel() < n) t = at::empty({std::max<int64_t>(n, 1)}, at::TensorOptions().dtype(at::kFloat));
  return t.data_ptr<float>();
}

// U = G g G^T for every filter: (group, 16, Kg, Cg).
at::Tensor transform_weights(const Conv& c, const Plan& p, const float* w) {
  at::Tensor u = at::empty({c.group, 16, p.Kg, p.Cg}, at::TensorOptions().dtype(at::kFloat));
  float* ud = u.data_ptr<float>();
  at::parallel_for(0, c.out_channels, grain(p.Cg * 64), [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k) {
      const int64_t gi = k / p.Kg, kk = k % p.Kg;
      for (int64_t cc = 0; cc < p.Cg; ++cc) {
        const float* g = w + (k * p.Cg + cc) * 9;
        float t[4][3], r[4][4];
        for (int j = 0; j < 3; ++j) {
          t[0][j] = g[j];
          t[1][j] = 0.5f * (g[j] + g[3 + j] + g[6 + j]);
          t[2][j] = 0.5f * (g[j] - g[3 + j] + g[6 + j]);
          t[3][j] = g[6 + j];
        }
        for (int i = 0; i < 4; ++i) {
          r[i][0] = t[i][0];
          r[i][1] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
          r[i][2] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
          r[i][3] = t[i][2];
        }
        for (int e = 0; e < 16; ++e) ud[((gi * 16 + e) * p.Kg + kk) * p.Cg + cc] = r[e / 4][e % 4];
      }
    }
  });
  return u;
}

// dg = G^T dU G, dU (16, Kg, Cg) of one group, into the weight-shaped rows of that group.
void untransform_weight_diff(const Plan& p, const float* du, float* gw) {
  for (int64_t kk = 0; kk < p.Kg; ++kk)
    for (int64_t cc = 0; cc < p.Cg; ++cc) {
      float d[4][4], t[3][4];
      for (int e = 0; e < 16; ++e) d[e / 4][e % 4] = du[(e * p.Kg + kk) * p.Cg + cc];
      for (int j = 0; j < 4; ++j) {
        t[0][j] = d[0][j] + 0.5f * (d[1][j] + d[2][j]);
        t[1][j] = 0.5f * (d[1][j] - d[2][j]);
        t[2][j] = 0.5f * (d[1][j] + d[2][j]) + d[3][j];
      }
      float* g = gw + (kk * p.Cg + cc) * 9;
      for (int a = 0; a < 3; ++a) {
        g[a * 3 + 0] = t[a][0] + 0.5f * (t[a][1] + t[a][2]);
        g[a * 3 + 1] = 0.5f * (t[a][1] - t[a][2]);
        g[a * 3 + 2] = 0.5f * (t[a][1] + t[a][2]) + t[a][3];
      }
    }
}

// One channel of `count` images (`x`, images `in_dim` apart) into the padded lane buffer xp
// (Hp x Wp x L; the padding and the lanes past `count` zero).
void gather_input(const Plan& p, const float* x, int64_t in_dim, int64_t count, float* xp) {
  std::fill_n(xp, p.Hp * p.Wp * L, 0.f);
  for (int64_t j = 0; j < count; ++j)
    for (int64_t y = 0; y < p.H; ++y) {
      const float* s = x + j * in_dim + y * p.W;
      float* d = xp + ((y + p.ph) * p.Wp + p.pw) * L + j;
      for (int64_t xx = 0; xx < p.W; ++xx) d[xx * L] = s[xx];
    }
}

// V = B^T d B for every tile of the lane buffer: v + e * stride + t * L for the 16 positions e.
REPLICATE_CLONES void input_tiles(const Plan& p, const float* xp, float* v, int64_t stride) {
  for (int64_t ty = 0; ty < p.th; ++ty)
    for (int64_t tx = 0; tx < p.tw; ++tx) {
      const float* base = xp + (2 * ty * p.Wp + 2 * tx) * L;
      vf t[4][4];
      for (int s = 0; s < 4; ++s) {
        const vf d0 = ld(base + s * L), d1 = ld(base + (p.Wp + s) * L), d2 = ld(base + (2 * p.Wp + s) * L),
                 d3 = ld(base + (3 * p.Wp + s) * L);
        t[0][s] = d0 - d2;
        t[1][s] = d1 + d2;
        t[2][s] = d2 - d1;
        t[3][s] = d1 - d3;
      }
      float* o = v + (ty * p.tw + tx) * L;
      for (int i = 0; i < 4; ++i) {
        st(o + (i * 4 + 0) * stride, t[i][0] - t[i][2]);
        st(o + (i * 4 + 1) * stride, t[i][1] + t[i][2]);
        st(o + (i * 4 + 2) * stride, t[i][2] - t[i][1]);
        st(o + (i * 4 + 3) * stride, t[i][1] - t[i][3]);
      }
    }
}

// Y = A^T M A for every tile of one output channel (m + e * stride + t * L) into the lane buffer
// yb (2th x 2tw x L).
REPLICATE_CLONES void output_tiles(const Plan& p, const float* m, int64_t stride, float* yb) {
  const int64_t w2 = 2 * p.tw;
  for (int64_t ty = 0; ty < p.th; ++ty)
    for (int64_t tx = 0; tx < p.tw; ++tx) {
      const float* s = m + (ty * p.tw + tx) * L;
      vf u0[4], u1[4];
      for (int j = 0; j < 4; ++j) {
        const vf a = ld(s + j * stride), b = ld(s + (4 + j) * stride), cc = ld(s + (8 + j) * stride),
                 d = ld(s + (12 + j) * stride);
        u0[j] = a + b + cc;
        u1[j] = b - cc - d;
      }
      float* o = yb + (2 * ty * w2 + 2 * tx) * L;
      st(o, u0[0] + u0[1] + u0[2]);
      st(o + L, u0[1] - u0[2] - u0[3]);
      st(o + w2 * L, u1[0] + u1[1] + u1[2]);
      st(o + (w2 + 1) * L, u1[1] - u1[2] - u1[3]);
    }
}

// The lane buffer yb's first `count` lanes plus the bias into one channel of `count` images (`out`,
// images `out_dim` apart), rectified in place when `slope` is given.
void scatter_output(const Plan& p, const float* yb, int64_t count, float bias, float* out, int64_t out_dim,
                    const float* slope) {
  const int64_t w2 = 2 * p.tw;
  for (int64_t j = 0; j < count; ++j) {
    float* o = out + j * out_dim;
    for (int64_t y = 0; y < p.oh; ++y) {
      const float* s = yb + y * w2 * L + j;
      for (int64_t x = 0; x < p.ow; ++x) o[y * p.ow + x] = s[x * L] + bias;
    }
    if (slope) relu_value_in_place(o, p.oh * p.ow, *slope);
  }
}

// One channel's top diff of `count` images (`t`, images `out_dim` apart; multiplied by the ReLU's
// backward against `rt` when given) into the lane buffer dy (2th x 2tw x L, zero elsewhere).
// Returns its sum, image by image, for the bias diff.  `row`: ow floats.
float gather_top_diff(const Plan& p, const float* t, const float* rt, float slope, int64_t count, int64_t out_dim,
                      float* dy, float* row) {
  const int64_t w2 = 2 * p.tw;
  std::fill_n(dy, 2 * p.th * w2 * L, 0.f);
  float sum = 0.f;
  for (int64_t j = 0; j < count; ++j)
    for (int64_t y = 0; y < p.oh; ++y) {
      const float* s = t + j * out_dim + y * p.ow;
      if (rt) {
        relu_grad_range(s, rt + j * out_dim + y * p.ow, row, p.ow, slope);
        s = row;
      }
      float* d = dy + y * w2 * L + j;
      for (int64_t x = 0; x < p.ow; ++x) {
        d[x * L] = s[x];
        sum += s[x];
      }
    }
  return sum;
}

// dM = A dY A^T for every tile of the lane buffer dy, to dm + e * stride + t * L.
REPLICATE_CLONES void top_diff_tiles(const Plan& p, const float* dy, float* dm, int64_t stride) {
  const int64_t w2 = 2 * p.tw;
  for (int64_t ty = 0; ty < p.th; ++ty)
    for (int64_t tx = 0; tx < p.tw; ++tx) {
      const float* s = dy + (2 * ty * w2 + 2 * tx) * L;
      const vf a0 = ld(s), a1 = ld(s + L), b0 = ld(s + w2 * L), b1 = ld(s + (w2 + 1) * L);
      const vf w[4][2] = {{a0, a1}, {a0 + b0, a1 + b1}, {a0 - b0, a1 - b1}, {-b0, -b1}};
      float* o = dm + (ty * p.tw + tx) * L;
      for (int i = 0; i < 4; ++i) {
        st(o + (i * 4 + 0) * stride, w[i][0]);
        st(o + (i * 4 + 1) * stride, w[i][0] + w[i][1]);
        st(o + (i * 4 + 2) * stride, w[i][0] - w[i][1]);
        st(o + (i * 4 + 3) * stride, -w[i][1]);
      }
    }
}

// dx = sum over the tiles of B dV B^T (dv + e * stride + t * L), the overlaps added in tile order,
// into the padded lane buffer xp (Hp x Wp x L).
REPLICATE_CLONES void input_diff_tiles(const Plan& p, const float* dv, int64_t stride, float* xp) {
  std::fill_n(xp, p.Hp * p.Wp * L, 0.f);
  for (int64_t ty = 0; ty < p.th; ++ty)
    for (int64_t tx = 0; tx < p.tw; ++tx) {
      const float* s = dv + (ty * p.tw + tx) * L;
      vf z[4][4];  // z_i = dV_i B^T
      for (int i = 0; i < 4; ++i) {
        const vf a = ld(s + (i * 4 + 0) * stride), b = ld(s + (i * 4 + 1) * stride),
                 cc = ld(s + (i * 4 + 2) * stride), d = ld(s + (i * 4 + 3) * stride);
        z[i][0] = a;
        z[i][1] = b - cc + d;
        z[i][2] = b + cc - a;
        z[i][3] = -d;
      }
      float* o = xp + (2 * ty * p.Wp + 2 * tx) * L;
      for (int b = 0; b < 4; ++b) {  // B z, added at the tile's place
        float* r = o + b * L;
        st(r, ld(r) + z[0][b]);
        st(r + p.Wp * L, ld(r + p.Wp * L) + (z[1][b] - z[2][b] + z[3][b]));
        st(r + 2 * p.Wp * L, ld(r + 2 * p.Wp * L) + (z[1][b] + z[2][b] - z[0][b]));
        st(r + 3 * p.Wp * L, ld(r + 3 * p.Wp * L) - z[3][b]);
      }
    }
}

// The padded lane buffer's image part, first `count` lanes, into one channel of `count` images
// (`gx`, images `in_dim` apart).
void scatter_input_diff(const Plan& p, const float* xp, int64_t count, float* gx, int64_t in_dim) {
  for (int64_t j = 0; j < count; ++j)
    for (int64_t y = 0; y < p.H; ++y) {
      const float* s = xp + ((y + p.ph) * p.Wp + p.pw) * L + j;
      float* d = gx + j * in_dim + y * p.W;
      for (int64_t xx = 0; xx < p.W; ++xx) d[xx] = s[xx * L];
    }
}


// The phase V = B^T d B of chunks q0 .. q0 + nb - 1: every (chunk, group, input channel) of x into
// its chunk's V (V[qb] + group * vsz), split over the threads.
void input_phase(const Conv& c, const Plan& p, const float* xd, int64_t q0, int64_t nb,
                 const std::vector<float*>& V, int64_t vsz) {
  const int64_t G = c.group, in_dim = c.in_dim();
  at::parallel_for(0, nb * G * p.Cg, 1, [&](int64_t t0, int64_t t1) {
    Work s;
    float* lanes = buf(s.lanes, lanes_size(p));
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t qb = t / (G * p.Cg), gi = t / p.Cg % G, cc = t % p.Cg, n0 = (q0 + qb) * L;
      gather_input(p, xd + n0 * in_dim + (gi * p.Cg + cc) * p.H * p.W, in_dim, std::min<int64_t>(L, c.num - n0),
                   lanes);
      input_tiles(p, lanes, V[qb] + gi * vsz + cc * p.P, p.Cg * p.P);
    }
  });
}

}  // namespace

bool applies(const Conv& c, const at::Tensor& x) {
  // Read at every call (a getenv next to a convolution costs nothing), so that a test can switch it.
  const char* v = std::getenv("REPLICATE_CONV_WINOGRAD");
  if (v && std::strcmp(v, "0") == 0) return false;
  const bool always = v && std::strcmp(v, "always") == 0;
  const ConvGeom& g = c.g;
  const bool shape = !blas::caffe_order() && x.scalar_type() == at::kFloat && g.kernel_h == 3 && g.kernel_w == 3 &&
                     g.stride_h == 1 && g.stride_w == 1 && g.dilation_h == 1 && g.dilation_w == 1 &&
                     g.channels / c.group >= kMinChannels && c.M() >= kMinChannels && g.out_h() > 0 &&
                     g.out_w() > 0 && g.out_h() <= kMaxOutput && g.out_w() <= kMaxOutput;
  if (!shape) return false;
  // A chunk costs the same however few of its L lanes hold an image: with 1 image a chunk took
  // 18 ms where oneDNN took 1.6 ms (CaffeNet's conv3 forward, one thread); at 12 images they were
  // level (21.2 against 21.3 ms; 24: 40.3 against 40.6), at 16 Winograd led (20.0 against 26.3).
  // So it takes a batch that fills its chunks at least 3/4 on average. The rule reads the batch
  // only, never the thread count, so that the number of threads still changes no bit.
  const int64_t chunks = (c.num + L - 1) / L;
  return always || c.num >= kMinFill * chunks;
}

// Chunks go in blocks of as many chunks as there are threads, each block in phases (the
// transforms of every (chunk, channel), then the GEMMs of every (chunk, group, position e), then
// the transforms back), each phase split over the threads. Every element is computed by the same
// operations in the same order whichever thread does it and however the chunks are blocked, so the
// thread count changes no bit; and a batch of few chunks still keeps every thread busy (16 cores
// and one chunk: the GEMMs of the 16 positions e side by side).
//
// Each chunk of a block has its own buffers, allocated apart (not one buffer for the block):
// glibc's malloc serves an allocation below 32 MB from its heap once one of that size has been
// freed, but maps a larger one afresh at every call, and touching its fresh pages made a
// 2-thread conv3 forward at batch 32 about 50% slower when a block's buffers were one allocation.
// Each thread allocates its chunk's buffers, so that they come from its own malloc arena, which
// keeps them from call to call: allocated by one thread, 16 chunks' buffers were given back to the
// system at every call, and a 16-core conv3 forward at batch 256 took 93.5 ms against 47.5 with
// the caching allocator (ops.enable_cpu_cache, which nets use, and which avoids all of this).
static int64_t block_chunks(int64_t chunks) {
  return std::max<int64_t>(1, std::min<int64_t>(chunks, at::get_num_threads()));
}

at::Tensor forward(const Conv& c, const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                   std::optional<float> relu_slope) {
  const Plan p = make_plan(c);
  at::Tensor top = at::empty({c.num, c.out_channels, p.oh, p.ow}, x.options());
  if (c.num == 0) return top;
  const at::Tensor u = transform_weights(c, p, w.data_ptr<float>());
  const float *xd = x.data_ptr<float>(), *ud = u.data_ptr<float>(), *bd = b.defined() ? b.data_ptr<float>() : nullptr;
  const float* slope = relu_slope ? &*relu_slope : nullptr;
  float* td = top.data_ptr<float>();
  const int64_t out_dim = c.out_dim(), S = p.oh * p.ow, chunks = (c.num + L - 1) / L;
  const int64_t G = c.group, B = block_chunks(chunks), lanes_n = lanes_size(p);
  const int64_t vsz = 16 * p.Cg * p.P, msz = 16 * p.Kg * p.P;  // one (chunk, group)'s V and M
  std::vector<Work> slot(B);  // one chunk's buffers each, allocated apart (block_chunks)
  std::vector<float*> V(B), M(B);
  at::parallel_for(0, B, 1, [&](int64_t a, int64_t z) {
    for (int64_t qb = a; qb < z; ++qb) {
      V[qb] = buf(slot[qb].v, G * vsz);
      M[qb] = buf(slot[qb].m, G * msz);
    }
  });
  for (int64_t q0 = 0; q0 < chunks; q0 += B) {
    const int64_t nb = std::min(B, chunks - q0);
    input_phase(c, p, xd, q0, nb, V, vsz);  // V = B^T d B
    at::parallel_for(0, nb * G * 16, 1, [&](int64_t t0, int64_t t1) {  // M_e = U_e V_e
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t qb = t / (G * 16), gi = t / 16 % G, e = t % 16;
        blas::gemm_ld<float>(blas::NoTrans, blas::NoTrans, p.Kg, p.P, p.Cg, 1.f, ud + (gi * 16 + e) * p.Kg * p.Cg,
                             p.Cg, V[qb] + gi * vsz + e * p.Cg * p.P, p.P, 0.f, M[qb] + gi * msz + e * p.Kg * p.P,
                             p.P);
      }
    });
    at::parallel_for(0, nb * G * p.Kg, 1, [&](int64_t t0, int64_t t1) {  // Y = A^T M A
      Work s;
      float* lanes = buf(s.lanes, lanes_n);
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t qb = t / (G * p.Kg), gi = t / p.Kg % G, kk = t % p.Kg, k = gi * p.Kg + kk, n0 = (q0 + qb) * L;
        output_tiles(p, M[qb] + gi * msz + kk * p.P, p.Kg * p.P, lanes);
        scatter_output(p, lanes, std::min<int64_t>(L, c.num - n0), bd ? bd[k] : 0.f, td + n0 * out_dim + k * S,
                       out_dim, slope);
      }
    });
  }
  return top;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> backward(const Conv& c, const at::Tensor& td, const at::Tensor& x,
                                                        const at::Tensor& w, const at::Tensor& relu_top,
                                                        float relu_slope, std::array<bool, 3> output_mask,
                                                        const std::optional<at::Tensor>& weight_diff,
                                                        const std::optional<at::Tensor>& bias_diff) {
  const char* op = "conv_backward";
  const Plan p = make_plan(c);
  at::Tensor gw = param_diff_out(op, "weight_diff", output_mask[1], weight_diff, w.sizes(), x);
  at::Tensor gb = param_diff_out(op, "bias_diff", output_mask[2], bias_diff, {c.out_channels}, x);
  at::Tensor gx = output_mask[0] ? at::empty(x.sizes(), x.options()) : at::empty({0}, x.options());
  const bool want_x = output_mask[0], want_w = output_mask[1], want_b = output_mask[2];
  if (c.num == 0 || !(want_x || want_w || want_b)) return {gx, gw, gb};
  const at::Tensor u = transform_weights(c, p, w.data_ptr<float>());
  const float *xd = x.data_ptr<float>(), *ud = u.data_ptr<float>(), *tdd = td.data_ptr<float>();
  const float* rtd = relu_top.defined() ? relu_top.data_ptr<float>() : nullptr;
  float* gxd = want_x ? gx.data_ptr<float>() : nullptr;
  const int64_t in_dim = c.in_dim(), out_dim = c.out_dim(), S = p.oh * p.ow, in_S = p.H * p.W;
  const int64_t chunks = (c.num + L - 1) / L;
  const int64_t wcount = want_w ? gw.numel() : 0, bcount = want_b ? gb.numel() : 0;
  const at::Tensor partial = at::empty({chunks, wcount + bcount}, x.options());
  float* const pd = partial.data_ptr<float>();
  const int64_t G = c.group, B = block_chunks(chunks), lanes_n = lanes_size(p);
  const int64_t vsz = 16 * p.Cg * p.P, msz = 16 * p.Kg * p.P, usz = 16 * p.Kg * p.Cg;  // per (chunk, group)
  const bool tiles = want_w || want_x;
  std::vector<Work> slot(B);  // one chunk's buffers each, allocated apart (block_chunks)
  std::vector<float*> V(B), DM(B), DU(B);
  at::parallel_for(0, B, 1, [&](int64_t a, int64_t z) {
    for (int64_t qb = a; qb < z; ++qb) {
      V[qb] = tiles ? buf(slot[qb].v, G * vsz) : nullptr;
      DM[qb] = tiles ? buf(slot[qb].m, G * msz) : nullptr;
      DU[qb] = want_w ? buf(slot[qb].du, G * usz) : nullptr;
    }
  });
  for (int64_t q0 = 0; q0 < chunks; q0 += B) {
    const int64_t nb = std::min(B, chunks - q0);
    at::parallel_for(0, nb * G * p.Kg, 1, [&](int64_t t0, int64_t t1) {  // dM = A dY A^T; the bias sums
      Work s;
      float* lanes = buf(s.lanes, lanes_n);
      float* row = buf(s.row, p.ow);
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t qb = t / (G * p.Kg), gi = t / p.Kg % G, kk = t % p.Kg, k = gi * p.Kg + kk;
        const int64_t q = q0 + qb, n0 = q * L, off = n0 * out_dim + k * S;
        const float sum = gather_top_diff(p, tdd + off, rtd ? rtd + off : nullptr, relu_slope,
                                          std::min<int64_t>(L, c.num - n0), out_dim, lanes, row);
        if (want_b) pd[q * (wcount + bcount) + wcount + k] = sum;
        if (tiles) top_diff_tiles(p, lanes, DM[qb] + gi * msz + kk * p.P, p.Kg * p.P);
      }
    });
    if (!tiles) continue;
    if (want_w) input_phase(c, p, xd, q0, nb, V, vsz);  // V = B^T d B
    at::parallel_for(0, nb * G * 16, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t qb = t / (G * 16), gi = t / 16 % G, e = t % 16;
        float* v = V[qb] + gi * vsz + e * p.Cg * p.P;
        const float* dm = DM[qb] + gi * msz + e * p.Kg * p.P;
        if (want_w)  // dU_e = dM_e V_e^T, before V_e's space takes dV_e
          blas::gemm_ld<float>(blas::NoTrans, blas::Trans, p.Kg, p.Cg, p.P, 1.f, dm, p.P, v, p.P, 0.f,
                               DU[qb] + gi * usz + e * p.Kg * p.Cg, p.Cg);
        if (want_x)  // dV_e = U_e^T dM_e
          blas::gemm_ld<float>(blas::Trans, blas::NoTrans, p.Cg, p.P, p.Kg, 1.f, ud + (gi * 16 + e) * p.Kg * p.Cg,
                               p.Cg, dm, p.P, 0.f, v, p.P);
      }
    });
    if (want_w)
      at::parallel_for(0, nb * G, 1, [&](int64_t t0, int64_t t1) {  // dg = G^T dU G, the chunk's rows
        for (int64_t t = t0; t < t1; ++t) {
          const int64_t qb = t / G, gi = t % G;
          untransform_weight_diff(p, DU[qb] + gi * usz,
                                  pd + (q0 + qb) * (wcount + bcount) + gi * p.Kg * p.Cg * 9);
        }
      });
    if (want_x)
      at::parallel_for(0, nb * G * p.Cg, 1, [&](int64_t t0, int64_t t1) {  // dx = sum of B dV B^T
        Work s;
        float* lanes = buf(s.lanes, lanes_n);
        for (int64_t t = t0; t < t1; ++t) {
          const int64_t qb = t / (G * p.Cg), gi = t / p.Cg % G, cc = t % p.Cg, n0 = (q0 + qb) * L;
          input_diff_tiles(p, V[qb] + gi * vsz + cc * p.P, p.Cg * p.P, lanes);
          scatter_input_diff(p, lanes, std::min<int64_t>(L, c.num - n0), gxd + n0 * in_dim + (gi * p.Cg + cc) * in_S,
                             in_dim);
        }
      });
  }
  // the chunks' sums in chunk order; the elements split over the threads
  float *gwd = want_w ? gw.data_ptr<float>() : nullptr, *gbd = want_b ? gb.data_ptr<float>() : nullptr;
  at::parallel_for(0, wcount + bcount, 1 << 14, [&](int64_t j0, int64_t j1) {
    for (int64_t q = 0; q < chunks; ++q) {
      const float* r = pd + q * (wcount + bcount);
      for (int64_t j = j0; j < std::min(j1, wcount); ++j) gwd[j] += r[j];
      for (int64_t j = std::max(j0, wcount); j < j1; ++j) gbd[j - wcount] += r[j];
    }
  });
  return {gx, gw, gb};
}

}  // namespace winograd
}  // namespace cpu
}  // namespace replicate
