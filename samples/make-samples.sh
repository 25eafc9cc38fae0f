#!/usr/bin/env bash
# Makes the sample recordings in this directory, on this machine's kernel (root needed).
#
#   samples/make-samples.sh            # builds the tools, writes samples/*.parquet
#
# Each sample is traffic between two network namespaces joined by a veth pair, made by the
# project's own client and server (tcptape-traffic), recorded by tcptape-record with a port
# filter. Existing samples are replaced.
#   bulk-loss.parquet        8 MiB bulk transfer through tbf (100 Mbit/s) with every 40th data
#                            packet dropped by nft at the receiver: retransmits, recovery, drops.
#   rr-slow-reader.parquet   300 request/response exchanges (200 B requests, 4 KiB responses)
#                            where the server reads each request 20 ms after it arrived.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
target="${CARGO_TARGET_DIR:-$root/target}"
cargo build --release -q --manifest-path "$root/Cargo.toml" -p tcptape-recorder -p tcptape-e2e
rec="$target/release/tcptape-record"
traffic="$target/release/tcptape-traffic"

ns_a="tts$$-a"; ns_b="tts$$-b"
cleanup() {
    [[ -n "${rec_pid:-}" ]] && kill "$rec_pid" 2>/dev/null || true
    ip netns del "$ns_a" 2>/dev/null || true
    ip netns del "$ns_b" 2>/dev/null || true
}
trap cleanup EXIT

ip netns add "$ns_a"; ip netns add "$ns_b"
ip -n "$ns_a" link add va type veth peer name vb netns "$ns_b"
ip -n "$ns_a" addr add 10.200.250.1/24 dev va
ip -n "$ns_b" addr add 10.200.250.2/24 dev vb
for ns in "$ns_a" "$ns_b"; do ip -n "$ns" link set lo up; done
ip -n "$ns_a" link set va up; ip -n "$ns_b" link set vb up

# record OUT PORT: starts the recorder and waits until it is recording.
record() {
    rm -rf "$1"
    "$rec" -o "$1" --port "$2" --budget off 2> "$1.log" &
    rec_pid=$!
    until grep -q '^recording ' "$1.log" 2>/dev/null; do
        kill -0 "$rec_pid" || { cat "$1.log"; exit 1; }
        sleep 0.1
    done
}
stop() {
    sleep 0.3
    kill -INT "$rec_pid"; wait "$rec_pid"; rec_pid=
    cat "$1.log"; rm -f "$1.log"
}

# 1. Bulk transfer through a shaped queue with induced loss.
tc -n "$ns_a" qdisc add dev va root tbf rate 100mbit burst 32kb limit 256kb
ip netns exec "$ns_b" nft -f - <<NFT
table inet samples {
    chain input {
        type filter hook input priority 0;
        tcp dport 5001 tcp flags & (syn | fin) == 0 numgen inc mod 40 == 0 drop
    }
}
NFT
record "$here/bulk-loss.parquet" 5001
ip netns exec "$ns_b" "$traffic" sink 10.200.250.2 5001 1 > /dev/null &
sink=$!
sleep 0.2
ip netns exec "$ns_a" "$traffic" bulk 10.200.250.2 5001 $((8 << 20))
wait "$sink"
stop "$here/bulk-loss.parquet"
tc -n "$ns_a" qdisc del dev va root
ip netns exec "$ns_b" nft delete table inet samples

# 2. Request/response with a slow reader.
record "$here/rr-slow-reader.parquet" 5002
ip netns exec "$ns_b" "$traffic" rr-server 10.200.250.2 5002 4096 20 &
server=$!
sleep 0.2
ip netns exec "$ns_a" "$traffic" rr-client 10.200.250.2 5002 300 200 4096
wait "$server"
stop "$here/rr-slow-reader.parquet"

ls -l "$here"/*.parquet
