#!/usr/bin/env bash
# The recorder's own CPU per million recorded events, start-up left out: every stage recorded
# (`--budget off`) during a paced iperf3 transfer over veth between two network namespaces; the
# recorder's user + system time is read from /proc just before and just after the transfer.
# Paced so that the recorder keeps up (no event lost) and the figure is its cost per event, not
# how much of it a starved writer gets done. Root needed; iperf3 from apt.
#
#   recorder/scripts/recorder_cpu.sh [SECONDS_PER_RUN] [ROUNDS] [RATE]   (defaults: 4 s, 3, 10G)
#
# RECORDER_CPU_BASE=PATH also runs another build's tcptape-record in each round, interleaved: on a
# shared machine the ratio of the two is the figure to trust.
set -euo pipefail

secs="${1:-4}"; rounds="${2:-3}"; rate="${3:-10G}"
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
command -v iperf3 > /dev/null || { echo "needs iperf3 (apt install iperf3)" >&2; exit 1; }
cargo build --release -q --manifest-path "$root/Cargo.toml" -p tcptape-recorder --bin tcptape-record
builds=("$target/release/tcptape-record")
[[ -n "${RECORDER_CPU_BASE:-}" ]] && builds+=("$RECORDER_CPU_BASE")
work="$(mktemp -d)"
ns_a="ttc$$-a"; ns_b="ttc$$-b"
cleanup() {
    [[ -n "${rec_pid:-}" ]] && kill "$rec_pid" 2>/dev/null || true
    [[ -n "${srv_pid:-}" ]] && kill "$srv_pid" 2>/dev/null || true
    ip netns del "$ns_a" 2>/dev/null || true
    ip netns del "$ns_b" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$ns_a"; ip netns add "$ns_b"
ip -n "$ns_a" link add va type veth peer name vb netns "$ns_b"
ip -n "$ns_a" addr add 10.200.252.1/24 dev va
ip -n "$ns_b" addr add 10.200.252.2/24 dev vb
for ns in "$ns_a" "$ns_b"; do ip -n "$ns" link set lo up; done
ip -n "$ns_a" link set va up; ip -n "$ns_b" link set vb up
ip netns exec "$ns_b" iperf3 -s -B 10.200.252.2 -p 5201 > /dev/null 2>&1 &
srv_pid=$!
sleep 0.5
ticks="$(getconf CLK_TCK)"

# cpu_ticks PID: user + system time of the process, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

echo "recorder CPU per million events, every stage, iperf3 over veth paced at $rate, $rounds rounds of $secs s"
for r in $(seq "$rounds"); do
    for bin in "${builds[@]}"; do
        out="$work/rec-$r"
        "$bin" -o "$out" --budget off --segment-secs 2 2> "$out.log" &
        rec_pid=$!
        for _ in $(seq 200); do
            grep -q '^recording ' "$out.log" && break
            kill -0 "$rec_pid" 2>/dev/null || { cat "$out.log" >&2; exit 1; }
            sleep 0.05
        done
        c0="$(cpu_ticks "$rec_pid")"
        ip netns exec "$ns_a" iperf3 -c 10.200.252.2 -p 5201 -t "$secs" -b "$rate" -J > "$out.json"
        c1="$(cpu_ticks "$rec_pid")"
        kill -INT "$rec_pid"; wait "$rec_pid"; rec_pid=
        events="$(sed -n 's/^wrote \([0-9]*\) events.*/\1/p' "$out.log")"
        lost="$(sed -n 's/.*; \([0-9]*\) lost$/\1/p' "$out.log")"
        python3 - "$bin" "$events" "$lost" "$c0" "$c1" "$ticks" "$secs" "$out.json" <<'EOF'
import json, sys
name, events, lost, c0, c1, ticks, secs, ipf = sys.argv[1:]
events, lost = int(events), int(lost)
cpu = (int(c1) - int(c0)) / int(ticks)
gbps = json.load(open(ipf))["end"]["sum_received"]["bits_per_second"] / 1e9
print(f"  {name}: {cpu / (events / 1e6):.3f} s per million events "
      f"({events / float(secs):,.0f} events/s, {lost} lost, {gbps:.1f} Gbit/s)")
EOF
        rm -rf "$out" "$out.log" "$out.json"
    done
done
