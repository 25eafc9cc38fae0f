# Sourced by tests/vm/run.sh with --two-hosts, once the initramfs is built: boots guest A (the
# sender) and guest B (the receiver) from it, joined by a qemu socket netdev, reads both results
# back and checks them. Uses run.sh's variables and functions (RUN, VMLINUZ, TIMEOUT, CPUS, step,
# fail, ...). Exits through run.sh's `exit`.

# Ports for the links between the two qemus (the test link, the control link): A listens on
# them, B connects.
LINK_PORT=$((20000 + (RANDOM % 20000)))
CTL_PORT=$((LINK_PORT + 1))
step "boot $KVER twice under qemu (TCG, $CPUS CPUs each, link on 127.0.0.1:$LINK_PORT, limit ${TIMEOUT}s)"
boot() { # ROLE listen|connect N
  truncate -s 256M "$RUN/out-$1.img"
  timeout --foreground -k 10 "$TIMEOUT" qemu-system-x86_64 -accel tcg -cpu max -m 1024 \
    -smp "$CPUS" -kernel "$VMLINUZ" -initrd "$RUN/initramfs.gz" \
    -append "console=ttyS0 quiet panic=-1 oops=panic tcptape.role=$1" \
    -drive "file=$RUN/out-$1.img,format=raw,if=virtio" \
    -netdev "socket,id=n0,$2=127.0.0.1:$LINK_PORT" -device "virtio-net-pci,netdev=n0,mac=52:54:00:12:00:0$3" \
    -netdev "socket,id=n1,$2=127.0.0.1:$CTL_PORT" -device "virtio-net-pci,netdev=n1,mac=52:54:00:13:00:0$3" \
    -nographic -no-reboot < /dev/null > "$RUN/console-$1.log" 2>&1
}
BOOT_START=$(date +%s)
set +e
boot a listen 1 &
QEMU_A=$!
# B connects once A's qemu listens on both.
for _ in $(seq 1 100); do
  grep -q ":$(printf '%04X' "$CTL_PORT") 00000000:0000 0A" /proc/net/tcp 2>/dev/null && break
  sleep 0.1
done
boot b connect 2 &
QEMU_B=$!
wait $QEMU_A
RC_A=$?
wait $QEMU_B
RC_B=$?
set -e
BOOT_SECS=$(($(date +%s) - BOOT_START))
grep -a '^vmtest' "$RUN/console-a.log" "$RUN/console-b.log" || true
echo "VM A exit $RC_A, VM B exit $RC_B, after ${BOOT_SECS}s"
consoles() {
  for r in a b; do
    echo "----- console log of VM $r ($RUN/console-$r.log) -----" >&2
    cat "$RUN/console-$r.log" >&2
  done
  echo "----- end of console logs -----" >&2
}
for r in a b; do
  mkdir -p "$RUN/results-$r"
  if ! tar -xf "$RUN/out-$r.img" -C "$RUN/results-$r" 2>"$WORK/tar.err" ||
    [ ! -f "$RUN/results-$r/kernel_release" ]; then
    cat "$WORK/tar.err" >&2
    consoles
    fail "no results came back from VM $r (qemu exits: A $RC_A, B $RC_B)"
  fi
  rm -f "$RUN/out-$r.img"
done

step "host-side checks (two hosts)"
PY=$TARGET/pyenv/bin/python
if ! "$PY" -c 'import duckdb' 2>/dev/null; then
  python3 -m venv "$TARGET/pyenv"
  "$TARGET/pyenv/bin/pip" install -q --disable-pip-version-check duckdb pyarrow pandas
fi
set +e
"$PY" "$HERE/check_two_hosts.py" --a "$RUN/results-a" --b "$RUN/results-b" \
  --analyzer "$ANALYZER" --series "$SERIES" --package "$PKG $VER" --boot-secs "$BOOT_SECS"
CHECK_RC=$?
set -e
TOTAL=$(($(date +%s) - START))
if [ "$CHECK_RC" != 0 ]; then
  consoles
  echo "vm $SERIES two hosts ($KVER): FAILED after ${TOTAL}s (results in $RUN/results-a, -b)" >&2
  exit 1
fi
echo "vm $SERIES two hosts ($KVER): all checks passed in ${TOTAL}s (VMs ${BOOT_SECS}s)"
