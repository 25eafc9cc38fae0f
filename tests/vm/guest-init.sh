#!/bin/sh
# /init of the VM test's initramfs (busybox sh). Loads the modules, records the traffic of
# /usr/bin/traffic between two network namespaces with tcptape-record, and writes everything it
# produced as a tar stream to /dev/vda for the host to check. Settings come from
# /etc/vmtest.conf, written by tests/vm/run.sh.
export PATH=/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs run /run
mount -t tmpfs tmp /tmp
mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null
mount -t debugfs nodev /sys/kernel/debug 2>/dev/null
. /etc/vmtest.conf
IP=/usr/sbin/ip
TC=/usr/sbin/tc
OUT=/tmp/out
mkdir -p $OUT

say() { echo "vmtest: [$(cut -d" " -f1 /proc/uptime)s] $*"; }
# Last words: ship what there is, whatever happened.
finish() {
  say "writing results to /dev/vda"
  (cd $OUT && tar cf /dev/vda .) || say "ERROR: could not write /dev/vda"
  sync
  say "done"
  poweroff -f
}

say "kernel $(uname -r)"
# Watchdog: whatever hangs, the results gathered so far still reach the host before its limit.
(sleep "$GUEST_LIMIT_SECS"; say "ERROR: guest time limit (${GUEST_LIMIT_SECS}s) reached"; finish) &
uname -r > $OUT/kernel_release
while read -r m; do
  [ -n "$m" ] || continue
  insmod "/lib/vmmods/$m" || say "ERROR: insmod $m failed"
done < /lib/vmmods/order
i=0
while [ ! -b /dev/vda ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
if [ ! -b /dev/vda ]; then
  say "ERROR: no /dev/vda, results cannot be returned"
  poweroff -f
fi

say "tcptape-record check --json"
tcptape-record check --json > $OUT/check.json 2> $OUT/check.err
echo $? > $OUT/check.rc
say "tcptape-record check --cost 1s --json"
tcptape-record check --cost 1s --json > $OUT/cost.json 2> $OUT/cost.err
echo $? > $OUT/cost.rc

# Two namespaces, two veth pairs: link 1 delays (netem delay), link 2 drops (netem loss).
$IP netns add A && $IP netns add B || { say "ERROR: ip netns add failed"; finish; }
$IP -n A link set lo up
$IP -n B link set lo up
# Link 2 sends one segment per packet (gso_max_segs 1): netem drops whole packets, and with
# 64 KB GSO packets a few dozen of them may well pass a 3% loss untouched.
for l in 1 2; do
  if [ $l = 2 ]; then gso="gso_max_segs 1"; else gso=; fi
  # shellcheck disable=SC2086
  $IP link add va$l $gso type veth peer name vb$l
  $IP link set va$l netns A
  $IP link set vb$l netns B
  $IP -n A addr add 10.11.$l.1/24 dev va$l
  $IP -n B addr add 10.11.$l.2/24 dev vb$l
  $IP -n A link set va$l up
  $IP -n B link set vb$l up
done
$IP netns exec A $TC qdisc add dev va1 root netem delay "${DELAY_MS}ms" limit 100000 \
  || say "ERROR: netem delay failed"
$IP netns exec A $TC qdisc add dev va2 root netem loss "${LOSS_PCT}%" limit 100000 \
  || say "ERROR: netem loss failed"
{
  echo "delay_ms=$DELAY_MS"
  echo "loss_pct=$LOSS_PCT"
  echo "cpus=$(grep -c ^processor /proc/cpuinfo)"
  echo "netns_a=$(stat -L -c %i /run/netns/A)"
  echo "netns_b=$(stat -L -c %i /run/netns/B)"
  for l in 1 2; do
    echo "ifindex_va$l=$($IP netns exec A cat /sys/class/net/va$l/ifindex)"
    echo "ifindex_vb$l=$($IP netns exec B cat /sys/class/net/vb$l/ifindex)"
  done
} > $OUT/env
$IP netns exec A $TC -s qdisc show > $OUT/qdisc-A.txt 2>&1

# One recording: start the recorder, wait until it has attached, run the traffic, stop it.
# $1 = name, $2... = extra recorder arguments.
# Every flow: the checks count what the traffic sent (a recorder from before --budget has no
# such option and records every flow anyway).
EVERY_FLOW=
if tcptape-record --help 2>/dev/null | grep -q -- '--budget'; then EVERY_FLOW="--budget off"; fi

record() {
  name=$1
  shift
  d=$OUT/$name
  mkdir -p $d
  say "run $name: tcptape-record $*"
  tcptape-record -v -o $d/rec.parquet --duration "${RECORD_CAP_SECS}s" $EVERY_FLOW "$@" \
    > $d/recorder.out 2> $d/recorder.log &
  rpid=$!
  i=0
  while ! grep -q '^recording ' $d/recorder.log 2>/dev/null; do
    if ! kill -0 $rpid 2>/dev/null || [ $i -ge 1200 ]; then
      say "ERROR: run $name: the recorder did not start:"
      cat $d/recorder.log
      kill $rpid 2>/dev/null
      wait $rpid
      echo $? > $d/recorder.rc
      return
    fi
    sleep 0.1
    i=$((i + 1))
  done
  for ns in A B; do
    $IP netns exec $ns cat /proc/net/snmp > $d/snmp-before-$ns
    $IP netns exec $ns cat /proc/net/netstat > $d/netstat-before-$ns
  done
  date +%s > $d/traffic-start
  rc=0
  # Phase 1, link 2 (netem loss): an unpaced bulk transfer, non-blocking. It keeps the VM's one CPU busy, so
  # it runs alone: a busy CPU dequeues late and would blur the delay measured in phase 2.
  $IP netns exec B traffic sink 5003 > $d/traffic-sink2.out 2>&1 &
  s3=$!
  # Non-blocking 64 KiB writes: some write part of what they ask for (tx_sendmsg must say so).
  $IP netns exec A traffic bulk-nb 10.11.2.2 5003 "$LOSS_BYTES" > $d/traffic-bulk2.out 2>&1 &
  c3=$!
  for p in $c3 $s3; do wait $p || rc=1; done
  # Phase 2, link 1 (netem delay): a paced bulk transfer and the request/response exchange.
  $IP netns exec B traffic sink 5001 > $d/traffic-sink1.out 2>&1 &
  s1=$!
  $IP netns exec B traffic rr-server 5002 "$RR_REQ" "$RR_RESP" "$RR_SLOW_MS" \
    > $d/traffic-rr-server.out 2>&1 &
  s2=$!
  $IP netns exec A traffic bulk 10.11.1.2 5001 "$BULK_BYTES" "$BULK_RATE" \
    > $d/traffic-bulk1.out 2>&1 &
  c1=$!
  $IP netns exec A traffic rr-client 10.11.1.2 5002 "$RR_COUNT" "$RR_REQ" "$RR_RESP" \
    > $d/traffic-rr-client.out 2>&1 &
  c2=$!
  for p in $c1 $c2 $s1 $s2; do wait $p || rc=1; done
  echo $rc > $d/traffic.rc
  date +%s > $d/traffic-end
  for ns in A B; do
    $IP netns exec $ns cat /proc/net/snmp > $d/snmp-after-$ns
    $IP netns exec $ns cat /proc/net/netstat > $d/netstat-after-$ns
  done
  cat $d/traffic-*.out
  sleep 0.5
  kill -INT $rpid
  i=0
  while kill -0 $rpid 2>/dev/null && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
  if kill -0 $rpid 2>/dev/null; then
    say "ERROR: run $name: the recorder did not stop within 60 s of SIGINT; killing it"
    kill -KILL $rpid
  fi
  wait $rpid
  echo $? > $d/recorder.rc
  cat $d/recorder.log
  say "run $name: recorder exit $(cat $d/recorder.rc), traffic exit $rc"
}

# The filters' code paths are removed by the verifier when a filter is off, so the runs above
# never verify them: load and attach once with every filter on, in both flavors, for a second.
# With --stage as well: --pid and --iface attach every stage, the others dropping their events.
filters_load() {
  name=$1
  shift
  d=$OUT/$name
  mkdir -p $d
  say "run $name: tcptape-record with every filter $*"
  tcptape-record -v -o $d/rec.parquet --duration 1s --port 5001 --addr 10.11.0.0/16 \
    --pid 1 --netns "$(stat -L -c %i /proc/self/ns/net)" --iface lo --stage rx_ip,retransmit "$@" \
    > $d/recorder.out 2> $d/recorder.log
  echo $? > $d/recorder.rc
  cat $d/recorder.log
}

record default
if [ -n "$NOFENTRY_ARGS" ]; then
  # shellcheck disable=SC2086
  record nofentry $NOFENTRY_ARGS
else
  say "run nofentry skipped: the recorder has no way to disable fentry"
fi
filters_load filters-default
if [ -n "$NOFENTRY_ARGS" ]; then
  # shellcheck disable=SC2086
  filters_load filters-nofentry $NOFENTRY_ARGS
fi
finish
