#!/usr/bin/env python3
"""Host-side checks of a two-host VM run (tests/vm/run.sh SERIES --two-hosts).

Run once per NIC setup (`--setup socket`: a qemu socket netdev, no offloads, software GSO after
the qdisc; `--setup tap`: taps on a bridge, TSO on). Guest A sends (a request/response client,
then a bulk transfer) through a netem qdisc (delay D) on its virtio-net NIC; guest B serves, and
drops every Nth packet of the bulk transfer as it arrives (tc gact, deterministic). Each recorded its own side with
tcptape-record and counted, around the traffic, what its own kernel counted (/proc/net/dev,
tc -s qdisc, /proc/net/snmp) and what its applications wrote and read. Only the test's TCP
crosses the link (no IPv6, static neighbours), so the NIC's packet counts are the recorder's.

Checks, per host:
* bytes written (tx_sendmsg) and read (rx_app) per connection = the applications' own counts;
* every tx_driver packet has its tx_done (the driver's completion), and no other packet has one;
* tx_driver and rx_driver events = the NIC's transmitted and received packets (/proc/net/dev),
  one event per wire packet (virtio-net leaves the headers of a full-size frame in a page
  fragment: read there);
* on A, every skb the qdisc took has its dequeue (or its drop), the qdisc stage is the netem
  delay D (the shortest within 5 %, the median between D - 5 % and D + 5 ms: check.py's
  `qdisc_delay_rule`), and the retransmitted segments equal TcpRetransSegs (short by at most
  1 %: docs/recorder.md);
* `tcptape report`: no journey goes from a TX stage to an RX stage on one host (a NIC never
  hands a transmitted skb to its own receive path), and the Connections table names each
  socket's local port and owning process with the applications' bytes.

And over both: `tcptape report A B` keeps the hosts apart, joins their segments, and its clock
offset estimate (± its uncertainty) overlaps the interval the guests measured themselves on the
control link (timestamp exchanges: B's clock read between A's send and A's receipt); every
segment's span from A's write to B's read is at least A's netem delay; every journey across the
hosts (a segment's journey from the write on one host joined to its journey to the read on the
other) is causal on the aligned clocks, its end to end equals the sum of its stages on both
hosts and the wire, and lies within the report's write -> read span; `tcptape export A B` puts
every joined segment's arrival after its departure on one time line, and `tcptape diff` of the
pair against itself compares both hosts and the wire and finds no change.

Exits 0 when every check passes. Needs duckdb (the harness installs it into a venv).
"""

import argparse
import json
import os
import re
import subprocess
import sys

import duckdb
import pyarrow.parquet as pq

from check import Checks, ms, parquet_source, qdisc_delay_rule, read_kv, read_text, snmp_counter

ADDR = {"a": "10.12.0.1", "b": "10.12.0.2"}


def traffic_outputs(results):
    """Each traffic program's printed counts: {name: {sent, read, pid}}."""
    out = {}
    for f in sorted(os.listdir(results)):
        if not (f.startswith("traffic-") and f.endswith(".out")):
            continue
        for line in (read_text(os.path.join(results, f)) or "").splitlines():
            parts = line.replace(",", "").split()
            if "sent" in parts and "read" in parts and "pid" in parts:
                out[f[len("traffic-"):-len(".out")]] = {
                    "sent": int(parts[parts.index("sent") + 1]),
                    "read": int(parts[parts.index("read") + 1]),
                    "pid": int(parts[parts.index("pid") + 1]),
                }
    return out


def netdev(path, dev):
    """(rx_packets, tx_packets) of `dev` in a /proc/net/dev snapshot."""
    for line in (read_text(path) or "").splitlines():
        name, _, rest = line.partition(":")
        if name.strip() == dev:
            f = rest.split()
            return int(f[1]), int(f[9])
    return None


def report(analyzer, rec):
    out = subprocess.run([analyzer, "report", "-q", "--format", "json", rec],
                         capture_output=True, text=True)
    if out.returncode != 0:
        return None, out.stderr.strip()
    return json.loads(out.stdout), None


def check_host(c, args, role, results):
    env = read_kv(os.path.join(results, "env"))
    rec = os.path.join(results, "rec.parquet")
    host = f"host {role.upper()}"
    print(f"\n{host} ({env.get('driver', '?')}, kernel {read_text(os.path.join(results, 'kernel_release'), '?').strip()})")
    if not c.check(f"{host}: recorder exit 0", read_text(os.path.join(results, "recorder.rc"), "").strip() == "0",
                   (read_text(os.path.join(results, "recorder.log")) or "")[-600:]):
        return
    c.check(f"{host}: traffic exit 0", read_text(os.path.join(results, "traffic.rc"), "").strip() == "0",
            json.dumps(traffic_outputs(results)))
    c.check(f"{host}: the test link's NIC is virtio_net", env.get("driver") == "virtio_net",
            env.get("driver", "?"))
    # The NIC setup the test asked for, as the recording's environment says.
    env_meta = json.loads(pq.read_metadata(rec).metadata[b"tcptape.environment"])
    nic = next((i for i in env_meta["interfaces"] if i["name"] == env.get("dev")), {})
    want_tso, want_gro = args.setup == "tap", args.setup != "nogro"
    c.check(f"{host}: the test NIC has TSO {'on' if want_tso else 'off'} and GRO "
            f"{'on' if want_gro else 'off'} ({args.setup} link)",
            nic.get("tso") is want_tso and nic.get("gro") is want_gro, json.dumps(nic))
    apps = traffic_outputs(results)
    db = duckdb.connect()
    db.execute(f"CREATE VIEW ev AS SELECT * FROM read_parquet('{parquet_source(rec)}')")
    counts = dict(db.execute("SELECT kind, count(*) FROM ev GROUP BY kind ORDER BY kind").fetchall())
    print(f"  events per stage: {counts}")
    rep, err = report(args.analyzer, rec)
    if not c.check(f"{host}: tcptape report", rep is not None, err or "ok"):
        return
    # Nothing lost between the programs and the file. Apart, the runs the kernel skipped: a
    # program interrupted on its CPU by softirq work that calls it again is not re-entered
    # (fentry's recursion guard; these guests have one CPU each). They are counted and stated,
    # and rare: a few at most.
    lost = rep["lost"]
    in_pipeline = sum(lost.get("ring_per_cpu", [])) + lost.get("writer_queue", 0)
    skipped = sum(lost.get("missed_runs", {}).values())
    c.check(f"{host}: no event lost", in_pipeline == 0 and skipped <= 3, json.dumps(lost))

    # Bytes per connection at the application, both directions: the port tells the program.
    port_of = {"rr-client": 5002, "rr-server": 5002, "bulk": 5001, "sink": 5001}
    for name, app in apps.items():
        port = port_of[name]
        for kind, key in (("tx_sendmsg", "sent"), ("rx_app", "read")):
            (got,) = db.execute(
                f"SELECT coalesce(sum(len), 0) FROM ev WHERE kind = '{kind}' "
                "AND (sport = ? OR dport = ?)", [port, port]).fetchone()
            c.check(f"{host}: {name}: {kind} bytes = bytes the application {key}",
                    got == app[key], f"recorded {got}, application {app[key]}")

    # One tx_driver event per packet the NIC was handed.
    dev = env.get("dev", "eth0")
    before = netdev(os.path.join(results, "netdev-before"), dev)
    after = netdev(os.path.join(results, "netdev-after"), dev)
    if before and after:
        tx_pkts = after[1] - before[1]
        c.check(f"{host}: tx_driver events = {dev} transmitted packets",
                counts.get("tx_driver", 0) == tx_pkts,
                f"{counts.get('tx_driver', 0)} events, /proc/net/dev {tx_pkts} packets "
                f"(rx: {after[0] - before[0]} packets, rx_driver {counts.get('rx_driver', 0)}, "
                f"rx_netif {counts.get('rx_netif', 0)} events)")
        # The driver's completion of each of them: tx_done, one per tx_driver skb.
        (sent, done, orphans) = db.execute(
            """
            WITH x AS (SELECT skb, ts_ns, seq FROM ev WHERE kind = 'tx_driver'),
                 d AS (SELECT skb, ts_ns, seq FROM ev WHERE kind = 'tx_done')
            SELECT (SELECT count(*) FROM x),
                   (SELECT count(*) FROM x WHERE EXISTS (SELECT 1 FROM d WHERE d.skb = x.skb
                      AND d.seq = x.seq AND d.ts_ns >= x.ts_ns)),
                   (SELECT count(*) FROM d WHERE NOT EXISTS (SELECT 1 FROM x WHERE x.skb = d.skb
                      AND x.seq = d.seq AND x.ts_ns <= d.ts_ns))
            """).fetchone()
        c.check(f"{host}: every packet handed to the driver has its tx_done, and nothing else",
                sent > 0 and done == sent and orphans == 0,
                f"{sent} tx_driver, {done} of them completed (tx_done), {orphans} tx_done of no "
                f"tx_driver packet")
        if args.setup == "nogro":
            # Without GRO every frame goes up the stack alone: one rx_netif per rx_driver.
            c.check(f"{host}: without GRO, rx_netif events = rx_driver events",
                    counts.get("rx_netif", 0) == counts.get("rx_driver", 0) > 0,
                    f"rx_driver {counts.get('rx_driver', 0)}, rx_netif {counts.get('rx_netif', 0)}")
        if args.setup == "socket":
            # Software GSO: the qdisc's own count of packets sent is of wire packets too.
            def tc_sent(which):
                m = re.search(r"Sent \d+ bytes (\d+) pkt",
                              read_text(os.path.join(results, f"qdisc-{which}.txt")) or "")
                return int(m.group(1)) if m else None
            tb, ta = tc_sent("before"), tc_sent("after")
            c.check(f"{host}: tx_driver events = the packets tc says the qdisc sent",
                    tb is not None and ta is not None and counts.get("tx_driver", 0) == ta - tb,
                    f"{counts.get('tx_driver', 0)} events, tc -s qdisc: {ta} - {tb}")
        rx_pkts = after[0] - before[0]
        c.check(f"{host}: rx_driver events = {dev} received packets",
                counts.get("rx_driver", 0) == rx_pkts,
                f"{counts.get('rx_driver', 0)} events, /proc/net/dev {rx_pkts} packets")
    else:
        c.check(f"{host}: /proc/net/dev snapshots", False, "missing")

    (biggest,) = db.execute("SELECT max(len) FROM ev WHERE kind = 'tx_driver'").fetchone()
    if args.setup == "tap":
        if role == "a":
            c.check(f"{host}: the driver is handed multi-segment (TSO) skbs",
                    (biggest or 0) > 1448, f"largest tx_driver payload {biggest} bytes")
    else:
        c.check(f"{host}: the driver is handed wire-sized skbs (software GSO)",
                0 < (biggest or 0) <= 1448, f"largest tx_driver payload {biggest} bytes")

    if role == "b":
        # B's drops of A's bulk packets (tc gact): the recorder's drop events = tc's own count.
        def gact_dropped(which):
            text = read_text(os.path.join(results, f"filter-{which}.txt")) or ""
            m = re.search(r"\(dropped (\d+),", text)
            return int(m.group(1)) if m else None
        b_drop, a_drop = gact_dropped("before"), gact_dropped("after")
        (drops,) = db.execute(
            "SELECT count(*) FROM ev WHERE kind = 'drop' AND dport = 5001").fetchone()
        c.check(f"{host}: drop events = the packets tc dropped on arrival",
                b_drop is not None and a_drop is not None and a_drop - b_drop > 0
                and drops == a_drop - b_drop,
                f"{drops} drop events; tc gact dropped {a_drop} - {b_drop}")

    if role == "a":
        d_ns = int(env["delay_ms"]) * 1_000_000
        n, med, lo, hi = db.execute(
            """
            WITH q AS (
              SELECT kind, ts_ns, lead(kind) OVER w AS nkind, lead(ts_ns) OVER w AS nts
              FROM ev WHERE kind IN ('tx_qdisc_enq', 'tx_qdisc_deq') AND skb IS NOT NULL
              WINDOW w AS (PARTITION BY skb ORDER BY ts_ns)
            )
            SELECT count(*), quantile_cont(nts - ts_ns, 0.5), min(nts - ts_ns), max(nts - ts_ns)
            FROM q WHERE kind = 'tx_qdisc_enq' AND nkind = 'tx_qdisc_deq'
            """).fetchone()
        name, ok = qdisc_delay_rule(d_ns, n, med, lo)
        c.check(f"{host}: {name}", ok,
                f"{n} enqueue->dequeue pairs, median {ms(med)} (min {ms(lo)}, max {ms(hi)}), "
                f"netem delay {ms(d_ns)}")
        # Every skb the qdisc took left it (a dequeue, bulk dequeues included) or was dropped
        # there.
        enq, left, dropped = db.execute(
            """
            WITH q AS (
              SELECT kind, lead(kind) OVER (PARTITION BY skb ORDER BY ts_ns) AS next
              FROM ev WHERE kind IN ('tx_qdisc_enq', 'tx_qdisc_deq', 'drop') AND skb IS NOT NULL
            )
            SELECT count(*), count(*) FILTER (WHERE next = 'tx_qdisc_deq'),
                   count(*) FILTER (WHERE next = 'drop')
            FROM q WHERE kind = 'tx_qdisc_enq'
            """).fetchone()
        c.check(f"{host}: every skb enqueued at the qdisc has its dequeue or its drop",
                enq > 0 and left + dropped == enq,
                f"{enq} enqueued, {left} dequeued, {dropped} dropped; tc: "
                + " ".join((read_text(os.path.join(results, "qdisc-after.txt")) or "").split()[:40]))
        b = snmp_counter(os.path.join(results, "snmp-before"), "Tcp", "RetransSegs")
        a = snmp_counter(os.path.join(results, "snmp-after"), "Tcp", "RetransSegs")
        (segs,) = db.execute(
            "SELECT coalesce(sum(segs), 0) FROM ev WHERE kind = 'retransmit' AND err >= 0"
        ).fetchone()
        if a is None or b is None:
            c.check(f"{host}: retransmits", False, "no TcpRetransSegs snapshots")
        else:
            delta = a - b
            c.check(f"{host}: retransmitted segments = TcpRetransSegs (short by <= 1 %)",
                    segs <= delta and segs >= delta - delta // 100 and delta > 0,
                    f"recorded {segs}, TcpRetransSegs delta {delta}")

    cross = [f"{s['from']} -> {s['to']}" for s in rep.get("stages", [])
             if s["from"].startswith("tx_") and s["to"].startswith("rx_")]
    c.check(f"{host}: no stage joins a transmitted packet to a received one", not cross,
            ", ".join(cross) or "none")
    # Every packet the driver was handed continues a journey that began earlier on TX: with
    # software GSO the segments (new skbs) join the skb they were cut from.
    into_driver = sum(x["count"] for x in rep.get("stages", [])
                      if x["to"] == "tx_driver" and x["from"].startswith("tx_"))
    driver = sum(x["events"] for x in rep.get("stages_recorded", []) if x["stage"] == "tx_driver")
    c.check(f"{host}: every tx_driver hop follows an earlier TX hop of its packet",
            driver > 0 and into_driver == driver,
            f"{into_driver} pairs into tx_driver, {driver} tx_driver events")
    # No hop of any journey comes before the previous one (GSO segments and GRO merges
    # included): every dt_ns of `tcptape replay --journeys` is >= 0.
    js = journeys(args, rec)
    hops = [h for j in js or [] for h in j.get("hops", [])]
    negative = [h for h in hops if h.get("dt_ns", 0) < 0]
    c.check(f"{host}: no journey has a negative hop", js is not None and hops and not negative,
            f"{len(hops)} hops, {len(negative)} negative: {negative[:3]}")
    conns = rep.get("connections", [])
    for name, app in apps.items():
        port = port_of[name]
        client = name in ("rr-client", "bulk")
        # Connections that carried the application's data (not, say, a refused connect).
        mine = [x for x in conns if x["flow"].startswith(ADDR[role] + ":")
                and (x["flow"].endswith(f":{port}") if client else f":{port}-" in x["flow"])
                and "ESTABLISHED" in x["states"]]
        ok = len(mine) == 1
        if ok:
            x = mine[0]
            local_port = int(x["flow"].split("-")[0].rsplit(":", 1)[1])
            ok = (local_port != 0 and x.get("pid") == app["pid"]
                  and x["tx_bytes"] == app["sent"] and x["rx_bytes"] == app["read"]
                  and x["closed"] and x["states"].endswith("CLOSE"))
        c.check(f"{host}: {name}: connection row has its port, owner, bytes and close", ok,
                f"{mine}; application pid {app['pid']}, sent {app['sent']}, read {app['read']}")


def journeys(args, rec):
    """The journeys of `rec` as `tcptape replay --journeys` prints them; None if it fails."""
    out = subprocess.run([args.analyzer, "replay", "--journeys", "--format", "jsonl", rec],
                         capture_output=True, text=True)
    if out.returncode != 0:
        print(f"replay --journeys {rec} failed ({out.returncode}): {out.stderr.strip()}")
        return None
    return [json.loads(line) for line in out.stdout.splitlines()]


def check_cross_host_journeys(c, args, recs, pair):
    """Each data segment whose journey on the sender starts at the write (tx_sendmsg) and whose
    journey on the receiver ends at the read (rx_app), joined by flow and sequence number (put on
    the wire once, received once), is one journey across the hosts. On the clocks aligned by the report's offset:
    its wire (tx_driver -> the receiver's first hop) is never negative, its end to end (write
    -> read) equals the sum of its stages on the sender, the wire and its stages on the
    receiver, and it lies within the report's write -> read span of that direction."""
    off = pair["clock_offset_ns"]
    by_host = dict(zip(("host-a", "host-b"), (journeys(args, r) for r in recs)))

    def keyed(js, want):
        out = {}
        for j in js or []:
            h = j["hops"]
            if want(h):
                out.setdefault((j["flow"], j.get("seq")), []).append(j)
        return out

    for src, dst, o in (("host-a", "host-b", off), ("host-b", "host-a", -off)):
        # A segment the sender put on the wire twice (a retransmission) is left out, as the report
        # leaves it out: which copy arrived is not known. Counted on the data packets the driver
        # was handed (an ACK carries the sequence number of the next data and is no segment).
        on_wire = {}
        out = subprocess.run([args.analyzer, "replay", "--stage", "tx_driver", "--format", "jsonl",
                              recs[0 if src == "host-a" else 1]], capture_output=True, text=True)
        for line in out.stdout.splitlines():
            e = json.loads(line)
            if e.get("len"):
                k = (f"{e['saddr']}:{e['sport']}-{e['daddr']}:{e['dport']}", e.get("seq"))
                on_wire[k] = on_wire.get(k, 0) + 1
        sent = keyed(by_host[src], lambda h: h[0]["stage"] == "tx_sendmsg"
                     and sum(x["stage"] == "tx_driver" for x in h) == 1)
        sent = {k: v for k, v in sent.items() if on_wire.get(k) == 1}
        read = keyed(by_host[dst], lambda h: h[0]["stage"] in ("rx_driver", "rx_netif")
                     and h[-1]["stage"] == "rx_app")
        spans, negative, unequal = [], [], []
        for k, js in sent.items():
            if len(js) != 1 or len(read.get(k, [])) != 1:
                continue
            hx, hy = js[0]["hops"], read[k][0]["hops"]
            i = [n for n, h in enumerate(hx) if h["stage"] == "tx_driver"][0]
            # t_dst = t_src + o: a time of the receiver, read on the sender's clock, is t - o.
            wire = hy[0]["ts_ns"] - o - hx[i]["ts_ns"]
            e2e = hy[-1]["ts_ns"] - o - hx[0]["ts_ns"]
            stages = (sum(h.get("dt_ns", 0) for h in hx[1:i + 1]) + wire
                      + sum(h.get("dt_ns", 0) for h in hy[1:]))
            spans.append(e2e)
            if wire < 0:
                negative.append((k, wire))
            if e2e != stages:
                unequal.append((k, e2e, stages))
        rows = [e for e in pair.get("end_to_end", []) if e["from_host"] == src]
        lo, hi = (rows[0]["min_ns"], rows[0]["max_ns"]) if rows else (None, None)
        outside = [s for s in spans if lo is None or not lo <= s <= hi]
        c.check(f"{src} -> {dst}: every cross-host journey is causal and its end to end is the "
                f"sum of its stages",
                len(spans) >= 10 and not negative and not unequal and not outside,
                f"{len(spans)} journeys across the hosts, {len(negative)} with a negative wire "
                f"{negative[:2]}, {len(unequal)} whose stages do not add up {unequal[:2]}, "
                f"{len(outside)} outside the report's write -> read span [{lo}, {hi}] ns")


def check_export_and_diff(c, args, recs):
    """`tcptape export A B`: one time line, B's clock aligned by the traffic, and every segment
    joined (sent once by one host, its journey on the other starting at the driver) arrives after
    it left. `tcptape diff --base A B --candidate A B`: both hosts and the wire compared, no
    change anywhere, exit 0."""
    trace = os.path.join(args.a, "two.trace.json")
    out = subprocess.run([args.analyzer, "export", *recs, "--limit", "0", "-o", trace],
                         capture_output=True, text=True)
    if not c.check("both hosts: tcptape export A B", out.returncode == 0, out.stderr.strip()[-300:]):
        return
    t = json.load(open(trace))
    evs = t["traceEvents"]
    journeys_by_track = {}
    for e in evs:
        if e.get("cat") == "journey" and "seq" in e["args"]:
            journeys_by_track.setdefault((e["pid"], e["tid"]), []).append(e)
    sent, arrived = {}, {}
    for e in evs:
        if e.get("cat") != "stage":
            continue
        a = e["args"]
        ts, end = round(e["ts"] * 1000), round((e["ts"] + e["dur"]) * 1000)
        owner = [j for j in journeys_by_track.get((e["pid"], e["tid"]), [])
                 if round(j["ts"] * 1000) <= ts and end <= round((j["ts"] + j["dur"]) * 1000)]
        if not owner:
            continue
        seq, on_a = owner[0]["args"]["seq"], e["pid"] < 1_000_000
        if a["to"] == "tx_driver":
            sent.setdefault((on_a, seq), []).append(end)
        if a["from"] in ("rx_driver", "rx_netif") and ts == round(owner[0]["ts"] * 1000):
            arrived.setdefault((on_a, seq), []).append(ts)
    wires = [arrived[(not on_a, seq)][0] - tx[0] for (on_a, seq), tx in sent.items()
             if len(tx) == 1 and len(arrived.get((not on_a, seq), [])) == 1]
    hosts = t["otherData"]["hosts"]
    c.check("both hosts: export puts both hosts on one time line, every segment arriving after "
            "it left",
            [h["clock"] for h in hosts] == ["reference", "traffic"] and len(wires) >= 20
            and min(wires) >= 0,
            f"clocks {[h['clock'] for h in hosts]}, {len(wires)} segments joined, shortest wire "
            f"{min(wires) if wires else None} ns")
    out = subprocess.run([args.analyzer, "diff", "-q", "--format", "json", "--base", *recs,
                          "--candidate", *recs], capture_output=True, text=True)
    d = json.loads(out.stdout) if out.returncode in (0, 1, 3) else {}
    rows = d.get("between_hosts", [])
    c.check("both hosts: diff of the pair against itself compares both hosts and the wire, no "
            "change",
            out.returncode == 0 and [h["base"]["host"] for h in d.get("hosts", [])]
            == ["host-a", "host-b"] and len(rows) >= 2
            and all(r["verdict"] == "no_change" for r in rows),
            f"exit {out.returncode}, {out.stderr.strip()[-200:]}, between hosts "
            f"{[(r['from'], r['to'], r['verdict']) for r in rows]}")


def check_between(c, args):
    """`tcptape report A B`: two hosts (their clocks kept apart), and the clock offset it
    estimates from the traffic agrees with the one the guests measured on the control link."""
    recs = [os.path.join(d, "rec.parquet") for d in (args.a, args.b)]
    out = subprocess.run([args.analyzer, "report", "-q", "--format", "json", *recs],
                         capture_output=True, text=True)
    if not c.check("both hosts: tcptape report A B", out.returncode == 0, out.stderr.strip()[-300:]):
        return
    rep = json.loads(out.stdout)
    hosts = [h["host"] for h in rep.get("hosts", [])]
    print("\nbetween the hosts")
    c.check("both hosts: one report per host", hosts == ["host-a", "host-b"], f"hosts {hosts}")
    pairs = rep.get("between_hosts", [])
    if not c.check("both hosts: joined", len(pairs) == 1, json.dumps(pairs)):
        return
    p = pairs[0]
    off, unc = p.get("clock_offset_ns"), p.get("clock_offset_uncertainty_ns")
    c.check("both hosts: segments joined both ways and an offset estimated",
            p["segments_a_to_b"] > 0 and p["segments_b_to_a"] > 0 and off is not None,
            f"{p['segments_a_to_b']} A->B, {p['segments_b_to_a']} B->A, offset {off} +- {unc} ns, "
            f"notes {p['notes']}")
    line = (read_text(os.path.join(args.a, "clock.out")) or "").split()
    if off is None or "offset" not in line:
        c.check("both hosts: offset agrees with the control link's", False, f"clock.out: {line}")
        return
    lo, hi = int(line[line.index("offset") + 1]), int(line[line.index("offset") + 2])
    c.check("both hosts: offset agrees with the control link's",
            off - unc <= hi and off + unc >= lo,
            f"tcptape {off / 1e6:.3f} ms +- {unc / 1e6:.3f} ms; control link [{lo / 1e6:.3f}, "
            f"{hi / 1e6:.3f}] ms")
    for w in p["wire"]:
        print(f"    wire {w['from_host']} -> {w['to_host']}: {w['count']} segments, min "
              f"{ms(w['min_ns'])}, p50 {ms(w['p50_ns'])}, max {ms(w['max_ns'])}")
    check_cross_host_journeys(c, args, recs, p)
    check_export_and_diff(c, args, recs)
    # Every segment from A went through A's netem delay D: from A's write to B's read, at least
    # D, on the aligned clocks (the offset's uncertainty may take away up to its width).
    d_ns = int(read_kv(os.path.join(args.a, "env"))["delay_ms"]) * 1_000_000
    a_to_b = [e for e in p.get("end_to_end", []) if e["from_host"] == "host-a"]
    c.check("both hosts: every write on A to its read on B takes at least the netem delay",
            len(a_to_b) == 1 and a_to_b[0]["count"] > 50
            and a_to_b[0]["min_ns"] + (unc or 0) >= d_ns,
            f"{a_to_b}; netem delay {ms(d_ns)}, offset uncertainty {ms(unc)}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--a", required=True)
    p.add_argument("--b", required=True)
    p.add_argument("--analyzer", required=True)
    p.add_argument("--setup", choices=["socket", "tap", "nogro"], default="socket",
                   help="the test link: socket netdev (no offloads), taps (TSO on), or the "
                        "socket netdev with GRO off")
    p.add_argument("--series", required=True)
    p.add_argument("--package", default="")
    p.add_argument("--boot-secs", default="?")
    args = p.parse_args()
    print(f"two hosts, {args.setup} link, Debian {args.series} ({args.package}), "
          f"VMs {args.boot_secs}s")
    c = Checks()
    for role, results in (("a", args.a), ("b", args.b)):
        check_host(c, args, role, results)
    check_between(c, args)
    print(f"\n{c.passed} passed, {len(c.failed)} failed")
    for f in c.failed:
        print(f"  FAILED: {f}")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
