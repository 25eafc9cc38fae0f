#!/usr/bin/env bash
# Records real traffic with tcptape-record on a Debian production kernel booted under qemu, and
# checks the recording on the host. Usage: tests/vm/run.sh SERIES [--two-hosts]
#   (SERIES = 6.1 or 6.12)
#
# --two-hosts boots two guests of that kernel instead of one, each with a virtio-net NIC, joined
# by a qemu socket netdev (no host networking), each recording its side of the traffic between
# them (tests/vm/two-hosts-init.sh); the recordings are checked against what each guest's own
# kernel and applications counted (tests/vm/check_two_hosts.py).
#
# Steps: install the tools (root + apt), pick the newest Debian kernel package of the series,
# download and unpack it (cached under $TARGET/vm), build the release tcptape-record and the
# traffic program, build an initramfs, boot it (qemu, TCG, time limit), read the results back
# from a raw virtio disk, and check them (tests/vm/check.py). Exits 0 only when every check
# passes; on failure prints the VM's console log. See docs/kernels.md.
#
# Environment (all optional):
#   CARGO_TARGET_DIR         cargo's target directory (default: target/); the cache is in its vm/
#   TCPTAPE_VM_DELAY_MS      netem delay on the sender (default 100; 20 with --two-hosts)
#   TCPTAPE_VM_LOSS_PCT      netem loss on the second link (default 3; with --two-hosts, the
#                            receiver drops every 12th bulk packet instead: deterministic)
#   TCPTAPE_VM_TIMEOUT       time limit of the VM in seconds (default 240)
#   TCPTAPE_VM_CPUS          virtual CPUs of the VM (default 1); with more, the checks also want
#                            a ring buffer per CPU and events recorded on more than one
#   TCPTAPE_VM_NOFENTRY_ARGS recorder arguments that disable fentry (default: found in --help)
#   TCPTAPE_VM_RECORDER      a tcptape-record binary to test instead of building the release one
#   TCPTAPE_VM_ANALYZER      a tcptape binary for the host-side checks instead of building one
#   TCPTAPE_VM_NO_APT=1      do not run apt-get (use the tools and package lists as they are)
set -euo pipefail

usage() { echo "usage: $0 6.1|6.12 [--two-hosts]" >&2; exit 2; }
[ $# -eq 1 ] || [ $# -eq 2 ] || usage
SERIES=$1
TWO_HOSTS=
if [ $# -eq 2 ]; then
  [ "$2" = --two-hosts ] || usage
  TWO_HOSTS=1
fi
case $SERIES in
  6.1) PKG_RE='^linux-image-6\.1\.0-[0-9]+-amd64(-unsigned)?$' ;;
  6.12) PKG_RE='^linux-image-6\.12\.[0-9]+\+deb12-amd64(-unsigned)?$' ;;
  *) usage ;;
esac

START=$(date +%s)
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$ROOT"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
case $TARGET in /*) ;; *) TARGET=$ROOT/$TARGET ;; esac
export CARGO_TARGET_DIR=$TARGET
VM=$TARGET/vm
RUN=$VM/run-$SERIES${TWO_HOSTS:+-two-hosts}
# Two hosts under TCG move about 15 KB/s through a delaying netem: a shorter delay, less data.
DELAY_MS=${TCPTAPE_VM_DELAY_MS:-${TWO_HOSTS:+20}}
DELAY_MS=${DELAY_MS:-100}
LOSS_PCT=${TCPTAPE_VM_LOSS_PCT:-3}
TIMEOUT=${TCPTAPE_VM_TIMEOUT:-240}
CPUS=${TCPTAPE_VM_CPUS:-1}

step() { printf '\n==> [vm %s] %s (%ss)\n' "$SERIES" "$*" "$(($(date +%s) - START))"; }
fail() { echo "vm $SERIES: FAIL: $*" >&2; exit 1; }

WORK=$(mktemp -d)
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT

# --- tools -------------------------------------------------------------------------------------
NEED_PKGS="qemu-system-x86 busybox-static cpio xz-utils kmod iproute2 gcc libc6-dev binutils ethtool"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && [ "${TCPTAPE_VM_NO_APT:-}" != 1 ]; then
  step "apt-get update and install: $NEED_PKGS"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $NEED_PKGS >/dev/null
  if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
  fi
fi
for c in qemu-system-x86_64 cpio xz depmod gcc objcopy apt-cache apt-get dpkg-deb timeout python3; do
  command -v "$c" >/dev/null || fail "'$c' is missing (run as root to install it through apt)"
done
BUSYBOX=/bin/busybox
[ -x "$BUSYBOX" ] || fail "$BUSYBOX is missing (Debian package busybox-static)"
{ ldd "$BUSYBOX" 2>&1 || true; } | grep -Eq 'not a dynamic executable|statically linked' \
  || fail "$BUSYBOX is not static (install busybox-static)"
for b in /usr/sbin/ip /usr/sbin/tc; do [ -x "$b" ] || fail "$b is missing (iproute2)"; done

# --- kernel ------------------------------------------------------------------------------------
step "newest Debian kernel package of $SERIES"
# Plain amd64 flavour only (not cloud/rt), newest ABI/version; the unsigned package when there
# is one (same kernel, no signature wrapper).
PKG=$(apt-cache search --names-only "$PKG_RE" | cut -d' ' -f1 |
  awk '{ base = $0; sub(/-unsigned$/, "", base); print base, ($0 ~ /-unsigned$/ ? 1 : 0), $0 }' |
  sort -k1,1V -k2,2n | tail -1 | cut -d' ' -f3)
[ -n "$PKG" ] || fail "apt knows no package matching $PKG_RE (is bookworm in the apt sources? run apt-get update)"
VER=$(apt-cache policy "$PKG" | awk '/Candidate:/ { print $2 }')
[ -n "$VER" ] && [ "$VER" != "(none)" ] || fail "$PKG has no installable version"
echo "package: $PKG $VER"
KDIR=$VM/kernels/${PKG}_$VER
if [ ! -e "$KDIR/.complete" ]; then
  step "download $PKG $VER"
  rm -rf "$KDIR"
  mkdir -p "$VM/debs" "$KDIR"
  (cd "$WORK" && apt-get download "$PKG=$VER" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
  DEB=$(ls "$WORK"/"${PKG}"_*.deb 2>/dev/null | head -1)
  [ -n "$DEB" ] || fail "apt-get download $PKG=$VER produced no .deb"
  mv "$DEB" "$VM/debs/"
  DEB=$VM/debs/$(basename "$DEB")
  dpkg-deb -x "$DEB" "$KDIR"
  rm -f "$DEB"
  KVER=$(ls "$KDIR/lib/modules")
  depmod -b "$KDIR" "$KVER"
  touch "$KDIR/.complete"
fi
KVER=$(ls "$KDIR/lib/modules")
VMLINUZ=$KDIR/boot/vmlinuz-$KVER
[ -f "$VMLINUZ" ] || fail "no $VMLINUZ in $PKG"
echo "kernel: $KVER ($KDIR)"

# --- programs ----------------------------------------------------------------------------------
if [ -n "${TCPTAPE_VM_RECORDER:-}" ]; then
  RECORDER=$TCPTAPE_VM_RECORDER
else
  step "cargo build --release -p tcptape-recorder"
  cargo build --release --locked -p tcptape-recorder
  RECORDER=$TARGET/release/tcptape-record
fi
if [ -n "${TCPTAPE_VM_ANALYZER:-}" ]; then
  ANALYZER=$TCPTAPE_VM_ANALYZER
else
  # The workspace build the test suite makes (a `-p` build would resolve polars' features
  # differently and build it again): nothing to do after ci/test.sh's build.
  step "cargo build --workspace --all-targets (the analyzer)"
  cargo build --locked --workspace --all-targets
  ANALYZER=$TARGET/debug/tcptape
fi
[ -x "$RECORDER" ] || fail "no $RECORDER after the build"
[ -x "$ANALYZER" ] || fail "no $ANALYZER after the build"

step "traffic program (static C)"
mkdir -p "$VM"
gcc -static -O2 -Wall -Wextra -Werror -o "$VM/traffic" "$HERE/traffic.c"

# How the recorder is told not to use fentry: an explicit setting, or a flag found in its help.
NOFENTRY_NOTE=
if [ -n "${TCPTAPE_VM_NOFENTRY_ARGS+x}" ]; then
  NOFENTRY_ARGS=$TCPTAPE_VM_NOFENTRY_ARGS
else
  HELP=$("$RECORDER" --help 2>&1 || true)
  if grep -q -- '--attach-mode' <<<"$HELP"; then
    NOFENTRY_ARGS="--attach-mode kprobe"
  elif grep -q -- '--no-fentry' <<<"$HELP"; then
    NOFENTRY_ARGS="--no-fentry"
  else
    NOFENTRY_ARGS=
    NOFENTRY_NOTE="tcptape-record has no flag to disable fentry: neither --attach-mode nor --no-fentry is in 'tcptape-record --help'"
  fi
fi
echo "fentry disabled by: ${NOFENTRY_ARGS:-(nothing: $NOFENTRY_NOTE)}"

# --- initramfs ---------------------------------------------------------------------------------
step "initramfs"
R=$WORK/root
mkdir -p "$R"/{bin,proc,sys,dev,tmp,run,var,etc,lib/vmmods,usr/sbin,usr/bin,lib64}
ln -s /run "$R/var/run"
cp "$BUSYBOX" "$R/bin/busybox"
for a in $("$BUSYBOX" --list); do
  case $a in ip | busybox) continue ;; esac # iproute2's ip by full path: busybox's lacks netns
  ln -sf busybox "$R/bin/$a"
done
copy_libs() { # the shared libraries of a binary, per ldd
  local l
  for l in $(ldd "$1" 2>/dev/null | grep -o '/[^ ]*' || true); do
    mkdir -p "$R$(dirname "$l")"
    cp -L "$l" "$R$l"
  done
}
for b in /usr/sbin/ip /usr/sbin/tc; do cp "$b" "$R/usr/sbin/"; copy_libs "$b"; done
if [ -n "$TWO_HOSTS" ]; then
  # To turn GRO off on the receiver (one of the setups).
  [ -x /usr/sbin/ethtool ] || fail "/usr/sbin/ethtool is missing (Debian package ethtool)"
  cp /usr/sbin/ethtool "$R/usr/sbin/"
  copy_libs /usr/sbin/ethtool
fi
objcopy --strip-debug "$RECORDER" "$R/usr/bin/tcptape-record" # smaller initramfs, quicker boot
copy_libs "$RECORDER"
cp "$VM/traffic" "$R/usr/bin/traffic"
cp -L /lib64/ld-linux-x86-64.so.2 "$R/lib64/"

# Modules: veth, netem, and the virtio disk the results come back on, with their dependencies
# (modules.dep lists them so that loading right to left works). Built-in ones are skipped.
MODDIR=$KDIR/lib/modules/$KVER
: > "$R/lib/vmmods/order"
declare -A LOADED=()
add_module() {
  local name=$1 path deps d
  path=$(grep -E "(^|/)${name}\.ko(\.xz|\.zst|\.gz)?:" "$MODDIR/modules.dep" | head -1 | cut -d: -f1 || true)
  if [ -z "$path" ]; then
    grep -qE "(^|/)${name}\.ko" "$MODDIR/modules.builtin" 2>/dev/null && return 0
    fail "module $name is neither in modules.dep nor built into $KVER"
  fi
  deps=$(grep -E "^${path//+/\\+}:" "$MODDIR/modules.dep" | cut -d: -f2-)
  for d in $(tr ' ' '\n' <<<"$deps" | tac); do add_file "$d"; done
  add_file "$path"
}
add_file() {
  local p=$1 base
  base=$(basename "$p"); base=${base%.xz}; base=${base%.zst}; base=${base%.gz}
  [ -n "${LOADED[$base]:-}" ] && return 0
  LOADED[$base]=1
  case $p in
    *.xz) xz -dc "$MODDIR/$p" > "$R/lib/vmmods/$base" ;;
    *.zst) zstd -dcq "$MODDIR/$p" > "$R/lib/vmmods/$base" ;;
    *.gz) gzip -dc "$MODDIR/$p" > "$R/lib/vmmods/$base" ;;
    *) cp "$MODDIR/$p" "$R/lib/vmmods/$base" ;;
  esac
  echo "$base" >> "$R/lib/vmmods/order"
}
for m in virtio_pci virtio_blk veth sch_netem ${TWO_HOSTS:+virtio_net sch_ingress cls_u32 act_gact}; do
  add_module "$m"
done
echo "modules: $(tr '\n' ' ' < "$R/lib/vmmods/order")"

cat > "$R/etc/vmtest.conf" <<EOF
DELAY_MS=$DELAY_MS
LOSS_PCT=$LOSS_PCT
BULK_BYTES=1048576
BULK_RATE=1250000
LOSS_BYTES=1048576
RR_COUNT=30
RR_REQ=1000
RR_RESP=2000
RR_SLOW_MS=5
RECORD_CAP_SECS=120
GUEST_LIMIT_SECS=$((TIMEOUT > 90 ? TIMEOUT - 45 : TIMEOUT / 2))
NOFENTRY_ARGS="$NOFENTRY_ARGS"
EOF
if [ -n "$TWO_HOSTS" ]; then
  printf 'BULK_BYTES=98304\nRR_COUNT=20\nDROP_EVERY=12\n' >> "$R/etc/vmtest.conf"
  cp "$HERE/two-hosts-init.sh" "$R/init"
else
  cp "$HERE/guest-init.sh" "$R/init"
fi
chmod +x "$R/init"
rm -rf "$RUN"
mkdir -p "$RUN"
(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1 > "$RUN/initramfs.gz")
echo "initramfs: $(du -h "$RUN/initramfs.gz" | cut -f1)"

if [ -n "$TWO_HOSTS" ]; then
  # shellcheck source=tests/vm/two-hosts-boot.sh
  . "$HERE/two-hosts-boot.sh"
  exit 0
fi

# --- boot --------------------------------------------------------------------------------------
step "boot $KVER under qemu (TCG, $CPUS CPUs, limit ${TIMEOUT}s)"
truncate -s 512M "$RUN/out.img"
BOOT_START=$(date +%s)
set +e
# One TCG thread for all vCPUs: with a thread per vCPU, QEMU 7.2 can keep running a translation
# of kernel text that a static key has since patched back (an `int3` left by text_poke_bp, hit
# long after the patch finished: "Oops: int3" in handle_softirqs once the recorder detaches from
# softirq_entry). Real CPUs do not do that; the guest must not pay for the emulator's race.
timeout --foreground -k 10 "$TIMEOUT" qemu-system-x86_64 -accel tcg,thread=single -cpu max -m 1536 -smp "$CPUS" \
  -kernel "$VMLINUZ" -initrd "$RUN/initramfs.gz" \
  -append "console=ttyS0 quiet panic=-1 oops=panic" \
  -drive "file=$RUN/out.img,format=raw,if=virtio" \
  -nographic -no-reboot -nic none < /dev/null > "$RUN/console.log" 2>&1
QEMU_RC=$?
set -e
BOOT_SECS=$(($(date +%s) - BOOT_START))
grep -a '^vmtest:' "$RUN/console.log" || true
echo "VM exit $QEMU_RC after ${BOOT_SECS}s"
console() {
  echo "----- console log of the VM ($RUN/console.log) -----" >&2
  cat "$RUN/console.log" >&2
  echo "----- end of console log -----" >&2
}
if [ "$QEMU_RC" = 124 ] || [ "$QEMU_RC" = 137 ]; then
  console
  fail "the VM did not finish within ${TIMEOUT}s"
fi
mkdir -p "$RUN/results"
if ! tar -xf "$RUN/out.img" -C "$RUN/results" 2>"$WORK/tar.err" || [ ! -f "$RUN/results/kernel_release" ]; then
  cat "$WORK/tar.err" >&2
  console
  fail "no results came back from the VM (qemu exit $QEMU_RC)"
fi
rm -f "$RUN/out.img"

# --- checks ------------------------------------------------------------------------------------
step "host-side checks"
PY=$TARGET/pyenv/bin/python
if ! "$PY" -c 'import duckdb' 2>/dev/null; then
  python3 -m venv "$TARGET/pyenv"
  "$TARGET/pyenv/bin/pip" install -q --disable-pip-version-check duckdb pyarrow pandas
fi
set +e
"$PY" "$HERE/check.py" --results "$RUN/results" --analyzer "$ANALYZER" \
  --series "$SERIES" --package "$PKG $VER" --nofentry-note "$NOFENTRY_NOTE" \
  --boot-secs "$BOOT_SECS" --cpus "$CPUS"
CHECK_RC=$?
set -e
TOTAL=$(($(date +%s) - START))
if [ "$CHECK_RC" != 0 ]; then
  console
  echo "vm $SERIES ($KVER): FAILED after ${TOTAL}s (results in $RUN/results)" >&2
  exit 1
fi
echo "vm $SERIES ($KVER): all checks passed in ${TOTAL}s (VM ${BOOT_SECS}s)"
