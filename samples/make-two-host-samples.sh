#!/usr/bin/env bash
# Makes samples/two-hosts-{a,b}.parquet: the recordings of the two-host kernel test (root needed),
# two Debian 6.12 guests under qemu, each with a virtio-net NIC on a qemu socket link, guest A
# sending request/response and a 96 KiB bulk transfer through netem (20 ms delay, 8 % loss) to B.
#
#   samples/make-two-host-samples.sh     # runs tests/vm/run.sh 6.12 --two-hosts, copies the two
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
target="${CARGO_TARGET_DIR:-$root/target}"
"$root/tests/vm/run.sh" 6.12 --two-hosts
for h in a b; do
    install -m 644 "$target/vm/run-6.12-two-hosts/socket/results-$h/rec.parquet" "$here/two-hosts-$h.parquet"
done
ls -l "$here"/two-hosts-*.parquet
