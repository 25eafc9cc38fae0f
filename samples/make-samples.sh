#!/usr/bin/env bash
# Makes the sample recordings in this directory, on this machine's kernel (root needed).
#
#   samples/make-samples.sh            # builds the tools, writes samples/*.parquet
#   samples/make-samples.sh containers # only the samples named (bulk-loss, rr-slow-reader,
#                                      # containers)
#
# Each sample is traffic between two network namespaces joined by a veth pair, made by the
# project's own client and server (tcptape-traffic), recorded by tcptape-record with a port
# filter. Existing samples are replaced.
#   bulk-loss.parquet        8 MiB bulk transfer through tbf (100 Mbit/s) with every 40th data
#                            packet dropped by nft at the receiver: retransmits, recovery, drops.
#   rr-slow-reader.parquet   300 request/response exchanges (200 B requests, 4 KiB responses)
#                            where the server reads each request 20 ms after it arrived.
#   containers.parquet       two "containers" (cgroups named as Docker names a container's and
#                            the kubelet a pod's) each sending 2 MiB to a server in a third
#                            (named as a systemd service), every 25th data packet dropped.
set -euo pipefail

# want NAME: true when NAME is to be made (every sample when none is named).
want() { [[ ${#samples[@]} -eq 0 ]] || [[ " ${samples[*]} " == *" $1 "* ]]; }
samples=("$@")

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
if want bulk-loss; then
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
fi

# 2. Request/response with a slow reader.
if want rr-slow-reader; then
record "$here/rr-slow-reader.parquet" 5002
ip netns exec "$ns_b" "$traffic" rr-server 10.200.250.2 5002 4096 20 &
server=$!
sleep 0.2
ip netns exec "$ns_a" "$traffic" rr-client 10.200.250.2 5002 300 200 4096
wait "$server"
stop "$here/rr-slow-reader.parquet"
fi

# 3. Containers: each process moved into its cgroup before it runs.
if want containers; then
mount2=$(awk '{ for (i = 1; i <= NF; i++) if ($i == "-") { if ($(i + 1) == "cgroup2") print $5; break } }' /proc/self/mountinfo | head -1)
top="$mount2/tcptape-samples"
docker="$top/docker-5e1f7c0a9b3d2e4f6a8b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f.scope"
pod="$top/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod7c9e6679_7425_40de_944b_e07fc1f90ae7.slice/cri-containerd-9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b.scope"
unit="$top/system.slice/sink.service"
mkdir -p "$docker" "$pod" "$unit"
in_cgroup() { local cg=$1; shift; sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$cg" "$@"; }
ip netns exec "$ns_b" nft -f - <<NFT
table inet samples {
    chain input {
        type filter hook input priority 0;
        tcp dport 5003 tcp flags & (syn | fin) == 0 numgen inc mod 25 == 0 drop
    }
}
NFT
record "$here/containers.parquet" 5003
in_cgroup "$unit" ip netns exec "$ns_b" "$traffic" sink 10.200.250.2 5003 2 > /dev/null &
sink=$!
sleep 0.2
in_cgroup "$docker" ip netns exec "$ns_a" "$traffic" bulk 10.200.250.2 5003 $((2 << 20)) &
a=$!
in_cgroup "$pod" ip netns exec "$ns_a" "$traffic" bulk 10.200.250.2 5003 $((2 << 20))
wait "$a" "$sink"
stop "$here/containers.parquet"
ip netns exec "$ns_b" nft delete table inet samples
rmdir "$docker" "$pod" "$unit" "$(dirname "$pod")" "$(dirname "$(dirname "$pod")")" \
    "$top/kubepods.slice" "$top/system.slice" "$top"
fi

ls -l "$here"/*.parquet
