#!/usr/bin/env bash
# The whole test suite: installs what it needs (as root, through apt and pip), then formatting,
# lints, the Rust tests (nextest; the kernel tests load eBPF and create network namespaces, so
# they need root and run one at a time), the Python reader tests, and the kernel matrix (Debian's
# 6.1 and 6.12 kernels booted under qemu, as root; one guest, then two joined by virtio-net NICs).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
# A clean build is built once: incremental caches would only take disk.
export CARGO_INCREMENTAL=0
target=${CARGO_TARGET_DIR:-target}

step() { printf '\n==> %s\n' "$*"; }

# A clean run writes about 5 GB at its peak (the debug build, the Python environment with Spark);
# the debug build is removed before the kernel matrix's release build and images. Say so up front
# rather than fail in the linker with a bus error.
mkdir -p "$target"
free_kb=$(df -Pk "$target" | awk 'NR == 2 { print $4 }')
echo "disk: $((free_kb / 1024)) MiB free for $target"
if [ "$free_kb" -lt $((6 * 1024 * 1024)) ]; then
  echo "WARNING: under 6 GiB free for $target; the build may run out of disk" >&2
fi

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  step "system packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends \
    clang llvm libbpf-dev bpftool iproute2 nftables ethtool iperf3 bpftrace chromium tshark \
    default-jre-headless >/dev/null
  # As root, the kernel tests must run: a skip is a failure.
  export TCPTAPE_E2E_REQUIRED=1
else
  echo "WARNING: not root: system packages are not installed and the kernel tests will skip" >&2
fi
if ! mountpoint -q /sys/kernel/tracing 2>/dev/null; then
  mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true
fi

step "python environment"
python3 -m venv "$target/pyenv"
"$target/pyenv/bin/pip" install -q --disable-pip-version-check --no-cache-dir \
  duckdb pyarrow pandas pytest

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "build"
cargo build --workspace --all-targets --locked

step "rust tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast -- --test-threads=1
fi

step "python tests (readers, the HTML report in Chromium)"
TCPTAPE_RECORD="$target/debug/tcptape-record" TCPTAPE="$target/debug/tcptape" \
  "$target/pyenv/bin/python" -m pytest -q tests/python --ignore=tests/python/test_sql_engines.py

# What follows needs the analyzer of this build, not the debug build's test binaries (about
# 3 GB): as root (CI), they go before Spark and the kernel matrix's release build, so the run
# fits a small disk.
analyzer="$target/debug/tcptape"
if [ "$(id -u)" = 0 ]; then
  step "disk: the debug build's tests are done"
  mkdir -p "$target/vm"
  cp "$target/debug/tcptape" "$target/vm/tcptape-analyzer"
  analyzer="$target/vm/tcptape-analyzer"
  rm -rf "$target/debug"
  df -Pk "$target" | awk 'NR == 2 { printf "disk: %d MiB free\n", $4 / 1024 }'
fi

step "python tests (tcptape sql stages on DuckDB and on Spark in local mode)"
# pyspark (with the Java runtime above) runs the query on Spark.
"$target/pyenv/bin/pip" install -q --disable-pip-version-check --no-cache-dir pyspark
TCPTAPE="$analyzer" "$target/pyenv/bin/python" -m pytest -q tests/python/test_sql_engines.py

# The kernel matrix: Debian's production kernels under qemu, where fentry and kprobes exist.
if [ "$(id -u)" = 0 ]; then
  export TCPTAPE_VM_ANALYZER="$analyzer"
  # 6.1 with one virtual CPU, 6.12 with four: per-CPU ring buffers beyond this machine's two.
  for series in 6.1:1 6.12:4; do
    step "kernel matrix: ${series%:*} (${series#*:} CPUs)"
    TCPTAPE_VM_CPUS=${series#*:} tests/vm/run.sh "${series%:*}"
  done
  # Two guests, two virtio-net NICs on a qemu socket link, a recorder on each.
  for series in 6.1 6.12; do
    step "two hosts: $series"
    tests/vm/run.sh "$series" --two-hosts
  done
else
  echo "WARNING: not root: the kernel matrix (tests/vm/run.sh) is skipped" >&2
fi

step "disk"
du -sh "$target"
