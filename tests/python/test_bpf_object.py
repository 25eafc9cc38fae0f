"""Every CO-RE relocation of the eBPF object names a kernel type.

A relocation the loader cannot resolve does not fail the load: the loader replaces the
instruction with a call that the verifier refuses, but only when that code is reachable. Code
behind a setting that is off on one host (a filter, an address only some kernels publish) then
loads there and fails on another kernel. So the object's relocations are read here (.BTF.ext)
and each relocated type must exist in the running kernel's BTF, by name (a `___flavor` suffix
names the same kernel type, checked by its base name).

Run by ci/test.sh with the other Python tests; needs bpftool and /sys/kernel/btf/vmlinux.
"""

import os
import pathlib
import re
import shutil
import struct
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
OBJECT = pathlib.Path(os.environ.get("TCPTAPE_BPF_OBJECT", ROOT / "ebpf" / "prebuilt" / "tcptape.bpf.o"))
VMLINUX = pathlib.Path("/sys/kernel/btf/vmlinux")


def elf_sections(data):
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    raw = []
    for i in range(shnum):
        name, _typ, _flags, _addr, off, size = struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize)
        raw.append((name, off, size))
    str_off = raw[shstrndx][1]

    def name_at(n):
        end = data.index(b"\0", str_off + n)
        return data[str_off + n:end].decode()

    return {name_at(n): (off, size) for n, off, size in raw}


def core_relocations(data):
    """(program section, relocated type id, access string) of every CO-RE relocation."""
    secs = elf_sections(data)
    btf_off, _ = secs[".BTF"]
    _magic, _ver, _flags, hdr_len, _toff, _tlen, str_off, str_len = struct.unpack_from(
        "<HBBIIIII", data, btf_off)
    strings = data[btf_off + hdr_len + str_off:btf_off + hdr_len + str_off + str_len]

    def string(o):
        return strings[o:strings.index(b"\0", o)].decode()

    ext_off, _ = secs[".BTF.ext"]
    ext = struct.unpack_from("<HBBIIIIIIII", data, ext_off)
    ext_hdr_len, core_off, core_len = ext[3], ext[8], ext[9]
    p = ext_off + ext_hdr_len + core_off
    end = p + core_len
    rec_size = struct.unpack_from("<I", data, p)[0]
    p += 4
    out = []
    while p < end:
        sec, n = struct.unpack_from("<II", data, p)
        p += 8
        for _ in range(n):
            _insn, type_id, access, _kind = struct.unpack_from("<IIII", data, p)
            p += rec_size
            out.append((string(sec), type_id, string(access)))
    return out


def type_names(btf_dump):
    """{id: (kind, name)} from `bpftool btf dump file ...` (raw format)."""
    names = {}
    for line in btf_dump.splitlines():
        m = re.match(r"\[(\d+)\] (\w+) '([^']*)'", line)
        if m:
            names[int(m.group(1))] = (m.group(2), m.group(3))
    return names


@pytest.mark.skipif(shutil.which("bpftool") is None or not VMLINUX.exists(),
                    reason="needs bpftool and /sys/kernel/btf/vmlinux")
def test_every_relocated_type_exists_in_the_kernel():
    data = OBJECT.read_bytes()
    dump = lambda f: subprocess.run(["bpftool", "btf", "dump", "file", str(f)],
                                    check=True, capture_output=True, text=True).stdout
    local = type_names(dump(OBJECT))
    kernel = {(kind, name) for kind, name in type_names(dump(VMLINUX)).values()}
    relocs = core_relocations(data)
    assert len(relocs) > 100, f"only {len(relocs)} relocations read"
    missing = set()
    for section, type_id, access in relocs:
        kind, name = local.get(type_id, ("?", "?"))
        base = name.split("___")[0]
        if (kind, base) not in kernel:
            missing.add(f"{kind} {name} ({section}, access {access})")
    assert not missing, "relocated types the kernel does not have:\n" + "\n".join(sorted(missing))
