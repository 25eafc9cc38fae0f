#!/usr/bin/env python3
"""Per-stage latency percentiles of a tcptape recording computed by DuckDB SQL.

The reference for `tcptape report`'s per-stage figures in the benchmark: the same pairs (adjacent
hops of one packet id, a stage repeated in a row folded into its first occurrence, a new journey
when the stage order goes back, after `tx_done` or after a gap over 1 s; `tx_sendmsg ->
tx_tcp_xmit` by socket and sequence number, as synthetic recordings have one write per segment) and the same percentile
definition (`quantile_disc`, nearest rank). Prints one JSON object: {"seconds", "stages": [...]}.

usage: duckdb_stages.py REC.parquet [THREADS]
"""
import json
import sys
import time

import duckdb

HOPS = [
    "tx_tcp_xmit", "tx_dev_queue", "tx_qdisc_enq", "tx_qdisc_deq", "tx_driver", "tx_done",
    "rx_driver", "rx_netif", "rx_ip", "rx_tcp", "rx_tcp_est", "rx_app",
]

SQL = """
WITH stages(kind, rank) AS (VALUES {values}),
events AS (SELECT ts_ns, kind, skb, sock, seq FROM read_parquet('{path}')),
hops AS (
  SELECT e.ts_ns, e.kind, e.skb, s.rank, e.sock, e.seq
  FROM events e JOIN stages s USING (kind) WHERE e.skb IS NOT NULL
),
marked AS (
  SELECT *, lag(kind) OVER w AS k0, lag(ts_ns) OVER w AS t0
  FROM hops WINDOW w AS (PARTITION BY skb ORDER BY ts_ns)
),
folded AS (  -- a stage seen twice in a row keeps its first occurrence
  SELECT * FROM marked
  WHERE NOT (k0 IS NOT NULL AND k0 = kind AND k0 <> 'tx_done' AND ts_ns - t0 <= 1000000000)
),
lagged AS (
  SELECT kind, ts_ns, rank,
         lag(kind) OVER w AS pkind, lag(ts_ns) OVER w AS pts, lag(rank) OVER w AS prank
  FROM folded WINDOW w AS (PARTITION BY skb ORDER BY ts_ns)
),
pairs AS (
  SELECT pkind AS src, kind AS dst, (ts_ns - pts)::BIGINT AS dt FROM lagged
  WHERE pkind IS NOT NULL AND rank > prank AND pkind <> 'tx_done'
    AND ts_ns - pts <= 1000000000
  UNION ALL
  SELECT 'tx_sendmsg', 'tx_tcp_xmit', (x.ts_ns - w.ts_ns)::BIGINT
  FROM (SELECT ts_ns, sock, seq FROM events WHERE kind = 'tx_sendmsg') w
  JOIN (SELECT ts_ns, sock, seq FROM hops WHERE kind = 'tx_tcp_xmit') x
    ON w.sock = x.sock AND w.seq = x.seq AND w.ts_ns <= x.ts_ns
)
SELECT src, dst, count(*) AS n, avg(dt),
       quantile_disc(dt, 0.5), quantile_disc(dt, 0.9), quantile_disc(dt, 0.99),
       quantile_disc(dt, 0.999), max(dt)
FROM pairs GROUP BY src, dst ORDER BY src, dst
"""


def main():
    path = sys.argv[1]
    con = duckdb.connect()
    if len(sys.argv) > 2:
        con.execute(f"SET threads = {int(sys.argv[2])}")
    values = ", ".join(f"('{k}', {i + 1})" for i, k in enumerate(HOPS))
    t0 = time.monotonic()
    rows = con.execute(SQL.format(values=values, path=path.replace("'", "''"))).fetchall()
    seconds = time.monotonic() - t0
    keys = ["from", "to", "count", "mean_ns", "p50_ns", "p90_ns", "p99_ns", "p999_ns", "max_ns"]
    print(json.dumps({"seconds": seconds, "stages": [dict(zip(keys, r)) for r in rows]}))


if __name__ == "__main__":
    main()
