#!/usr/bin/env bash
# Builds Caffe's own `caffe` tool (CPU only) on this machine, for make bench's side-by-side timing
# (bench/caffe_time.py). Not used by anything else: the project never runs Caffe's code.
#
# Source: Debian's source package of Caffe, `caffe_1.0.0+git20180821.99bd997.orig.tar.gz` (the
# last one Debian shipped, bullseye), checked by its SHA-256. It is BVLC/caffe at commit 99bd997
# (2018-08-21), whose src/, include/, tools/ and Makefile are those of 9b891540, the Caffe that made
# ../shared/golden (the four commits between them touch README.md and a lint script only). Against
# the 1.0 tag it has 132 more commits, none in the arithmetic of this benchmark
# (bench/caffe/README.md).
#
# Built with Caffe's own Makefile at -O3 (the goldens' Caffe was a CMake Release build: -O3, no
# -march), CPU_ONLY, with LMDB (bench/startup.py times Caffe's start on the demo's LMDB data) but
# without OpenCV and LevelDB (no benchmarked net reads them), linked against Debian's OpenBLAS 0.3.21
# (libopenblas0-pthread: the library exact mode reproduces; its kernels and threads are chosen at
# run time through OPENBLAS_CORETYPE and OPENBLAS_NUM_THREADS). One change to the source, for the
# protobuf of this Debian (3.21): CodedInputStream::SetTotalBytesLimit lost its second argument (a
# warning threshold) in protobuf 3.11; the call keeps its first.
#
#   bash bench/caffe/build.sh [OUT]       # default OUT=build/caffe; prints the binary's path
#
# Needs: curl (or an already downloaded tarball in OUT), g++, make, and the -dev packages below
# (installed with apt-get when run as root). A failure says why and exits 1; make bench then
# records that Caffe was not measured.
set -euo pipefail
OUT=${1:-build/caffe}
VERSION=1.0.0+git20180821.99bd997
TARBALL=caffe_${VERSION}.orig.tar.gz
URL=${CAFFE_SOURCE_URL:-http://deb.debian.org/debian/pool/main/c/caffe/$TARBALL}
SHA256=e0eb3f06794f7402c77b7dec8e8480273ee1a1bb192e9122b621a69d4147ad0c
MULTIARCH=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
BIN=$OUT/src/.build_release/tools/caffe.bin
# the stamp names the source and this script: an edited script (flags, patches) builds afresh
STAMP=$OUT/.built-$SHA256-$(sha256sum "$0" | cut -c1-16)

if [ -x "$BIN" ] && [ -f "$STAMP" ]; then echo "$BIN"; exit 0; fi

PKGS="libprotobuf-dev protobuf-compiler libgoogle-glog-dev libgflags-dev libhdf5-dev liblmdb-dev
      libboost-system1.74-dev libboost-filesystem1.74-dev libboost-thread1.74-dev
      libopenblas-pthread-dev libopenblas0-pthread"
missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "bench/caffe/build.sh: installing$missing" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing) >/dev/null
  else
    echo "bench/caffe/build.sh: missing Debian packages:$missing (run as root to install them)" >&2; exit 1
  fi
fi

mkdir -p "$OUT"
if [ ! -f "$OUT/$TARBALL" ]; then
  echo "bench/caffe/build.sh: downloading $URL" >&2
  curl -fsSL --retry 2 --connect-timeout 20 --max-time 600 -o "$OUT/$TARBALL.part" "$URL" \
    || { rm -f "$OUT/$TARBALL.part"; echo "bench/caffe/build.sh: cannot download $URL" >&2; exit 1; }
  mv "$OUT/$TARBALL.part" "$OUT/$TARBALL"
fi
echo "$SHA256  $OUT/$TARBALL" | sha256sum -c --quiet - \
  || { rm -f "$OUT/$TARBALL"; echo "bench/caffe/build.sh: $OUT/$TARBALL: wrong SHA-256 (removed)" >&2; exit 1; }

rm -rf "$OUT/src" "$OUT"/.built-* && mkdir -p "$OUT/src"
tar xzf "$OUT/$TARBALL" -C "$OUT/src"
# protobuf >= 3.11: SetTotalBytesLimit(total_bytes_limit) (the dropped argument only set a warning)
sed -i 's/SetTotalBytesLimit(kProtoReadBytesLimit, 536870912)/SetTotalBytesLimit(kProtoReadBytesLimit)/' \
  "$OUT/src/src/caffe/util/io.cpp"
grep -q 'SetTotalBytesLimit(kProtoReadBytesLimit)' "$OUT/src/src/caffe/util/io.cpp"
# Release flags of the goldens' build (CMake's Release: -O3 -DNDEBUG) in place of the Makefile's -O2
sed -i 's/COMMON_FLAGS += -DNDEBUG -O2/COMMON_FLAGS += -DNDEBUG -O3/' "$OUT/src/Makefile"
grep -q 'COMMON_FLAGS += -DNDEBUG -O3' "$OUT/src/Makefile"
cat > "$OUT/src/Makefile.config" <<EOF
CPU_ONLY := 1
USE_OPENCV := 0
USE_LEVELDB := 0
USE_LMDB := 1
ALLOW_LMDB_NOLOCK := 1
BLAS := open
BLAS_INCLUDE := /usr/include/$MULTIARCH/openblas-pthread
BLAS_LIB := /usr/lib/$MULTIARCH/openblas-pthread
INCLUDE_DIRS := /usr/local/include /usr/include /usr/include/hdf5/serial
LIBRARY_DIRS := /usr/local/lib /usr/lib /usr/lib/$MULTIARCH/hdf5/serial
BUILD_DIR := build
DISTRIBUTE_DIR := distribute
Q ?= @
EOF
echo "bench/caffe/build.sh: building Caffe's tools in $OUT/src (about 3 minutes on 2 cores)" >&2
if ! make -C "$OUT/src" -j"$(nproc)" tools > "$OUT/build.log" 2>&1; then
  tail -20 "$OUT/build.log" >&2; echo "bench/caffe/build.sh: the build failed ($OUT/build.log)" >&2; exit 1
fi
touch "$STAMP"
echo "$BIN"
