# Sourced by tests/vm/run.sh with --two-hosts, once the initramfs is built: boots guest A (the
# sender) and guest B (the receiver) from it, reads both results back and checks them, in two NIC
# setups:
#   socket  the test link is a qemu socket netdev: virtio-net without offloads (no SG, TSO or
#           checksum offload), so TCP's multi-MSS skbs are segmented in software after the qdisc;
#   tap     the test link is two taps on a bridge in a network namespace of their own, with
#           vnet_hdr: TSO, GSO and checksum offload on, and TSO frames cross whole (as with LRO);
#   nogro   the socket link with GRO turned off on both guests (ethtool -K DEV gro off): every
#           frame goes up the stack as it came.
# The control link is a socket netdev in both. Uses run.sh's variables and functions (RUN,
# VMLINUZ, TIMEOUT, CPUS, WORK, step, fail, ...). Exits through run.sh's `exit`.

PY=$TARGET/pyenv/bin/python
if ! "$PY" -c 'import duckdb' 2>/dev/null; then
  python3 -m venv "$TARGET/pyenv"
  "$TARGET/pyenv/bin/pip" install -q --disable-pip-version-check duckdb pyarrow pandas
fi

# The tap setup's namespace, removed however the run ends.
NS=tcptape-vm$$
trap 'ip netns del "$NS" 2>/dev/null || true; rm -rf "$WORK"' EXIT

run_setup() { # socket|tap|nogro
  local setup=$1 dir=$RUN/$1 in_ns=() link_port ctl_port rc_a rc_b qa qb boot_start
  mkdir -p "$dir"
  # Ports for the socket links between the two qemus: A listens, B connects.
  link_port=$((20000 + (RANDOM % 20000)))
  ctl_port=$((link_port + 1))
  if [ "$setup" = tap ]; then
    ip netns add "$NS"
    ip -n "$NS" link set lo up
    ip -n "$NS" link add br0 type bridge
    ip -n "$NS" link set br0 up
    for t in tapa tapb; do
      ip -n "$NS" tuntap add "$t" mode tap vnet_hdr
      ip -n "$NS" link set "$t" master br0 up
    done
    in_ns=(ip netns exec "$NS")
  fi
  boot() { # ROLE listen|connect N
    local test_nic
    if [ "$setup" = tap ]; then
      test_nic="tap,id=n0,ifname=tap$1,script=no,downscript=no,vhost=off"
    else
      test_nic="socket,id=n0,$2=127.0.0.1:$link_port"
    fi
    truncate -s 256M "$dir/out-$1.img"
    "${in_ns[@]}" timeout --foreground -k 10 "$TIMEOUT" qemu-system-x86_64 -accel tcg,thread=single -cpu max \
      -m 1024 -smp "$CPUS" -kernel "$VMLINUZ" -initrd "$RUN/initramfs.gz" \
      -append "console=ttyS0 quiet panic=-1 oops=panic tcptape.role=$1 tcptape.setup=$setup" \
      -drive "file=$dir/out-$1.img,format=raw,if=virtio" \
      -netdev "$test_nic" -device "virtio-net-pci,netdev=n0,mac=52:54:00:12:00:0$3" \
      -netdev "socket,id=n1,$2=127.0.0.1:$ctl_port" \
      -device "virtio-net-pci,netdev=n1,mac=52:54:00:13:00:0$3" \
      -nographic -no-reboot < /dev/null > "$dir/console-$1.log" 2>&1
  }
  step "$setup link: boot $KVER twice under qemu (TCG, $CPUS CPUs each, limit ${TIMEOUT}s)"
  boot_start=$(date +%s)
  set +e
  boot a listen 1 &
  qa=$!
  # B connects once A's qemu listens.
  for _ in $(seq 1 100); do
    "${in_ns[@]}" grep -q ":$(printf '%04X' "$ctl_port") 00000000:0000 0A" /proc/net/tcp \
      2>/dev/null && break
    sleep 0.1
  done
  boot b connect 2 &
  qb=$!
  wait $qa
  rc_a=$?
  wait $qb
  rc_b=$?
  set -e
  BOOT_SECS=$(($(date +%s) - boot_start))
  [ "$setup" = tap ] && ip netns del "$NS"
  grep -a '^vmtest' "$dir/console-a.log" "$dir/console-b.log" || true
  echo "VM A exit $rc_a, VM B exit $rc_b, after ${BOOT_SECS}s"
  consoles() {
    for r in a b; do
      echo "----- console log of VM $r ($dir/console-$r.log) -----" >&2
      cat "$dir/console-$r.log" >&2
    done
    echo "----- end of console logs -----" >&2
  }
  for r in a b; do
    rm -rf "$dir/results-$r"
    mkdir -p "$dir/results-$r"
    if ! tar -xf "$dir/out-$r.img" -C "$dir/results-$r" 2>"$WORK/tar.err" ||
      [ ! -f "$dir/results-$r/kernel_release" ]; then
      cat "$WORK/tar.err" >&2
      consoles
      fail "$setup link: no results came back from VM $r (qemu exits: A $rc_a, B $rc_b)"
    fi
    rm -f "$dir/out-$r.img"
  done

  step "$setup link: host-side checks"
  set +e
  "$PY" "$HERE/check_two_hosts.py" --a "$dir/results-a" --b "$dir/results-b" --setup "$setup" \
    --analyzer "$ANALYZER" --series "$SERIES" --package "$PKG $VER" --boot-secs "$BOOT_SECS"
  local check_rc=$?
  set -e
  if [ "$check_rc" != 0 ]; then
    consoles
    echo "vm $SERIES two hosts, $setup link ($KVER): FAILED (results in $dir/results-a, -b)" >&2
    return 1
  fi
}

FAILED=
for setup in socket tap nogro; do
  run_setup "$setup" || FAILED="$FAILED $setup"
done
TOTAL=$(($(date +%s) - START))
if [ -n "$FAILED" ]; then
  echo "vm $SERIES two hosts ($KVER): FAILED after ${TOTAL}s:$FAILED" >&2
  exit 1
fi
echo "vm $SERIES two hosts ($KVER): all checks passed in every setup in ${TOTAL}s"
