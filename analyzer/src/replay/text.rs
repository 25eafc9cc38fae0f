//! One line per event, like `perf script`: time since the start of the recording, CPU, stage,
//! flow, then every field the event has.

use std::fmt::Write as _;
use tcptape_common::record::Record;

/// `ADDR:PORT`, IPv6 in brackets.
fn endpoint(addr: &str, port: u16) -> String {
    if addr.contains(':') {
        format!("[{addr}]:{port}")
    } else {
        format!("{addr}:{port}")
    }
}

/// `10.200.0.1:40000 → 10.200.0.2:5201`, or `-` when the event names no flow.
pub fn flow(r: &Record) -> String {
    match (&r.saddr, r.sport, &r.daddr, r.dport) {
        (Some(sa), Some(sp), Some(da), Some(dp)) => {
            format!("{} → {}", endpoint(sa, sp), endpoint(da, dp))
        }
        _ => "-".into(),
    }
}

/// A flow of the report's selection as the text output writes flows.
pub fn flow_of(f: &crate::queries::select::Flow) -> String {
    format!(
        "{} → {}",
        endpoint(&f.saddr, f.sport),
        endpoint(&f.daddr, f.dport)
    )
}

/// Seconds since `start_ns`, to the nanosecond (`12.000345678`); negative before the start.
pub fn seconds(ts_ns: u64, start_ns: u64) -> String {
    let d = ts_ns as i128 - start_ns as i128;
    let sign = if d < 0 { "-" } else { "" };
    let d = d.unsigned_abs();
    format!("{sign}{}.{:09}", d / 1_000_000_000, d % 1_000_000_000)
}

/// A duration to the nanosecond, in the largest unit that keeps it above 1 (`412ns`,
/// `2.010µs`, `23.000125ms`, `1.000000001s`): exact, unlike the report's 3 significant digits.
pub fn exact(ns: i64) -> String {
    let sign = if ns < 0 { "-" } else { "" };
    let a = ns.unsigned_abs();
    if a < 1_000 {
        format!("{sign}{a}ns")
    } else if a < 1_000_000 {
        format!("{sign}{}.{:03}µs", a / 1_000, a % 1_000)
    } else if a < 1_000_000_000 {
        format!("{sign}{}.{:06}ms", a / 1_000_000, a % 1_000_000)
    } else {
        format!("{sign}{}.{:09}s", a / 1_000_000_000, a % 1_000_000_000)
    }
}

/// TCP flags as tcpdump writes them: `S` SYN, `F` FIN, `R` RST, `P` PSH, `U` URG, `E` ECE, `W`
/// CWR, `.` ACK.
fn tcp_flags(f: u8) -> String {
    [
        (0x02, 'S'),
        (0x01, 'F'),
        (0x04, 'R'),
        (0x08, 'P'),
        (0x20, 'U'),
        (0x40, 'E'),
        (0x80, 'W'),
        (0x10, '.'),
    ]
    .iter()
    .filter(|(bit, _)| f & bit != 0)
    .map(|(_, c)| *c)
    .collect()
}

/// The fields of an event besides time, CPU, stage and flow, as `name=value`.
pub fn fields(r: &Record) -> String {
    let mut s = String::new();
    let mut put = |k: &str, v: &dyn std::fmt::Display| {
        let _ = write!(s, " {k}={v}");
    };
    if let Some(v) = r.skb {
        put("skb", &format_args!("{v:#018x}"));
    }
    if let Some(v) = r.sock {
        put("sock", &format_args!("{v:#x}"));
    }
    if let Some(v) = r.pid {
        put("pid", &v);
    }
    if let Some(v) = &r.comm {
        put("comm", v);
    }
    if let Some(v) = r.cgroup {
        put("cgroup", &v);
    }
    if let Some(v) = r.task_cgroup {
        put("task_cgroup", &v);
    }
    if let Some(v) = r.netns {
        put("netns", &v);
    }
    if let Some(v) = r.ifindex {
        put("ifindex", &v);
    }
    if let Some(v) = r.len {
        put("len", &v);
    }
    if let Some(v) = r.seq {
        put("seq", &v);
    }
    if let Some(v) = r.ack {
        put("ack", &v);
    }
    if let Some(v) = r.window {
        put("win", &v);
    }
    if let Some(v) = r.tcp_flags {
        put("flags", &format_args!("[{}]", tcp_flags(v)));
    }
    if let Some(v) = r.segs {
        put("segs", &v);
    }
    if let Some(v) = r.err {
        put("err", &v);
    }
    for (k, v) in [
        ("cwnd", r.cwnd),
        ("ssthresh", r.ssthresh),
        ("srtt_us", r.srtt_us),
        ("rttvar_us", r.rttvar_us),
        ("snd_wnd", r.snd_wnd),
        ("rcv_wnd", r.rcv_wnd),
        ("packets_out", r.packets_out),
        ("retrans_out", r.retrans_out),
    ] {
        if let Some(v) = v {
            put(k, &v);
        }
    }
    if let Some(v) = &r.ca_state {
        put("ca_state", v);
    }
    match (&r.old_state, &r.state) {
        (Some(o), Some(n)) => put("state", &format_args!("{o}→{n}")),
        (None, Some(n)) => put("state", n),
        _ => {}
    }
    if let Some(v) = &r.drop_reason {
        put("drop_reason", v);
    }
    s
}

/// The whole line of one event (without the newline).
pub fn line(r: &Record, start_ns: u64) -> String {
    format!(
        "{:>16} cpu {:<3} {:<12} {}{}",
        seconds(r.ts_ns, start_ns),
        r.cpu,
        r.kind,
        flow(r),
        fields(r)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_read_as_tcpdump_writes_them() {
        assert_eq!(tcp_flags(0x12), "S.");
        assert_eq!(tcp_flags(0x18), "P.");
        assert_eq!(tcp_flags(0x11), "F.");
        assert_eq!(tcp_flags(0x04), "R");
        assert_eq!(tcp_flags(0), "");
    }

    #[test]
    fn durations_are_exact() {
        assert_eq!(exact(412), "412ns");
        assert_eq!(exact(2_010), "2.010µs");
        assert_eq!(exact(23_000_125), "23.000125ms");
        assert_eq!(exact(1_000_000_001), "1.000000001s");
        assert_eq!(exact(-1_500), "-1.500µs");
        assert_eq!(seconds(5_000_000_123, 1_000_000_000), "4.000000123");
    }

    #[test]
    fn a_line_has_the_flow_and_the_fields_the_event_has() {
        let r = Record {
            ts_ns: 1_000_002_000,
            cpu: 1,
            kind: "retransmit".into(),
            skb: None,
            sock: Some(0x2a),
            pid: None,
            comm: None,
            netns: None,
            ifindex: None,
            family: Some(6),
            saddr: Some("fd00::1".into()),
            daddr: Some("fd00::2".into()),
            sport: Some(40000),
            dport: Some(5201),
            len: Some(1448),
            seq: Some(7),
            segs: Some(1),
            err: Some(0),
            cwnd: None,
            ssthresh: None,
            srtt_us: None,
            rttvar_us: None,
            snd_wnd: None,
            rcv_wnd: None,
            packets_out: None,
            retrans_out: None,
            ca_state: Some("loss".into()),
            state: None,
            old_state: None,
            drop_reason: None,
            cgroup: None,
            task_cgroup: None,
            ack: None,
            window: None,
            tcp_flags: None,
            tcp_hlen: None,
        };
        assert_eq!(
            line(&r, 1_000_000_000),
            "     0.000002000 cpu 1   retransmit   [fd00::1]:40000 → [fd00::2]:5201 \
             sock=0x2a len=1448 seq=7 segs=1 err=0 ca_state=loss"
        );
    }
}
