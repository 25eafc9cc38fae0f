//! `tcptape export --format pcapng -o FILE`: the packets of a recording as Wireshark and tshark
//! read them. One packet per recorded event at the chosen stages (default: the driver stages,
//! what a capture on the interface shows, one packet per wire packet: one this host both sent
//! and received is written where it was sent), rebuilt from the recorded headers: IPv4 or IPv6 and
//! TCP with the recorded flags, sequence and acknowledgment numbers and window. TCP options are
//! not recorded: NOPs stand in, so that the header has the recorded length; the payload is left
//! out and the original length kept. One interface per host and (namespace, interface); each
//! packet's comment gives its journey and stage latencies as the report measures them.

use crate::journeys::per_packet::{self, Packet};
use crate::queries::frame::{collect, strs, u64s};
use crate::queries::scan::scan;
use crate::queries::select::Selection;
use crate::units::ns;
use anyhow::Context;
use etherparse::{IpNumber, Ipv4Header, Ipv6FlowLabel, Ipv6Header, TcpHeader};
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::DataLink;
use polars::prelude::*;
use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;
use tcptape_common::{Recording, Stage};

/// The stages whose events carry the packet's headers (`ack`, `window`, `tcp_flags`).
pub const HEADER_STAGES: [Stage; 8] = [
    Stage::RxDriver,
    Stage::RxNetif,
    Stage::RxIp,
    Stage::TxDevQueue,
    Stage::TxQdiscEnq,
    Stage::TxQdiscDeq,
    Stage::TxDriver,
    Stage::TxDone,
];

/// The stages exported when none is chosen: where a capture on the interface sees packets.
pub const DEFAULT_STAGES: [Stage; 2] = [Stage::TxDriver, Stage::RxDriver];

/// What an export wrote.
#[derive(Debug, Default)]
pub struct PcapWritten {
    /// Packets written.
    pub packets: u64,
    /// Of them, with a journey in their comment.
    pub in_journeys: u64,
    /// Interfaces (interface description blocks).
    pub interfaces: u64,
    /// Packets left out by the limit.
    pub limited: u64,
    /// Arrivals left out as the same wire packet as a transmission written (default stages).
    pub sent_here: u64,
}

/// One host's part of the file.
pub struct HostPackets<'a> {
    /// Host name (interfaces are named after it when there are several hosts).
    pub host: Option<&'a str>,
    /// Its recordings.
    pub recs: &'a [Recording],
    /// The events to export.
    pub sel: &'a Selection,
    /// Two hops of one packet id further apart than this are two packets.
    pub max_hop_gap_ns: u64,
    /// At most this many packets (0: all).
    pub limit: usize,
}

/// The pcap-ng writer of an export.
pub struct PcapExport<W: Write> {
    w: PcapNgWriter<W>,
    written: PcapWritten,
}

const COLUMNS: [&str; 16] = [
    "ts_ns",
    "cpu",
    "kind",
    "netns",
    "ifindex",
    "family",
    "saddr",
    "daddr",
    "sport",
    "dport",
    "seq",
    "len",
    "ack",
    "window",
    "tcp_flags",
    "tcp_hlen",
];

impl<W: Write> PcapExport<W> {
    /// Starts the file (its section header).
    pub fn new(out: W) -> anyhow::Result<PcapExport<W>> {
        Ok(PcapExport {
            w: PcapNgWriter::new(out).context("cannot write the section header")?,
            written: PcapWritten::default(),
        })
    }

    /// Writes one host's packets.
    pub fn host(&mut self, part: &HostPackets<'_>) -> anyhow::Result<()> {
        let stages = check(part.recs, part.sel)?;
        let metas: Vec<_> = part.recs.iter().map(|r| r.meta()).collect();
        let files: Vec<_> = part.recs.iter().flat_map(|r| r.files()).collect();
        let mono_to_wall = metas.first().map_or(0, |m| m.mono_to_wall_ns);
        let names: HashMap<u32, String> = metas
            .iter()
            .flat_map(|m| &m.environment.interfaces)
            .map(|i| (i.ifindex, i.name.clone()))
            .collect();
        let journeys = HopJourneys::build(part)?;
        let rows = PacketRows::read(&files, part.sel, &stages)?;

        let mut interfaces: HashMap<(u64, u64), u32> = HashMap::new();
        let mut written = 0usize;
        for i in 0..rows.len() {
            let Some(p) = rows.packet(i) else {
                continue; // no headers: not a packet this stage read
            };
            let journey = journeys.of(p.stage, p.ts, p.cpu);
            // By default one packet per wire packet: one this host both sent and received (veth,
            // loopback) is written where it was sent.
            if part.sel.stages.is_empty()
                && p.stage == Stage::RxDriver
                && journey.is_some_and(|j| j.hops.iter().any(|h| h.stage == Stage::TxDriver))
            {
                self.written.sent_here += 1;
                continue;
            }
            let Some((data, original_len)) = p.headers.bytes() else {
                continue;
            };
            if part.limit > 0 && written >= part.limit {
                self.written.limited += (rows.len() - i) as u64;
                break;
            }
            let next = interfaces.len() as u32;
            let interface_id = match interfaces.get(&p.interface) {
                Some(&id) => id,
                None => {
                    self.interface(part.host, p.interface, &names)?;
                    interfaces.insert(p.interface, next);
                    next
                }
            };
            let direction = if p.stage.name().starts_with("rx_") {
                1 // inbound
            } else {
                2 // outbound
            };
            let wall = (p.ts as i64 + mono_to_wall).max(0) as u64;
            self.w
                .write_pcapng_block(EnhancedPacketBlock {
                    interface_id,
                    timestamp: Duration::from_nanos(wall),
                    original_len,
                    data: Cow::Owned(data),
                    options: vec![
                        EnhancedPacketOption::Flags(direction),
                        EnhancedPacketOption::Comment(Cow::Owned(comment(p.stage, journey))),
                    ],
                })
                .context("cannot write a packet")?;
            written += 1;
            self.written.in_journeys += journey.is_some() as u64;
        }
        self.written.packets += written as u64;
        Ok(())
    }

    fn interface(
        &mut self,
        host: Option<&str>,
        (netns, ifindex): (u64, u64),
        names: &HashMap<u32, String>,
    ) -> anyhow::Result<()> {
        let name = names
            .get(&(ifindex as u32))
            .cloned()
            .unwrap_or_else(|| format!("ifindex {ifindex}"));
        let name = match host {
            Some(h) => format!("{h}/{name}"),
            None => name,
        };
        self.w
            .write_pcapng_block(InterfaceDescriptionBlock {
                linktype: DataLink::RAW,
                snaplen: 0,
                options: vec![
                    InterfaceDescriptionOption::IfName(Cow::Owned(name)),
                    InterfaceDescriptionOption::IfDescription(Cow::Owned(format!(
                        "ifindex {ifindex} in network namespace {netns}, as recorded by tcptape"
                    ))),
                    // Timestamps in nanoseconds.
                    InterfaceDescriptionOption::IfTsResol(9),
                ],
            })
            .context("cannot write an interface")?;
        self.written.interfaces += 1;
        Ok(())
    }

    /// Ends the file, handing back what was written.
    pub fn finish(self) -> anyhow::Result<PcapWritten> {
        let mut out = self.w.into_inner();
        out.flush().context("cannot write")?;
        Ok(self.written)
    }
}

/// The report's journeys of a host, found by (stage, time, CPU) of their hops: each packet's
/// comment.
struct HopJourneys {
    packets: Vec<Packet>,
    by_hop: HashMap<(u8, u64, u64), usize>,
}

impl HopJourneys {
    fn build(part: &HostPackets<'_>) -> anyhow::Result<HopJourneys> {
        // Journeys are built from every stage, whatever stages are exported.
        let sel = Selection {
            stages: Vec::new(),
            ..part.sel.clone()
        };
        let j = per_packet::journeys(part.recs, &sel, part.max_hop_gap_ns)?;
        let packets = per_packet::packets(&j)?;
        let mut by_hop = HashMap::new();
        for (i, p) in packets.iter().enumerate() {
            for h in &p.hops {
                if let Some(cpu) = h.cpu {
                    by_hop.entry((h.stage.code(), h.ts_ns, cpu)).or_insert(i);
                }
            }
        }
        Ok(HopJourneys { packets, by_hop })
    }

    fn of(&self, stage: Stage, ts: u64, cpu: u64) -> Option<&Packet> {
        self.by_hop
            .get(&(stage.code(), ts, cpu))
            .map(|&i| &self.packets[i])
    }
}

/// The selected events of the exported stages, in time order, column by column.
struct PacketRows {
    ts: Vec<Option<u64>>,
    cpu: Vec<Option<u64>>,
    kind: Vec<Option<String>>,
    netns: Vec<Option<u64>>,
    ifindex: Vec<Option<u64>>,
    family: Vec<Option<u64>>,
    saddr: Vec<Option<String>>,
    daddr: Vec<Option<String>>,
    sport: Vec<Option<u64>>,
    dport: Vec<Option<u64>>,
    seq: Vec<Option<u64>>,
    len: Vec<Option<u64>>,
    ack: Vec<Option<u64>>,
    window: Vec<Option<u64>>,
    flags: Vec<Option<u64>>,
    hlen: Vec<Option<u64>>,
}

/// One row of [`PacketRows`] that is a packet with its headers.
struct PacketRow<'a> {
    stage: Stage,
    ts: u64,
    cpu: u64,
    /// (network namespace, interface index).
    interface: (u64, u64),
    headers: Headers<'a>,
}

impl PacketRows {
    fn read(
        files: &[std::path::PathBuf],
        sel: &Selection,
        stages: &[Stage],
    ) -> anyhow::Result<PacketRows> {
        let rows = stages
            .iter()
            .fold(lit(false), |acc, s| acc.or(col("kind").eq(lit(s.name()))));
        let lf = sel
            .apply(scan(files).map_err(crate::queries::frame::one_line)?, rows)
            .select(COLUMNS.map(col))
            .sort(
                ["ts_ns"],
                SortMultipleOptions::default().with_maintain_order(true),
            );
        let df = collect(lf)?;
        let int = |c: &str| u64s(&df, c);
        Ok(PacketRows {
            ts: int("ts_ns")?,
            cpu: int("cpu")?,
            kind: strs(&df, "kind")?,
            netns: int("netns")?,
            ifindex: int("ifindex")?,
            family: int("family")?,
            saddr: strs(&df, "saddr")?,
            daddr: strs(&df, "daddr")?,
            sport: int("sport")?,
            dport: int("dport")?,
            seq: int("seq")?,
            len: int("len")?,
            ack: int("ack")?,
            window: int("window")?,
            flags: int("tcp_flags")?,
            hlen: int("tcp_hlen")?,
        })
    }

    fn len(&self) -> usize {
        self.ts.len()
    }

    /// Row `i` as a packet; `None` when it has no flow or no TCP header.
    fn packet(&self, i: usize) -> Option<PacketRow<'_>> {
        let stage = self.kind[i].as_deref()?.parse::<Stage>().ok()?;
        Some(PacketRow {
            stage,
            ts: self.ts[i]?,
            cpu: self.cpu[i]?,
            interface: (self.netns[i].unwrap_or(0), self.ifindex[i].unwrap_or(0)),
            headers: Headers {
                family: self.family[i].unwrap_or(4) as u8,
                saddr: self.saddr[i].as_deref()?,
                daddr: self.daddr[i].as_deref()?,
                sport: self.sport[i].unwrap_or(0) as u16,
                dport: self.dport[i].unwrap_or(0) as u16,
                seq: self.seq[i].unwrap_or(0) as u32,
                ack: self.ack[i].unwrap_or(0) as u32,
                window: self.window[i].unwrap_or(0) as u16,
                flags: self.flags[i]? as u8,
                hlen: self.hlen[i]? as u8,
                payload: self.len[i].unwrap_or(0) as u32,
            },
        })
    }
}

/// The stages to export from these recordings, or why they cannot be: recordings older than
/// the headers, stages whose events are not packets. Called before the file is created.
pub fn check(recs: &[Recording], sel: &Selection) -> anyhow::Result<Vec<Stage>> {
    for r in recs {
        let m = r.meta();
        anyhow::ensure!(
            m.schema_version >= 2,
            "{}: pcap-ng needs the TCP headers recordings carry since schema version 2; this \
             one is version {}",
            r.path.display(),
            m.schema_version
        );
    }
    let stages: Vec<Stage> = if sel.stages.is_empty() {
        DEFAULT_STAGES.to_vec()
    } else {
        sel.stages.clone()
    };
    if let Some(s) = stages.iter().find(|s| !HEADER_STAGES.contains(s)) {
        anyhow::bail!(
            "--stage {}: its events carry no packet headers; pcap-ng exports packets at {}",
            s.name(),
            HEADER_STAGES.map(|s| s.name()).join(", ")
        );
    }
    Ok(stages)
}

/// A packet's comment: its stage, and its journey's hops with the time from each to the next.
fn comment(stage: Stage, journey: Option<&Packet>) -> String {
    match journey {
        None => format!("tcptape: at {} (no journey)", stage.name()),
        Some(p) => {
            let hops: Vec<String> = p
                .hops
                .windows(2)
                .filter_map(|w| {
                    w[1].dt_ns.map(|dt| {
                        format!(
                            "{}→{} {}",
                            w[0].stage.name(),
                            w[1].stage.name(),
                            ns(dt as f64)
                        )
                    })
                })
                .collect();
            format!(
                "tcptape: at {}, journey {}{}: {}",
                stage.name(),
                p.jid,
                if p.complete { "" } else { " (incomplete)" },
                hops.join(", ")
            )
        }
    }
}

/// The headers of one recorded packet.
struct Headers<'a> {
    family: u8,
    saddr: &'a str,
    daddr: &'a str,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    window: u16,
    flags: u8,
    hlen: u8,
    payload: u32,
}

impl Headers<'_> {
    /// The IP and TCP headers as bytes, and the packet's length on the wire; `None` for
    /// addresses that do not parse (a recording edited by hand).
    fn bytes(&self) -> Option<(Vec<u8>, u32)> {
        let mut tcp = TcpHeader::new(self.sport, self.dport, self.seq, self.window);
        tcp.acknowledgment_number = self.ack;
        let f = self.flags;
        (tcp.fin, tcp.syn, tcp.rst, tcp.psh) = (f & 1 != 0, f & 2 != 0, f & 4 != 0, f & 8 != 0);
        (tcp.ack, tcp.urg, tcp.ece, tcp.cwr) =
            (f & 16 != 0, f & 32 != 0, f & 64 != 0, f & 128 != 0);
        // Options are not recorded: NOPs keep the header as long as it was.
        let options = (self.hlen as usize).clamp(20, 60) - 20;
        tcp.set_options_raw(&vec![1u8; options]).ok()?;
        let tcp_len = tcp.header_len() as u32 + self.payload;
        let mut data = Vec::with_capacity(40 + tcp.header_len());
        if self.family == 6 {
            let ip = Ipv6Header {
                traffic_class: 0,
                flow_label: Ipv6FlowLabel::ZERO,
                payload_length: tcp_len.min(u16::MAX as u32) as u16,
                next_header: IpNumber::TCP,
                hop_limit: 64,
                source: self.saddr.parse::<std::net::Ipv6Addr>().ok()?.octets(),
                destination: self.daddr.parse::<std::net::Ipv6Addr>().ok()?.octets(),
            };
            ip.write(&mut data).ok()?;
        } else {
            // A TSO/GRO packet can be longer than IPv4's 64 KiB: the length field saturates.
            let mut ip = Ipv4Header::new(
                tcp_len.min(u16::MAX as u32 - 20) as u16,
                64,
                IpNumber::TCP,
                self.saddr.parse::<std::net::Ipv4Addr>().ok()?.octets(),
                self.daddr.parse::<std::net::Ipv4Addr>().ok()?.octets(),
            )
            .ok()?;
            ip.dont_fragment = true;
            ip.header_checksum = ip.calc_header_checksum();
            ip.write(&mut data).ok()?;
        }
        let ip_len = data.len() as u32;
        tcp.write(&mut data).ok()?;
        Some((data, ip_len + tcp_len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_keep_flags_numbers_and_lengths() {
        let h = Headers {
            family: 4,
            saddr: "10.0.0.1",
            daddr: "10.0.0.2",
            sport: 40000,
            dport: 443,
            seq: 7,
            ack: 9,
            window: 501,
            flags: 0x18,
            hlen: 32,
            payload: 1448,
        };
        let (data, len) = h.bytes().unwrap();
        assert_eq!(data.len(), 20 + 32);
        assert_eq!(len, 20 + 32 + 1448);
        let (ip, rest) = Ipv4Header::from_slice(&data).unwrap();
        assert_eq!(ip.total_len, 20 + 32 + 1448);
        assert_eq!(ip.header_checksum, ip.calc_header_checksum());
        let (tcp, _) = TcpHeader::from_slice(rest).unwrap();
        assert_eq!((tcp.sequence_number, tcp.acknowledgment_number), (7, 9));
        assert!(tcp.psh && tcp.ack && !tcp.syn && !tcp.fin);
        assert_eq!((tcp.window_size, tcp.header_len()), (501, 32));
        let v6 = Headers {
            family: 6,
            saddr: "fd00::1",
            daddr: "fd00::2",
            flags: 0x02,
            hlen: 40,
            payload: 0,
            ..h
        };
        let (data, len) = v6.bytes().unwrap();
        assert_eq!((data.len(), len), (40 + 40, 80));
        let (ip, rest) = Ipv6Header::from_slice(&data).unwrap();
        assert_eq!(ip.payload_length, 40);
        assert!(TcpHeader::from_slice(rest).unwrap().0.syn);
        assert!(Headers { saddr: "x", ..v6 }.bytes().is_none());
    }
}
