"""`tcptape sql stages` runs on DuckDB and on Spark SQL (local mode) and gives the report's
breakdown: per stage pair the same counts and maxima as `tcptape report --format json`, the same
nearest-rank percentiles on one recording, and over a recording set of several hosts percentiles
within the report's documented pooling rule (`pooled.rule`: at most 2.33 % above the exact value).

The recordings are the bundled samples: real captures on veth and between two guests with
virtio-net NICs (TCP clones, software GSO and qdisc segmentation among them: the test checks
that the query joined some of each, so every journey rule is exercised) and a synthetic one.

Run by ci/test.sh: `python -m pytest tests/python`. Needs the `tcptape` binary (override with
TCPTAPE), duckdb, pyspark and a Java runtime. Without pyspark or Java the Spark tests skip, saying
so, unless TCPTAPE_E2E_REQUIRED=1 (ci/test.sh as root), where they fail.
"""

import json
import pathlib
import shutil
import subprocess

import duckdb
import pytest
from tcptape_bins import analyzer, unavailable

ROOT = pathlib.Path(__file__).resolve().parents[2]
SAMPLES = sorted((ROOT / "samples").glob("*.parquet"))
# A set of four hosts: two joined by a virtio-net link, a veth bulk transfer with loss, synthetic.
SET_HOSTS = {
    "a": "two-hosts-a.parquet",
    "b": "two-hosts-b.parquet",
    "c": "bulk-loss.parquet",
    "d": "synthetic-bulk.parquet",
}
COLUMNS = ["count", "p50_ns", "p90_ns", "p99_ns", "max_ns"]
# The report's pooled percentiles: the upper edge (less 1 ns) of the 1/100-decade bin that holds
# the exact value.
POOLED_RATIO = 10 ** (1 / 100)


def query(path, engine) -> str:
    return subprocess.run(
        [analyzer(), "sql", "stages", str(path), "--engine", engine],
        check=True, capture_output=True, text=True,
    ).stdout


def report(path):
    out = subprocess.run(
        [analyzer(), "report", "-q", "--format", "json", str(path)],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out)


def by_pair(rows):
    """{(from, to): (count, p50, p90, p99, max)} of the query's rows or the report's stages."""
    return {
        (r["from"], r["to"]): tuple(int(r[c]) for c in COLUMNS) for r in rows
    }


def assert_same(sql_rows, report_stages, where):
    got, want = by_pair(sql_rows), by_pair(report_stages)
    assert got == want, f"{where}: the query and the report disagree\nsql:    {got}\nreport: {want}"


def assert_pooled(sql_rows, pooled, where):
    got, want = by_pair(sql_rows), by_pair(pooled)
    assert got.keys() == want.keys(), f"{where}: stage pairs differ: {got.keys() ^ want.keys()}"
    for pair, (n, *qs, mx) in got.items():
        rn, *rqs, rmx = want[pair]
        assert (n, mx) == (rn, rmx), f"{where} {pair}: count/max {n, mx} vs report {rn, rmx}"
        for exact, pooled_value in zip(qs, rqs):
            upper = max(int(exact * POOLED_RATIO) + 1, 0)
            assert exact <= pooled_value <= min(upper, mx) or (exact <= 0 and pooled_value == 0), (
                f"{where} {pair}: report's pooled percentile {pooled_value} is not within the "
                f"rule of the exact {exact}"
            )


@pytest.fixture(scope="module")
def recording_set(tmp_path_factory):
    """The samples of SET_HOSTS laid out as `tcptape-record --into` lays out a set."""
    root = tmp_path_factory.mktemp("set")
    for host, name in SET_HOSTS.items():
        d = root / f"host={host}" / "date=2026-01-01"
        d.mkdir(parents=True)
        shutil.copy(ROOT / "samples" / name, d / "tcptape.parquet")
    return root


def duckdb_rows(sql):
    con = duckdb.connect()
    cur = con.execute(sql)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def links(sql, run):
    """Rows the query's clone and GSO joins and write matches made (its intermediate tables)."""
    body = sql[: sql.rindex("SELECT src AS from")]
    return {
        t: run(body + f"SELECT count(*) AS n FROM {t}")[0]["n"]
        for t in ("journey_c WHERE xt IS NOT NULL", "gso_link", "write_first WHERE firstsend = 1")
    }


def test_duckdb_gives_the_reports_stages_on_every_sample():
    assert len(SAMPLES) >= 5, "the samples are missing"
    seen = {}
    for path in SAMPLES:
        sql = query(path, "duckdb")
        assert_same(duckdb_rows(sql), report(path)["stages"], path.name)
        for k, n in links(sql, duckdb_rows).items():
            seen[k] = seen.get(k, 0) + n
    # Every journey rule was exercised, not only the adjacent hops.
    assert all(n > 0 for n in seen.values()), f"a join of the query was never used: {seen}"


def test_duckdb_over_a_set_gives_the_pooled_counts(recording_set):
    rep = report(recording_set)
    assert len(rep["hosts"]) == len(SET_HOSTS)
    rows = duckdb_rows(query(recording_set, "duckdb"))
    assert_pooled(rows, rep["pooled"]["stages"], "set")
    # Hosts stay apart: the sum of each host's own query is the set's.
    per_host = {}
    for host, name in SET_HOSTS.items():
        for pair, (n, *_) in by_pair(duckdb_rows(query(ROOT / "samples" / name, "duckdb"))).items():
            per_host[pair] = per_host.get(pair, 0) + n
    assert {p: v[0] for p, v in by_pair(rows).items()} == per_host


def relabelled(src, dst, factor, shift):
    """A copy of `src` whose sequence numbers are `seq * factor + shift` (mod 2^32) and whose
    lengths are `len * factor`: the same packets at the same times, with sequence ranges that
    wrap, or with sockets that send `factor` times more bytes."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    t = pq.read_table(src)

    def scaled(name, add, wrap):
        c = pc.add(pc.multiply(pc.cast(t.column(name), pa.uint64()), factor), add)
        return pc.cast(pc.bit_wise_and(c, 2**32 - 1) if wrap else c, pa.uint32())

    for name, add, wrap in (("seq", shift, True), ("len", 0, False)):
        t = t.set_column(t.schema.get_field_index(name), t.schema.field(name), scaled(name, add, wrap))
    meta = {k: v for k, v in pq.read_metadata(src).metadata.items() if k != b"ARROW:schema"}
    pq.write_table(t.replace_schema_metadata(meta), dst, compression="zstd")


def test_sequence_numbers_that_wrap_and_sockets_past_4_gib_keep_every_write_match(tmp_path):
    """Relabelling sequence numbers changes no time: the writes' pair must stay as it was, in the
    report and in the query, when the ranges wrap and when a socket sends over 4 GiB within the
    gap (synthetic-bulk's sockets send about 250 MB each: times 400 is about 100 GB in 349 ms)."""
    src = ROOT / "samples" / "synthetic-bulk.parquet"
    base = by_pair(report(src)["stages"])[("tx_sendmsg", "tx_tcp_xmit")]
    for name, factor, shift in (("wrapped", 1, 2**32 - 1_000_000_000), ("over-4-gib", 400, 0)):
        path = tmp_path / f"{name}.parquet"
        relabelled(src, path, factor, shift)
        stages = report(path)["stages"]
        assert by_pair(stages)[("tx_sendmsg", "tx_tcp_xmit")] == base, f"report, {name}"
        assert_same(duckdb_rows(query(path, "duckdb")), stages, name)


def test_a_directory_of_several_hosts_without_host_dirs_is_refused(tmp_path):
    for name in ("two-hosts-a.parquet", "two-hosts-b.parquet"):
        shutil.copy(ROOT / "samples" / name, tmp_path / name)
    p = subprocess.run(
        [analyzer(), "sql", "stages", str(tmp_path)], capture_output=True, text=True
    )
    assert p.returncode == 2, p
    assert "host=NAME" in p.stderr and p.stdout == ""


@pytest.fixture(scope="module")
def spark():
    message = None
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        message = "pyspark is not installed (pip install pyspark): the Spark query is not checked"
    if message is None and shutil.which("java") is None:
        message = "no Java runtime (apt-get install default-jre-headless): Spark cannot run"
    if message:
        unavailable(message)
    session = (
        SparkSession.builder.master("local[2]")
        .appName("tcptape-sql-test")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.driver.memory", "2g")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    # What the query's first comment asks for on Spark.
    session.sql("SET spark.sql.constraintPropagation.enabled=false")
    yield session
    session.stop()


def spark_rows(session, sql):
    return [r.asDict() for r in session.sql(sql).collect()]


def test_spark_gives_the_reports_stages(spark):
    seen = {}
    for name in ("two-hosts-a.parquet", "bulk-loss.parquet", "rr-slow-reader.parquet"):
        path = ROOT / "samples" / name
        sql = query(path, "spark")
        assert sql.startswith("-- Spark: first spark.sql(")
        assert_same(spark_rows(spark, sql), report(path)["stages"], f"spark {name}")
        for k, n in links(sql, lambda q: spark_rows(spark, q)).items():
            seen[k] = seen.get(k, 0) + n
    assert all(n > 0 for n in seen.values()), f"a join of the query was never used: {seen}"


def test_spark_over_a_set_gives_the_pooled_counts(spark, recording_set):
    rep = report(recording_set)
    assert_pooled(spark_rows(spark, query(recording_set, "spark")), rep["pooled"]["stages"], "spark set")
