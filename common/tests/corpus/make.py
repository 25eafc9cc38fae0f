#!/usr/bin/env python3
"""Regenerates the hostile-input corpus: damaged and mutated recordings that the reader must
refuse without panicking. Usage: make.py TCPTAPE_RECORD_BINARY (needs pyarrow)."""
import json
import pathlib
import random
import subprocess
import sys
import tempfile

import pyarrow as pa
import pyarrow.parquet as pq

here = pathlib.Path(__file__).parent
for f in here.glob("*.parquet"):
    f.unlink()
with tempfile.TemporaryDirectory() as tmp:
    src = pathlib.Path(tmp) / "good.parquet"
    subprocess.run([sys.argv[1], "synth", "-o", str(src), "--events", "300", "--seed", "1", "-q"], check=True)
    good = src.read_bytes()
    meta = pq.read_metadata(src).metadata
    table = pq.read_table(src)

rng = random.Random(7)
(here / "good-small.parquet").write_bytes(good)
for n in (3, 4, 8, len(good) // 3, len(good) - 9, len(good) - 1):
    (here / f"bad-truncated-{n}.parquet").write_bytes(good[:n])
footer_len = int.from_bytes(good[-8:-4], "little")
for i in range(12):
    b = bytearray(good)
    at = rng.randrange(len(good) - 8 - footer_len, len(good) - 8)
    b[at] ^= 1 << rng.randrange(8)
    (here / f"any-footer-flip-{i}.parquet").write_bytes(bytes(b))
b = bytearray(good)
b[-8:-4] = (0xFFFFFFF0).to_bytes(4, "little")
(here / "bad-footer-length.parquet").write_bytes(bytes(b))


def write(name, tbl, kv):
    tbl = tbl.replace_schema_metadata(kv)
    pq.write_table(tbl, here / name)


write("bad-ts-as-string.parquet", table.set_column(0, "ts_ns", table.column(0).cast(pa.string())), meta)
write("bad-missing-kind.parquet", table.drop_columns(["kind"]), meta)
newer = dict(meta)
newer[b"tcptape.schema_version"] = b"2"
write("bad-newer-schema.parquet", table, newer)
garbage = dict(meta)
garbage[b"tcptape.lost"] = b'{"ring_per_cpu": "many"}'
write("bad-metadata-type.parquet", table, garbage)
huge = dict(meta)
huge[b"tcptape.seen"] = json.dumps({f"s{i}": i for i in range(20000)}).encode()
write("any-large-metadata.parquet", table, huge)
write("bad-foreign.parquet", table, {b"pandas": b"{}"})
