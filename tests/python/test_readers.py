"""A tcptape recording opens in DuckDB, pyarrow and pandas with the column names and types the
README documents, and its metadata is visible to them.

Run by ci/test.sh: `python -m pytest tests/python`. Needs the `tcptape-record` binary (built by
cargo; override with TCPTAPE_RECORD) and duckdb, pyarrow, pandas.
"""

import json
import pathlib
import re
import subprocess

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest
from tcptape_bins import recorder

ROOT = pathlib.Path(__file__).resolve().parents[2]


def documented_schema():
    """Rows of the README's schema table: column -> (arrow, duckdb, pandas, nullable)."""
    readme = (ROOT / "README.md").read_text()
    table = readme.split("<!-- schema:begin -->")[1].split("<!-- schema:end -->")[0]
    rows = {}
    for line in table.strip().splitlines()[2:]:
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        rows[cells[0]] = (cells[1], cells[2], cells[3], cells[4])
    assert len(rows) >= 30, "schema table not found in README.md"
    return rows


def documented_version():
    """The schema version the README documents (its heading "The recording (schema version N)")."""
    readme = (ROOT / "README.md").read_text()
    m = re.search(r"^## The recording \(schema version (\d+)\)$", readme, re.M)
    assert m, "no schema version heading in README.md"
    return m.group(1)


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    out = tmp_path_factory.mktemp("rec") / "synth.parquet"
    subprocess.run(
        [recorder(), "synth", "-o", str(out), "--events", "20000", "--seed", "3", "-q"],
        check=True,
    )
    return out


def test_duckdb_sees_documented_columns_and_types(recording):
    con = duckdb.connect()
    described = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{recording}')").fetchall()
    got = [(row[0], row[1]) for row in described]
    want = [(name, d[1]) for name, d in documented_schema().items()]
    assert got == want


def test_duckdb_queries_stages_and_metadata(recording):
    con = duckdb.connect()
    kinds = dict(
        con.execute(
            f"SELECT kind, count(*) FROM read_parquet('{recording}') GROUP BY kind"
        ).fetchall()
    )
    assert kinds["tx_sendmsg"] > 0 and kinds["rx_app"] > 0
    assert sum(kinds.values()) == 20000
    kv = {
        k.decode(): v.decode()
        for k, v in con.execute(
            f"SELECT key, value FROM parquet_kv_metadata('{recording}')"
        ).fetchall()
    }
    assert kv["tcptape.schema_version"] == documented_version()
    assert json.loads(kv["tcptape.segment"])["last"] is True
    # The per-stage latency a user would write by hand: enqueue -> dequeue of the same skb.
    p50 = con.execute(
        f"""
        WITH q AS (SELECT skb, kind, ts_ns FROM read_parquet('{recording}')
                   WHERE kind IN ('tx_qdisc_enq', 'tx_qdisc_deq'))
        SELECT median(d.ts_ns - e.ts_ns) FROM q e JOIN q d USING (skb)
        WHERE e.kind = 'tx_qdisc_enq' AND d.kind = 'tx_qdisc_deq'
        """
    ).fetchone()[0]
    # The synthetic bulk mix queues for a log-normal delay with a 200 µs median.
    assert 150_000 < p50 < 250_000


def test_pyarrow_and_pandas_see_documented_types(recording):
    schema = documented_schema()
    table = pq.read_table(recording)
    assert table.column_names == list(schema)
    for field in table.schema:
        arrow, _, _, nullable = schema[field.name]
        assert str(field.type) == arrow, field.name
        assert field.nullable == (nullable == "yes"), field.name
    assert (
        pq.read_metadata(recording).metadata[b"tcptape.schema_version"]
        == documented_version().encode()
    )

    df = pd.read_parquet(recording, dtype_backend="numpy_nullable")
    assert list(df.columns) == list(schema)
    for name, (_, _, dtype, _) in schema.items():
        assert str(df[name].dtype) == dtype, name
    assert df["ts_ns"].is_monotonic_increasing
    assert re.fullmatch(r"10\.200\.0\.\d+", df["saddr"].dropna().iloc[0])
