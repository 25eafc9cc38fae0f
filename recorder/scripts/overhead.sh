#!/usr/bin/env bash
# Overhead of recording: bulk TCP throughput (iperf3) between two network namespaces over veth,
# without recording, while recording every stage of every flow (--budget off), with --sample 100,
# and under the default --budget, interleaved in one run; plus the recorder's sustained events/s,
# lost events and CPU time per million events. Root needed; iperf3 from apt.
#
#   recorder/scripts/overhead.sh [SECONDS_PER_RUN] [ROUNDS]     (defaults: 5 s, 3 rounds)
#
# OVERHEAD_CALIBRATE=1 adds a run beside a busy loop at SCHED_IDLE that takes 10 % of one CPU
# (5 ms of every 50 ms), and nothing else: what CPU time that the traffic does not need costs it
# on this host. Where idle CPUs are cheap to wake and costly to interrupt (virtual machines), it
# is far from free; the recorder's own CPU time costs about as much.
#
# OVERHEAD_FLOOR=1 adds a run with a program at each tracepoint the recorder attaches, each
# returning at once (recorder/scripts/hooks_floor.bpf.c, built with clang): what any tracer pays
# on this host to be called at those points, before it does any work. No recorder can do better.
#
# OVERHEAD_STAGES=LIST adds a run recording only those stages (`--stage LIST`, e.g. `tcp`).
#
# OVERHEAD_KERNEL=1 ends with recorder/scripts/kernel_cost.sh (same seconds and rounds): the
# kernel's program time per recorded event beside the floor's time a run. With OVERHEAD_FLOOR=1
# and OVERHEAD_RR=1 too, every overhead figure of the README's Benchmarks comes from this one run.
#
# OVERHEAD_RR=1 adds, after the bulk rounds, as many rounds of a 64-byte TCP ping-pong (sockperf,
# full round trips) over the same veth: not recording, all stages, --sample 100 (and the floor
# with OVERHEAD_FLOOR=1), interleaved; the median round trip of each and what each adds.
set -euo pipefail

secs="${1:-5}"; rounds="${2:-3}"
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
cargo build --release -q --manifest-path "$root/Cargo.toml" -p tcptape-recorder
rec="$target/release/tcptape-record"
work="$(mktemp -d)"
if [[ "${OVERHEAD_FLOOR:-0}" == 1 ]]; then
    command -v clang > /dev/null || { echo "OVERHEAD_FLOOR=1 needs clang" >&2; exit 1; }
    cargo build --release -q --manifest-path "$root/Cargo.toml" -p tcptape-recorder --example hooks_floor
    clang -O2 -target bpf -c "$here/hooks_floor.bpf.c" -o "$work/hooks_floor.o"
fi
ns_a="ttb$$-a"; ns_b="ttb$$-b"
cleanup() {
    [[ -n "${rec_pid:-}" ]] && kill "$rec_pid" 2>/dev/null || true
    [[ -n "${srv_pid:-}" ]] && kill "$srv_pid" 2>/dev/null || true
    [[ -n "${rr_pid:-}" ]] && kill "$rr_pid" 2>/dev/null || true
    ip netns del "$ns_a" 2>/dev/null || true
    ip netns del "$ns_b" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

ip netns add "$ns_a"; ip netns add "$ns_b"
ip -n "$ns_a" link add va type veth peer name vb netns "$ns_b"
ip -n "$ns_a" addr add 10.200.251.1/24 dev va
ip -n "$ns_b" addr add 10.200.251.2/24 dev vb
for ns in "$ns_a" "$ns_b"; do ip -n "$ns" link set lo up; done
ip -n "$ns_a" link set va up; ip -n "$ns_b" link set vb up
ip netns exec "$ns_b" iperf3 -s -B 10.200.251.2 -p 5201 > /dev/null 2>&1 &
srv_pid=$!
if [[ "${OVERHEAD_RR:-0}" == 1 ]]; then
    command -v sockperf > /dev/null || { echo "OVERHEAD_RR=1 needs sockperf (apt install sockperf)" >&2; exit 1; }
    ip netns exec "$ns_b" sockperf sr --tcp -i 10.200.251.2 -p 11111 > /dev/null 2>&1 &
    rr_pid=$!
fi
sleep 0.5

# wait_for PATTERN LOG: until the program started as $rec_pid prints PATTERN; its log and exit 1
# if it ends first.
wait_for() {
    until grep -q "$1" "$2" 2>/dev/null; do
        kill -0 "$rec_pid" 2>/dev/null || { cat "$2" >&2; exit 1; }
        sleep 0.1
    done
}

# throughput: prints the receiver's bits/s of one iperf3 run.
throughput() {
    ip netns exec "$ns_a" iperf3 -c 10.200.251.2 -p 5201 -t "$secs" -J \
        | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]))'
}

# round_trip: prints the median round trip, in ns, of a 64-byte TCP ping-pong for $secs.
round_trip() {
    ip netns exec "$ns_a" sockperf pp --tcp --full-rtt -i 10.200.251.2 -p 11111 -t "$secs" -m 64 2>&1 \
        | sed -n 's/.*percentile 50.000 = *\([0-9.]*\).*/\1/p' \
        | python3 -c 'import sys; print(int(float(sys.stdin.read()) * 1000))'
}

# What recorded and hooks_only measure: throughput, or round_trip for the ping-pong rounds.
measure=throughput

# recorded MODE ARGS...: $measure while recording; appends recorder figures to $work/MODE.
recorded() {
    local mode="$1"; shift
    local out="$work/$mode-$RANDOM"
    "$rec" -o "$out" -v --segment-secs 2 "$@" 2> "$out.log" &
    rec_pid=$!
    wait_for '^recording ' "$out.log"
    local bps; bps="$($measure)"
    kill -INT "$rec_pid"; wait "$rec_pid"; rec_pid=
    # "wrote N events to ... ; L lost" and "recorder CPU time: C s for N events (P s per million)"
    local events lost cpu
    events="$(sed -n 's/^wrote \([0-9]*\) events.*/\1/p' "$out.log")"
    lost="$(sed -n 's/.*; \([0-9]*\) lost$/\1/p' "$out.log")"
    cpu="$(sed -n 's/^recorder CPU time: \([0-9.]*\) s.*/\1/p' "$out.log")"
    echo "$events $lost $cpu" >> "$work/$mode.rec"
    rm -rf "$out" "$out.log"
    echo "$bps"
}

# beside_busy_loop: throughput while a SCHED_IDLE loop is busy 5 ms in every 50 ms.
beside_busy_loop() {
    chrt -i 0 python3 -c '
import time
while True:
    end = time.perf_counter() + 0.005
    while time.perf_counter() < end:
        pass
    time.sleep(0.045)' &
    rec_pid=$!
    throughput
    kill "$rec_pid"; wait "$rec_pid" 2>/dev/null || true; rec_pid=
}

# hooks_only: throughput with the floor programs attached, and nothing else running.
hooks_only() {
    "$target/release/examples/hooks_floor" "$work/hooks_floor.o" 2> "$work/floor.log" &
    rec_pid=$!
    wait_for '^attached ' "$work/floor.log"
    $measure
    kill "$rec_pid"; wait "$rec_pid" 2>/dev/null || true; rec_pid=
}

for ((i = 1; i <= rounds; i++)); do
    throughput >> "$work/base"
    recorded all --budget off >> "$work/all"
    recorded sampled --sample 100 --budget off >> "$work/sampled"
    recorded budget >> "$work/budget"
    if [[ -n "${OVERHEAD_STAGES:-}" ]]; then
        recorded stages --stage "$OVERHEAD_STAGES" >> "$work/stages"
    fi
    if [[ "${OVERHEAD_CALIBRATE:-0}" == 1 ]]; then beside_busy_loop >> "$work/busy"; fi
    if [[ "${OVERHEAD_FLOOR:-0}" == 1 ]]; then hooks_only >> "$work/floor"; fi
    echo "round $i/$rounds done" >&2
done
if [[ "${OVERHEAD_RR:-0}" == 1 ]]; then
    measure=round_trip
    for ((i = 1; i <= rounds; i++)); do
        round_trip >> "$work/rr_base"
        recorded rr_all --budget off >> "$work/rr_all"
        recorded rr_sampled --sample 100 --budget off >> "$work/rr_sampled"
        if [[ "${OVERHEAD_FLOOR:-0}" == 1 ]]; then hooks_only >> "$work/rr_floor"; fi
        echo "ping-pong round $i/$rounds done" >&2
    done
fi

python3 - "$work" "$secs" "${OVERHEAD_STAGES:-}" <<'PY'
import statistics, sys, os
work, secs, stages = sys.argv[1], float(sys.argv[2]), sys.argv[3]
def ints(name): return [int(x) for x in open(os.path.join(work, name)).read().split()]
base, full, samp, budg = ints("base"), ints("all"), ints("sampled"), ints("budget")
med = statistics.median
print(f"iperf3 over veth, {len(base)} interleaved rounds of {secs:.0f} s, median Gbit/s:")
print(f"  not recording            {med(base)/1e9:7.2f}")
print(f"  recording all stages     {med(full)/1e9:7.2f}   ratio {med(full)/med(base):.3f}")
print(f"  recording --sample 100   {med(samp)/1e9:7.2f}   ratio {med(samp)/med(base):.3f}")
print(f"  recording, default budget {med(budg)/1e9:6.2f}   ratio {med(budg)/med(base):.3f}")
modes = ["all", "sampled", "budget"]
if stages:
    st = ints("stages")
    label = f"recording --stage {stages}"
    print(f"  {label:<24} {med(st)/1e9:7.2f}   ratio {med(st)/med(base):.3f}")
    modes.append("stages")
if os.path.exists(os.path.join(work, "busy")):
    busy = ints("busy")
    print(f"  idle-priority loop, 10 % of one CPU (calibration) "
          f"{med(busy)/1e9:7.2f}   ratio {med(busy)/med(base):.3f}")
if os.path.exists(os.path.join(work, "floor")):
    floor = ints("floor")
    print(f"  programs that return at once, at the same tracepoints (floor) "
          f"{med(floor)/1e9:7.2f}   ratio {med(floor)/med(base):.3f}")
if os.path.exists(os.path.join(work, "rr_base")):
    rb = med(ints("rr_base"))
    print(f"64-byte TCP ping-pong over veth (sockperf), {len(ints('rr_base'))} interleaved rounds "
          f"of {secs:.0f} s, median round trip:")
    print(f"  not recording            {rb/1e3:7.2f} µs")
    floor_added = None
    if os.path.exists(os.path.join(work, "rr_floor")):
        floor_added = med(ints("rr_floor")) - rb
    for name, label in [("rr_floor", "floor (programs that return at once)"),
                        ("rr_all", "recording all stages"), ("rr_sampled", "recording --sample 100")]:
        if not os.path.exists(os.path.join(work, name)):
            continue
        m = med(ints(name))
        # A ratio only means something when the floor adds time.
        vs = (f"   {(m - rb) / floor_added:.2f} × the floor's"
              if floor_added and floor_added > 0 and name != "rr_floor" else "")
        print(f"  {label:<38} {m/1e3:7.2f} µs   {(m - rb)/1e3:+.2f} µs{vs}")
for mode in modes:
    rows = [l.split() for l in open(os.path.join(work, mode + ".rec"))]
    ev = [int(r[0]) for r in rows]; lost = [int(r[1]) for r in rows]; cpu = [float(r[2]) for r in rows]
    rate = [e / secs for e in ev]
    per_m = [c / e * 1e6 if e else 0 for c, e in zip(cpu, ev)]
    print(f"  {mode:8} events/s median {med(rate):12,.0f}   lost total {sum(lost)}   "
          f"recorder CPU {med(per_m):.3f} s per million events, "
          f"{med(cpu) / secs:.0%} of one CPU (start-up included)")
PY
if [[ "${OVERHEAD_KERNEL:-0}" == 1 ]]; then
    echo
    echo "kernel time per recorded event (recorder/scripts/kernel_cost.sh $secs $rounds):"
    "$here/kernel_cost.sh" "$secs" "$rounds"
fi
