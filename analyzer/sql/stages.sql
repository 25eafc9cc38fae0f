-- tcptape: per stage pair latency of packet journeys, as `tcptape report` computes it.
-- The same text runs on DuckDB and on Spark SQL; `tcptape sql stages PATH` fills in how the
-- engine reads PATH (`src`, with a `host` column) and the longest gap between two hops of one
-- packet (`--max-hop-gap`, 1 s by default). Result: one row per stage pair (`from`, `to`),
-- with `count`, the nearest-rank percentiles `p50_ns`, `p90_ns`, `p99_ns` (percentile_disc: the
-- smallest duration with at least that share of the pair's at or below it) and `max_ns`.
-- The rules, step by step, are those of analyzer/src/journeys (segment.rs, clone_link.rs,
-- gso_link.rs, journey.rs); the README's "Fleet" section says how to run it.
WITH
src AS (
  {{source}}
),
-- Packet hops (every stage of a packet's path but the application's writes), with their journey
-- rank: TX stages first, then RX (on veth and loopback the sender's skb goes on as the receiver's).
hop AS (
  SELECT
    CAST(host AS STRING) AS host, CAST(ts_ns AS BIGINT) AS ts, kind, skb, sock,
    saddr, daddr, CAST(sport AS INT) AS sport, CAST(dport AS INT) AS dport,
    CAST(seq AS BIGINT) AS seq, CAST(len AS BIGINT) AS len,
    CASE kind
      WHEN 'tx_tcp_xmit' THEN 1 WHEN 'tx_dev_queue' THEN 2 WHEN 'tx_qdisc_enq' THEN 3
      WHEN 'tx_qdisc_deq' THEN 4 WHEN 'tx_driver' THEN 5 WHEN 'tx_done' THEN 6
      WHEN 'rx_driver' THEN 7 WHEN 'rx_netif' THEN 8 WHEN 'rx_ip' THEN 9 WHEN 'rx_tcp' THEN 10
      WHEN 'rx_tcp_est' THEN 11 WHEN 'rx_app' THEN 12
    END AS rnk,
    CASE WHEN kind IN ('rx_tcp_est', 'rx_app') THEN 1 ELSE 0 END AS sockside
  FROM src
  WHERE skb IS NOT NULL
    AND kind IN ('tx_tcp_xmit', 'tx_dev_queue', 'tx_qdisc_enq', 'tx_qdisc_deq', 'tx_driver',
                 'tx_done', 'rx_driver', 'rx_netif', 'rx_ip', 'rx_tcp', 'rx_tcp_est', 'rx_app')
),
-- Each hop beside the previous event of its packet id (repeats included).
prev AS (
  SELECT hop.*,
    lag(kind) OVER w AS pkind, lag(ts) OVER w AS pts, lag(rnk) OVER w AS prnk,
    lag(sport) OVER w AS psport, lag(dport) OVER w AS pdport, lag(seq) OVER w AS pseq,
    lag(sockside) OVER w AS psockside
  FROM hop
  WINDOW w AS (PARTITION BY host, skb ORDER BY ts, rnk)
),
-- A new journey: the id's first event, a gap over the limit, after tx_done (the skb was freed),
-- the stage order going back, or a hop of another packet (ports in the packet's direction or the
-- sequence number disagree where both are known; socket stages name the receiver's side).
split AS (
  SELECT prev.*,
    CASE WHEN pkind IS NULL OR ts - pts > {{max_gap_ns}} OR pkind = 'tx_done' OR rnk < prnk
      OR NOT (
        (pseq IS NULL OR seq IS NULL OR pseq = seq)
        AND (
          ((psport IS NULL OR sport IS NULL OR psport = sport)
            AND (pdport IS NULL OR dport IS NULL OR pdport = dport))
          OR (psockside <> sockside
            AND (psport IS NULL OR dport IS NULL OR psport = dport)
            AND (pdport IS NULL OR sport IS NULL OR pdport = sport))
        )
      )
    THEN 1 ELSE 0 END AS new
  FROM prev
),
-- A stage seen twice in a row (stacked devices, partial reads) keeps its first occurrence;
-- journeys are numbered per packet id.
kept AS (
  SELECT split.*,
    sum(new) OVER (PARTITION BY host, skb ORDER BY ts, rnk
                   ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS jn
  FROM split
  WHERE new = 1 OR pkind <> kind
),
-- Each kept hop with the previous one of its journey, and the journey's last hop.
steps AS (
  SELECT host, skb, jn, kind, rnk, ts, sock, saddr, daddr, sport, dport, seq, len,
    lag(kind) OVER v AS from_kind, lag(ts) OVER v AS from_ts,
    row_number() OVER v AS pos,
    last_value(kind) OVER vall AS last_kind, last_value(rnk) OVER vall AS last_rnk,
    last_value(ts) OVER vall AS last_ts
  FROM kept
  WINDOW v AS (PARTITION BY host, skb, jn ORDER BY ts, rnk),
    vall AS (PARTITION BY host, skb, jn ORDER BY ts, rnk
             ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
),
-- Journeys: the columns of the first hop, and the last hop. `ctyp` says what the clone join
-- (below) makes of it: 0 a tx_tcp_xmit alone, 1 a journey that starts later on TX, 2 neither
-- (or its flow or sequence number is not known).
journey AS (
  SELECT host, skb, jn, kind AS k0, rnk AS r0, ts AS t0, sock, saddr, daddr, sport, dport, seq,
    len, last_kind AS k1, last_rnk AS r1, last_ts AS t1,
    CASE
      WHEN saddr IS NULL OR sport IS NULL OR daddr IS NULL OR dport IS NULL OR seq IS NULL THEN 2
      WHEN kind = 'tx_tcp_xmit' AND last_kind = 'tx_tcp_xmit' THEN 0
      WHEN rnk > 1 AND rnk <= 6 THEN 1
      ELSE 2
    END AS ctyp
  FROM steps
  WHERE pos = 1
),
-- Clones: TCP sends a clone of the write-queue skb, so a data segment's tx_tcp_xmit is a journey
-- of its own (tx_tcp_xmit only). A journey that starts later on TX is joined to the latest such
-- journey of its flow and sequence number at or before it, when no earlier clone took that one
-- and it is within the gap: in time order per flow and sequence number, a clone right after a
-- tx_tcp_xmit takes it.
clone_scan AS (
  SELECT journey.*,
    lag(ctyp) OVER c AS prev_typ, lag(t0) OVER c AS prev_t,
    lead(ctyp) OVER c AS next_typ, lead(t0) OVER c AS next_t
  FROM journey
  WINDOW c AS (PARTITION BY host, saddr, daddr, sport, dport, seq, ctyp = 2
               ORDER BY t0, ctyp, skb, jn)
),
-- Each journey, with `xt` the time of the tx_tcp_xmit a clone was joined to, and `taken` for a
-- tx_tcp_xmit a clone took (its journey goes on as the clone's).
journey_c AS (
  SELECT clone_scan.*,
    CASE WHEN ctyp = 1 AND prev_typ = 0 AND t0 - prev_t <= {{max_gap_ns}} THEN prev_t END AS xt,
    CASE WHEN ctyp = 0 AND next_typ = 1 AND next_t - t0 <= {{max_gap_ns}} THEN 1 ELSE 0 END
      AS taken
  FROM clone_scan
),
-- Software GSO: a segment journey (starting at tx_qdisc_deq or tx_driver) is joined to the
-- latest of the 64 latest journeys of its flow that ended on TX before its stage (and were not
-- taken by a clone), within the gap, whose sequence range holds the segment's. Parents
-- (typ 0, at their last hop) and segments (typ 1, at their first) in time order per flow; `pn`
-- counts the parents up to each row. `fk0`, `ft0`: the first hop, a clone's being its
-- tx_tcp_xmit.
gso_numbered AS (
  SELECT u.*,
    sum(1 - typ) OVER (PARTITION BY host, saddr, daddr, sport, dport ORDER BY t, typ, skb, jn
                       ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS pn
  FROM (
    SELECT j.host, j.skb, j.jn, r.typ,
      CASE WHEN r.typ = 0 THEN j.t1 ELSE j.t0 END AS t,
      CASE WHEN r.typ = 0 THEN j.r1 ELSE j.r0 END AS rnk,
      CASE WHEN r.typ = 0 THEN j.k1 ELSE j.k0 END AS kind,
      j.saddr, j.daddr, j.sport, j.dport, j.seq, j.len,
      CASE WHEN j.xt IS NULL THEN j.k0 ELSE 'tx_tcp_xmit' END AS fk0,
      CASE WHEN j.xt IS NULL THEN j.t0 ELSE j.xt END AS ft0
    FROM journey_c j
    CROSS JOIN (VALUES (0), (1)) AS r(typ)
    WHERE j.saddr IS NOT NULL AND j.sport IS NOT NULL AND j.daddr IS NOT NULL
      AND j.dport IS NOT NULL AND j.seq IS NOT NULL
      AND ((r.typ = 0 AND j.taken = 0 AND j.r1 < 5 AND j.len > 0)
        OR (r.typ = 1 AND j.r0 IN (4, 5)))
  ) u
),
lookback AS (
  SELECT a.d * 8 + b.d AS back
  FROM (VALUES (0), (1), (2), (3), (4), (5), (6), (7)) AS a(d)
  CROSS JOIN (VALUES (0), (1), (2), (3), (4), (5), (6), (7)) AS b(d)
),
gso_wanted AS (  -- each segment with the numbers of the 64 parents before it
  SELECT s.*, s.pn - l.back AS want, l.back
  FROM gso_numbered s CROSS JOIN lookback l
  WHERE s.typ = 1 AND s.pn - l.back > 0
),
gso_candidate AS (
  SELECT s.host, s.skb, s.jn, s.t AS st, s.kind AS sk, p.skb AS pskb, p.jn AS pjn, p.t AS pt,
    p.kind AS pkind, p.fk0 AS pfk, p.ft0 AS pft, s.back
  FROM gso_wanted s
  JOIN gso_numbered p
    ON p.host = s.host AND p.saddr = s.saddr AND p.daddr = s.daddr AND p.sport = s.sport
    AND p.dport = s.dport AND p.pn = s.want AND p.typ = 0
  WHERE s.t - p.t <= {{max_gap_ns}} AND p.rnk < s.rnk
    AND ((s.seq - p.seq) % 4294967296 + 4294967296) % 4294967296 < p.len
),
gso_link AS (
  SELECT host, skb, jn, st, sk, pskb, pjn, pt, pkind, pfk, pft FROM (
    SELECT gso_candidate.*,
      row_number() OVER (PARTITION BY host, skb, jn ORDER BY back) AS nearest
    FROM gso_candidate
  ) g
  WHERE nearest = 1
),
-- A segment's first hop is that of the skb it was cut from, which may itself be a segment the
-- qdisc cut (two levels at most: a parent ends before the stage its segments start at).
gso_first AS (
  SELECT g.host, g.skb, g.jn,
    CASE WHEN gg.skb IS NULL THEN g.pfk ELSE gg.pfk END AS fk,
    CASE WHEN gg.skb IS NULL THEN g.pft ELSE gg.pft END AS ft
  FROM gso_link g
  LEFT JOIN gso_link gg ON gg.host = g.host AND gg.skb = g.pskb AND gg.jn = g.pjn
),
gso_parents AS (
  SELECT DISTINCT host, pskb, pjn FROM gso_link
),
-- Transmissions: journeys shown in the report (not a tx_tcp_xmit a clone took, nor an skb GSO
-- cut) that start on TX, with their first hop.
tx_first AS (
  SELECT j.host, j.skb, j.jn, j.sock, j.seq, j.saddr, j.daddr, j.sport, j.dport,
    CASE WHEN g.skb IS NOT NULL THEN g.fk WHEN j.xt IS NOT NULL THEN 'tx_tcp_xmit' ELSE j.k0 END
      AS fk,
    CASE WHEN g.skb IS NOT NULL THEN g.ft WHEN j.xt IS NOT NULL THEN j.xt ELSE j.t0 END AS ft
  FROM journey_c j
  LEFT JOIN gso_first g ON g.host = j.host AND g.skb = j.skb AND g.jn = j.jn
  LEFT JOIN gso_parents a ON a.host = j.host AND a.pskb = j.skb AND a.pjn = j.jn
  WHERE j.r0 <= 6 AND j.taken = 0 AND a.pskb IS NULL AND j.seq IS NOT NULL
),
-- The application's writes, and each flow's socket (its first write's) for transmissions whose
-- first hop names none.
write_ev AS (
  SELECT CAST(host AS STRING) AS host, CAST(ts_ns AS BIGINT) AS ts, sock, saddr, daddr,
    CAST(sport AS INT) AS sport, CAST(dport AS INT) AS dport, CAST(seq AS BIGINT) AS seq,
    CAST(len AS BIGINT) AS len
  FROM src
  WHERE kind = 'tx_sendmsg'
),
flow_sock AS (
  SELECT host, saddr, daddr, sport, dport, min_by(sock, ts) AS sock
  FROM write_ev
  WHERE sock IS NOT NULL AND saddr IS NOT NULL AND sport IS NOT NULL AND daddr IS NOT NULL
    AND dport IS NOT NULL
  GROUP BY host, saddr, daddr, sport, dport
),
writes AS (
  SELECT host, ts, sock, seq, len FROM write_ev
  WHERE ts IS NOT NULL AND sock IS NOT NULL AND seq IS NOT NULL AND len IS NOT NULL
),
transmission AS (
  SELECT t.host, t.skb, t.jn, coalesce(t.sock, fs.sock) AS sock, t.seq, t.fk, t.ft
  FROM tx_first t
  LEFT JOIN flow_sock fs
    ON fs.host = t.host AND fs.saddr = t.saddr AND fs.daddr = t.daddr AND fs.sport = t.sport
    AND fs.dport = t.dport
  WHERE coalesce(t.sock, fs.sock) IS NOT NULL
),
-- A transmission's data came from the write whose [seq, seq + len) holds its sequence number,
-- written at most the gap before it; the first transmission of a sequence number of a write
-- takes it (later ones are retransmissions). Sequence numbers wrap, so they are unwrapped per
-- socket (`u`): a write's is the sum of the forward steps from the socket's first write (writes
-- append), a transmission's a step of under 2^31 either way from the latest write before it.
write_step AS (
  SELECT writes.*,
    coalesce(((seq - lag(seq) OVER w) % 4294967296 + 4294967296) % 4294967296, 0) AS step,
    first_value(seq) OVER w AS s0
  FROM writes
  WINDOW w AS (PARTITION BY host, sock ORDER BY ts, seq)
),
seq_order AS (
  SELECT host, sock, ts, seq, len, s0,
    CAST(sum(step) OVER (PARTITION BY host, sock ORDER BY ts, seq
                         ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS BIGINT) AS u
  FROM write_step
),
tx_near AS (
  SELECT v.*,
    coalesce(max(u) OVER (PARTITION BY host, sock ORDER BY t, typ
                          ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW), 0) AS lu,
    max(s0) OVER (PARTITION BY host, sock) AS base
  FROM (
    SELECT host, sock, 0 AS typ, ts AS t, u, s0, NULL AS skb, NULL AS jn, NULL AS seq,
      NULL AS fk, NULL AS ft
    FROM seq_order
    UNION ALL
    SELECT host, sock, 1 AS typ, ft AS t, NULL AS u, NULL AS s0, skb, jn, seq, fk, ft
    FROM transmission
  ) v
),
tx_unwrapped AS (
  SELECT host, sock, skb, jn, seq, fk, ft,
    lu + ((((seq - (base + lu) % 4294967296) % 4294967296) + 4294967296 + 2147483648)
      % 4294967296) - 2147483648 AS u
  FROM tx_near
  WHERE typ = 1 AND base IS NOT NULL
),
write_before AS (
  SELECT v.*,
    max(CASE WHEN typ = 0 THEN u END) OVER (
      PARTITION BY host, sock ORDER BY u, typ ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
    ) AS wu
  FROM (
    SELECT host, sock, u, 0 AS typ, NULL AS skb, NULL AS jn, NULL AS seq, NULL AS fk,
      NULL AS ft
    FROM seq_order
    UNION ALL
    SELECT host, sock, u, 1 AS typ, skb, jn, seq, fk, ft FROM tx_unwrapped
  ) v
),
write_match AS (
  SELECT x.host, x.sock, x.skb, x.jn, x.fk, x.ft, x.seq, w.ts AS wts, w.seq AS wseq,
    row_number() OVER (PARTITION BY x.host, x.skb, x.jn ORDER BY w.ts DESC) AS latest
  FROM write_before x
  JOIN seq_order w ON w.host = x.host AND w.sock = x.sock AND w.u = x.wu
  WHERE x.typ = 1 AND w.ts <= x.ft AND x.ft - w.ts <= {{max_gap_ns}}
    AND ((x.seq - w.seq) % 4294967296 + 4294967296) % 4294967296 < w.len
),
write_first AS (
  SELECT write_match.*,
    row_number() OVER (PARTITION BY host, sock, wts, wseq, seq ORDER BY ft, skb, jn) AS firstsend
  FROM write_match
  WHERE latest = 1
),
-- Every pair: adjacent hops of a journey, write to first hop, GSO parent's end to the
-- segment's first hop, tx_tcp_xmit to its clone's first hop.
pairs AS (
  SELECT from_kind AS src, kind AS dst, ts - from_ts AS dt FROM steps WHERE from_kind IS NOT NULL
  UNION ALL
  SELECT 'tx_sendmsg' AS src, fk AS dst, ft - wts AS dt FROM write_first WHERE firstsend = 1
  UNION ALL
  SELECT pkind AS src, sk AS dst, st - pt AS dt FROM gso_link
  UNION ALL
  SELECT 'tx_tcp_xmit' AS src, k0 AS dst, t0 - xt AS dt FROM journey_c WHERE xt IS NOT NULL
)
SELECT src AS from, dst AS to, count(*) AS count,
  CAST(percentile_disc(0.5) WITHIN GROUP (ORDER BY dt) AS BIGINT) AS p50_ns,
  CAST(percentile_disc(0.9) WITHIN GROUP (ORDER BY dt) AS BIGINT) AS p90_ns,
  CAST(percentile_disc(0.99) WITHIN GROUP (ORDER BY dt) AS BIGINT) AS p99_ns,
  max(dt) AS max_ns
FROM pairs
GROUP BY src, dst
ORDER BY src, dst
