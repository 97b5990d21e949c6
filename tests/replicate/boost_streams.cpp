// Streams of Boost 1.74's distributions drawn as Caffe 1.0 draws them (src/caffe/util/math_functions.cpp:
// a fresh distribution and a boost::variate_generator<rng_t*, Dist> per call, on a boost::mt19937), for
// tests/replicate/test_rng_boost.py to compare with replicate.rng.  Compiled by that test against the
// system's Boost headers (Debian's libboost1.74-dev), with g++ -O2 as Caffe's Makefile builds.
//
//   boost_streams KIND f|d SEED N [P1 [P2]]
// KIND: raw | normal MEAN SIGMA | uniform A B | bernoulli P | exponential LAMBDA | uniform01
// Writes to stdout: N values (uint32 for raw, int32 for bernoulli, else float/double), then N uint32
// counts of engine calls per value, then the engine's next raw output (where the stream stands).
#include <boost/math/special_functions/next.hpp>
#include <boost/random/bernoulli_distribution.hpp>
#include <boost/random/exponential_distribution.hpp>
#include <boost/random/mersenne_twister.hpp>
#include <boost/random/normal_distribution.hpp>
#include <boost/random/uniform_01.hpp>
#include <boost/random/uniform_real.hpp>
#include <boost/random/variate_generator.hpp>
#include <boost/version.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

// boost::mt19937 that counts its calls (a 32-bit engine with the same min/max, so the distributions
// take the same code paths as on Caffe's rng_t).
struct Counting {
  typedef boost::mt19937::result_type result_type;
  boost::mt19937 mt;
  uint32_t calls = 0;
  explicit Counting(uint32_t s) : mt(s) {}
  static result_type min BOOST_PREVENT_MACRO_SUBSTITUTION () { return (boost::mt19937::min)(); }
  static result_type max BOOST_PREVENT_MACRO_SUBSTITUTION () { return (boost::mt19937::max)(); }
  result_type operator()() { ++calls; return mt(); }
};

template <typename T>
static void emit(const std::vector<T>& v) { fwrite(v.data(), sizeof(T), v.size(), stdout); }

template <typename Dist, typename Out>
static void run(Counting& eng, Dist dist, long n) {
  boost::variate_generator<Counting*, Dist> gen(&eng, dist);
  std::vector<Out> values(n);
  std::vector<uint32_t> counts(n);
  for (long k = 0; k < n; ++k) {
    const uint32_t before = eng.calls;
    values[k] = static_cast<Out>(gen());
    counts[k] = eng.calls - before;
  }
  emit(values);
  emit(counts);
}

template <typename T>
static int main_t(const char* kind, Counting& eng, long n, int argc, char** argv) {
  const double p1 = argc > 5 ? atof(argv[5]) : 0, p2 = argc > 6 ? atof(argv[6]) : 0;
  if (!strcmp(kind, "normal")) {
    run<boost::normal_distribution<T>, T>(eng, boost::normal_distribution<T>(T(p1), T(p2)), n);
  } else if (!strcmp(kind, "uniform")) {  // caffe_rng_uniform: uniform_real<T>(a, caffe_nextafter(b))
    const T hi = boost::math::nextafter<T>(T(p2), std::numeric_limits<T>::max());
    run<boost::uniform_real<T>, T>(eng, boost::uniform_real<T>(T(p1), hi), n);
  } else if (!strcmp(kind, "bernoulli")) {  // caffe_rng_bernoulli<T>(n, p, int*)
    run<boost::bernoulli_distribution<T>, int32_t>(eng, boost::bernoulli_distribution<T>(T(p1)), n);
  } else if (!strcmp(kind, "exponential")) {
    run<boost::random::exponential_distribution<T>, T>(eng, boost::random::exponential_distribution<T>(T(p1)), n);
  } else if (!strcmp(kind, "uniform01")) {
    run<boost::uniform_01<T>, T>(eng, boost::uniform_01<T>(), n);
  } else {
    fprintf(stderr, "unknown kind %s\n", kind);
    return 2;
  }
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 2 && !strcmp(argv[1], "version")) {
    printf("%d\n", BOOST_VERSION);
    return 0;
  }
  if (argc < 5) {
    fprintf(stderr, "usage: %s KIND f|d SEED N [P1 [P2]]\n", argv[0]);
    return 2;
  }
  const char* kind = argv[1];
  Counting eng(static_cast<uint32_t>(strtoul(argv[3], nullptr, 10)));
  const long n = atol(argv[4]);
  int rc = 0;
  if (!strcmp(kind, "raw")) {
    std::vector<uint32_t> values(n), counts(n, 1);
    for (long k = 0; k < n; ++k) values[k] = eng();
    emit(values);
    emit(counts);
  } else if (argv[2][0] == 'f') {
    rc = main_t<float>(kind, eng, n, argc, argv);
  } else {
    rc = main_t<double>(kind, eng, n, argc, argv);
  }
  if (rc) return rc;
  const uint32_t next = eng();
  fwrite(&next, sizeof next, 1, stdout);
  return 0;
}
