#!/usr/bin/env bash
# Makes samples/synthetic-bulk.parquet: a synthetic bulk transfer with known per-stage delays
# (see common/src/synth.rs), reproducible from its seed. No root needed.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q -p tcptape-recorder --bin tcptape-record
rm -f samples/synthetic-bulk.parquet
"${CARGO_TARGET_DIR:-target}/debug/tcptape-record" synth -o samples/synthetic-bulk.parquet \
  --events 200000 --seed 1 --mix bulk
