#!/bin/sh
# /init of the two-host VM test (busybox sh): one of two guests, each with its own kernel and
# clock and a virtio-net NIC, joined by a qemu socket netdev. `tcptape.role=a` (the sender) or
# `b` (the receiver) on the kernel command line says which. Each records the traffic between them
# with tcptape-record, counts what its own kernel counted (/proc/net/dev, tc -s qdisc,
# /proc/net/snmp) around the traffic, and writes everything as a tar stream to /dev/vda for the
# host to check (tests/vm/check_two_hosts.py). Settings come from /etc/vmtest.conf.
export PATH=/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs run /run
mount -t tmpfs tmp /tmp
mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null
. /etc/vmtest.conf
IP=/usr/sbin/ip
TC=/usr/sbin/tc
OUT=/tmp/out
mkdir -p $OUT
ROLE=$(sed -n 's/.*tcptape\.role=\([ab]\).*/\1/p' /proc/cmdline)

say() { echo "vmtest[$ROLE]: [$(cut -d" " -f1 /proc/uptime)s] $*"; }
finish() {
  say "writing results to /dev/vda"
  (cd $OUT && tar cf /dev/vda .) || say "ERROR: could not write /dev/vda"
  sync
  say "done"
  poweroff -f
}

say "kernel $(uname -r)"
(sleep "$GUEST_LIMIT_SECS"; say "ERROR: guest time limit (${GUEST_LIMIT_SECS}s) reached"; finish) &
uname -r > $OUT/kernel_release
echo "$ROLE" > $OUT/role
while read -r m; do
  [ -n "$m" ] || continue
  insmod "/lib/vmmods/$m" || say "ERROR: insmod $m failed"
done < /lib/vmmods/order
i=0
while { [ ! -b /dev/vda ] || [ ! -e /sys/class/net/eth1 ]; } && [ $i -lt 100 ]; do
  sleep 0.1
  i=$((i + 1))
done
[ -b /dev/vda ] || { say "ERROR: no /dev/vda, results cannot be returned"; poweroff -f; }
# Two NICs: the test link (MAC 52:54:00:12:00:0N), which the checks count, and a control link
# (52:54:00:13:00:0N) on which the guests tell each other when they are ready and done.
nic() {
  for d in /sys/class/net/eth*; do
    [ "$(cat "$d/address")" = "$1" ] && basename "$d"
  done
}
if [ "$ROLE" = a ]; then ME=1; PEER=2; else ME=2; PEER=1; fi
hostname "host-$ROLE"
DEV=$(nic 52:54:00:12:00:0$ME)
CTL=$(nic 52:54:00:13:00:0$ME)
[ -n "$DEV" ] && [ -n "$CTL" ] || { say "ERROR: NICs missing: $(ls /sys/class/net)"; finish; }

# Only the test's TCP crosses the test link: no IPv6 (neighbour discovery, MLD), no ARP (the
# neighbours are static), so every packet the NIC counts is one the recorder may see.
echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6
echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6
$IP link set lo up
$IP link set $DEV up
$IP link set $CTL up
$IP addr add 10.12.0.$ME/24 dev $DEV
$IP addr add 10.13.0.$ME/24 dev $CTL
$IP neigh replace 10.12.0.$PEER lladdr 52:54:00:12:00:0$PEER dev $DEV nud permanent
SETUP=$(sed -n 's/.*tcptape\.setup=\([a-z]*\).*/\1/p' /proc/cmdline)
if [ "$SETUP" = nogro ]; then
  ethtool -K $DEV gro off || say "ERROR: ethtool -K $DEV gro off failed"
fi
$IP neigh replace 10.13.0.$PEER lladdr 52:54:00:13:00:0$PEER dev $CTL nud permanent
# A delays what it sends; B drops every DROP_EVERY-th packet of the bulk transfer as it
# arrives (tc gact, deterministic: a random loss can miss a short transfer altogether), so A
# retransmits.
if [ "$ROLE" = a ]; then
  $TC qdisc add dev $DEV root netem delay "${DELAY_MS}ms" limit 100000 || say "ERROR: netem failed"
else
  $TC qdisc add dev $DEV clsact || say "ERROR: clsact failed"
  $TC filter add dev $DEV ingress protocol ip u32 match ip protocol 6 0xff \
    match ip dport 5001 0xffff action gact ok random determ drop "$DROP_EVERY" \
    || say "ERROR: the drop filter failed"
fi
{
  echo "role=$ROLE"
  echo "setup=$SETUP"
  echo "delay_ms=$DELAY_MS"
  echo "drop_every=$DROP_EVERY"
  echo "dev=$DEV"
  echo "ifindex=$(cat /sys/class/net/$DEV/ifindex)"
  echo "netns=$(stat -L -c %i /proc/self/ns/net)"
  echo "driver=$(basename "$(readlink /sys/class/net/$DEV/device/driver)")"
} > $OUT/env

# The kernel's own counts, before and after the traffic (the recorder runs around both).
counters() {
  cat /proc/net/dev > $OUT/netdev-$1
  $TC -s qdisc show dev $DEV > $OUT/qdisc-$1.txt 2>&1
  $TC -s filter show dev $DEV ingress > $OUT/filter-$1.txt 2>&1
  cat /proc/net/snmp > $OUT/snmp-$1
}

say "tcptape-record on the test link's traffic"
# Every flow: the checks count what the traffic sent (a recorder from before --budget has no
# such option and records every flow anyway).
EVERY_FLOW=
if tcptape-record --help 2>/dev/null | grep -q -- '--budget'; then EVERY_FLOW="--budget off"; fi
tcptape-record -v -o $OUT/rec.parquet --duration "${RECORD_CAP_SECS}s" $EVERY_FLOW --port 5001,5002 \
  > $OUT/recorder.out 2> $OUT/recorder.log &
rpid=$!
i=0
while ! grep -q '^recording ' $OUT/recorder.log 2>/dev/null; do
  if ! kill -0 $rpid 2>/dev/null || [ $i -ge 1200 ]; then
    say "ERROR: the recorder did not start:"
    cat $OUT/recorder.log
    finish
  fi
  sleep 0.1
  i=$((i + 1))
done
say "recording"
# Each guest counts from before the other one sends anything on the test link, to after it
# will send nothing more: B is ready (recording, servers listening, counted) before A starts,
# and A counts last, once B has closed everything.
listening() { # PORT...: all listen (state 0A in /proc/net/tcp)
  for p in "$@"; do
    awk -v p="$(printf '%04X' "$p")" '$2 ~ ":" p "$" && $4 == "0A" { f = 1 } END { exit !f }' \
      /proc/net/tcp || return 1
  done
}
rc=0
if [ "$ROLE" = b ]; then
  traffic rr-server 5002 "$RR_REQ" "$RR_RESP" "$RR_SLOW_MS" > $OUT/traffic-rr-server.out 2>&1 &
  p1=$!
  traffic sink 5001 > $OUT/traffic-sink.out 2>&1 &
  p2=$!
  # On the control link: A reads B's clock, for the checks of the offset tcptape estimates.
  traffic clock-server 6002 > $OUT/clock-server.out 2>&1 &
  p3=$!
  i=0
  while ! listening 5001 5002 && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
  counters before
  traffic sink 6000 > /dev/null 2>&1 # returns once A has connected: B is ready
  for p in $p1 $p2 $p3; do wait $p || rc=1; done
else
  counters before
  traffic sink 6001 > /dev/null 2>&1 &
  done_pid=$!
  traffic bulk 10.13.0.2 6000 0 > /dev/null 2>&1 || say "ERROR: B never became ready"
  traffic rr-client 10.12.0.2 5002 "$RR_COUNT" "$RR_REQ" "$RR_RESP" \
    > $OUT/traffic-rr-client.out 2>&1 || rc=1
  traffic bulk 10.12.0.2 5001 "$BULK_BYTES" > $OUT/traffic-bulk.out 2>&1 || rc=1
  traffic clock-client 10.13.0.2 6002 50 > $OUT/clock.out 2>&1 || rc=1
fi
echo $rc > $OUT/traffic.rc
# Until no socket can still send (a FIN retransmitted after a lost ACK): only listeners and
# TIME-WAIT left in /proc/net/tcp (states 0A and 06).
i=0
while awk 'NR > 1 && $4 != "0A" && $4 != "06" { busy = 1 } END { exit !busy }' /proc/net/tcp \
  && [ $i -lt 300 ]; do
  sleep 0.1
  i=$((i + 1))
done
if [ "$ROLE" = b ]; then
  counters after
  traffic bulk 10.13.0.1 6001 0 > /dev/null 2>&1 || say "ERROR: A did not take the done signal"
else
  wait $done_pid # B has closed everything: nothing more comes on the test link
  counters after
fi
cat $OUT/traffic-*.out
kill -INT $rpid
i=0
while kill -0 $rpid 2>/dev/null && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
if kill -0 $rpid 2>/dev/null; then
  say "ERROR: the recorder did not stop within 60 s of SIGINT; killing it"
  kill -KILL $rpid
fi
wait $rpid
echo $? > $OUT/recorder.rc
cat $OUT/recorder.log
say "recorder exit $(cat $OUT/recorder.rc), traffic exit $rc"
finish
