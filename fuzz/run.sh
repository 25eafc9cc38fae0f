#!/usr/bin/env bash
# Fuzzes the recording reader (or another target) for a while:
#   fuzz/run.sh [TARGET] [SECONDS]      e.g. fuzz/run.sh recording 600
# Needs cargo-fuzz (`cargo install cargo-fuzz`). On a stable toolchain RUSTC_BOOTSTRAP lets it use
# the sanitizer flags. The seed corpus is the test suite's hostile-input corpus; inputs that once
# crashed belong there too (common/tests/corpus/any-fuzz-*.parquet), so the normal tests replay them.
set -euo pipefail
cd "$(dirname "$0")"
target=${1:-recording}
secs=${2:-600}
mkdir -p "corpus/$target"
if [ "$target" = recording ]; then cp -n ../common/tests/corpus/*.parquet "corpus/$target/"; fi
RUSTC_BOOTSTRAP=1 exec cargo fuzz run "$target" "corpus/$target" -- \
  -max_total_time="$secs" -rss_limit_mb=2048 -max_len=65536
