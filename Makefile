# make test | make demo | make bench: each sets up everything on a fresh machine first
# (.venv, pinned deps, the extension built against the installed torch).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
# The BLAS the golden fixtures were computed with: OpenBLAS 0.3.21, Haswell kernels, 1 thread.
# Exact mode pins these itself when it loads the library; the tests export them as well.
PARITY_ENV := OPENBLAS_CORETYPE=Haswell OPENBLAS_NUM_THREADS=1
CSRC := $(shell find csrc -name '*.cpp' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh')
CU := $(shell find csrc -name '*.cu')

.PHONY: test demo demo-full bench caffe deps build openblas boost cuda-compile clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.deps: requirements.txt | $(PY)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -r requirements.txt
	touch $@

deps: $(VENV)/.deps

$(VENV)/.built: $(VENV)/.deps setup.py $(CSRC)
	$(PY) -m pip install -q --no-build-isolation --no-deps -e .
	touch $@

# The package's bytecode, compiled once here: where PYTHONDONTWRITEBYTECODE is set (as on these
# machines) Python never caches it, and every process would compile our modules again at import
# (about 40 ms of a `python -m replicate train` start; bench/startup.py). Python checks each .pyc
# against its source, so an edit after this is compiled at import as before, never run stale.
PYSRC := $(shell find replicate prototxt_like data_prep -name '*.py')
$(VENV)/.pyc: $(PYSRC) | $(VENV)/.built
	$(PY) -m compileall -q replicate prototxt_like data_prep >/dev/null
	touch $@

build: $(VENV)/.built $(VENV)/.pyc

# Debian's OpenBLAS for exact-BLAS parity (installed when running as root and missing).
openblas:
	@if ! ls /usr/lib/*-linux-gnu/openblas-pthread/libopenblas.so.0 >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's libopenblas0-pthread"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenblas0-pthread) >/dev/null; \
	  else echo "note: Debian's libopenblas0-pthread is missing; exact-BLAS parity tests will skip"; fi; \
	fi

# Boost 1.74's headers (Debian's libboost1.74-dev, the Boost Caffe 1.0 was built with): the
# generator tests compile boost.random itself and compare its streams with replicate.rng.
boost:
	@if [ ! -f /usr/include/boost/random/normal_distribution.hpp ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's libboost1.74-dev"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libboost1.74-dev) >/dev/null; \
	  else echo "note: Boost 1.74's headers are missing; the generator-against-boost tests will fail"; fi; \
	fi

# Every CUDA file compiles to an object (no GPU, no torch headers needed), so CUDA code cannot rot.
cuda-compile:
	@if command -v nvcc >/dev/null; then \
	  mkdir -p build/cuda-check; \
	  for f in $(CU); do \
	    echo "nvcc -c $$f"; \
	    nvcc -c -O3 --fmad=false -std=c++17 -Icsrc $$f -o build/cuda-check/$$(basename $$f .cu).o || exit 1; \
	  done; \
	else echo "nvcc not found: skipping the CUDA compile check"; fi

test: build openblas boost cuda-compile
	$(PARITY_ENV) $(PY) -m pytest tests -q

# The whole pipeline on built-in synthetic data, to Figure 2 (python -m replicate demo --help).
# Reruns continue where a stopped demo left off; DEMO_OUT=... for another folder.
DEMO_OUT ?= demo
demo: build openblas
	$(PY) -m replicate demo --out $(DEMO_OUT)

# The same 54 networks, each trained 3x longer (3,600 iterations): bases at their plateau and the
# transferred networks trained as long as their bases, as in the paper (README, make demo-full).
DEMO_FULL_OUT ?= demo-full
demo-full: build openblas
	$(PY) -m replicate demo --full --out $(DEMO_FULL_OUT)

# Caffe 1.0's own `caffe` tool (CPU), built from Debian's source package into build/caffe, so that
# make bench times Caffe beside ours in the same run (bench/caffe/build.sh; about 3-4 minutes once).
# A machine that cannot build it still benches: the JSON then says Caffe was not measured.
caffe:
	@bash bench/caffe/build.sh build/caffe >/dev/null || echo "note: Caffe was not built (above); make bench will not measure it"

bench: build openblas caffe
	$(PY) bench/run.py --out bench/results.json

clean:
	rm -rf build *.egg-info replicate/_C*.so $(VENV)/.built $(VENV)/.pyc
