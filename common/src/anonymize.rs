//! Anonymization of recordings: keyed, prefix-preserving address pseudonyms (Crypto-PAn), an
//! optional keyed permutation of ports, and removal of task names and pids.
//!
//! Crypto-PAn (Xu, Fan, Ammar, Moon 2002) maps addresses so that two addresses sharing a k-bit
//! prefix map to two pseudonyms sharing a k-bit prefix: subnets stay subnets, so per-flow and
//! per-network analysis still works, while the real addresses cannot be recovered without the key.
//! The same key gives the same mapping, in one file or across files.

use crate::metadata::RecordingMeta;
use crate::parquet_file::ParquetFileWriter;
use crate::reader::Recording;
use aes::cipher::{generic_array::GenericArray, BlockEncrypt, KeyInit};
use aes::Aes128;
use arrow_array::cast::AsArray;
use arrow_array::types::UInt16Type;
use arrow_array::{new_null_array, ArrayRef, RecordBatch, StringArray};
use arrow_schema::ArrowError;
use std::collections::HashMap;
use std::hash::Hasher;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::Arc;

/// A 32-byte anonymization key: 16 bytes of AES key, 16 bytes that make the pad.
pub type AnonKey = [u8; 32];

/// Prefix-preserving address anonymization (Crypto-PAn), IPv4 and IPv6.
#[derive(Clone)]
pub struct CryptoPan {
    cipher: Aes128,
    pad: u128,
}

impl CryptoPan {
    /// The mapping for a key.
    pub fn new(key: &AnonKey) -> CryptoPan {
        let cipher = Aes128::new(GenericArray::from_slice(&key[..16]));
        let mut pad = GenericArray::clone_from_slice(&key[16..]);
        cipher.encrypt_block(&mut pad);
        CryptoPan {
            cipher,
            pad: u128::from_be_bytes(pad.into()),
        }
    }

    /// Anonymizes the top `bits` bits of `orig` (an address left-aligned in 128 bits).
    fn anonymize_bits(&self, orig: u128, bits: u32) -> u128 {
        let mut otp = 0u128;
        for pos in 0..bits {
            // The first `pos` bits of the address, the rest from the pad.
            let mask = if pos == 0 { 0 } else { !0u128 << (128 - pos) };
            let input = (orig & mask) | (self.pad & !mask);
            let mut block = GenericArray::from(input.to_be_bytes());
            self.cipher.encrypt_block(&mut block);
            otp |= ((block[0] >> 7) as u128) << (127 - pos);
        }
        orig ^ otp
    }

    /// The pseudonym of an IPv4 address.
    pub fn anonymize_v4(&self, a: Ipv4Addr) -> Ipv4Addr {
        let orig = (u32::from(a) as u128) << 96;
        Ipv4Addr::from((self.anonymize_bits(orig, 32) >> 96) as u32)
    }

    /// The pseudonym of an IPv6 address.
    pub fn anonymize_v6(&self, a: Ipv6Addr) -> Ipv6Addr {
        Ipv6Addr::from(self.anonymize_bits(u128::from(a), 128))
    }

    /// The pseudonym of an address.
    pub fn anonymize(&self, a: IpAddr) -> IpAddr {
        match a {
            IpAddr::V4(v4) => IpAddr::V4(self.anonymize_v4(v4)),
            IpAddr::V6(v6) => IpAddr::V6(self.anonymize_v6(v6)),
        }
    }

    /// The pseudonym of a CIDR range: its network address anonymized, the same prefix length
    /// (valid because the mapping preserves prefixes). `None` for text that is not a CIDR.
    pub fn anonymize_cidr(&self, cidr: &str) -> Option<String> {
        let (addr, len) = match cidr.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (cidr, None),
        };
        let ip: IpAddr = addr.parse().ok()?;
        let anon = self.anonymize(ip);
        Some(match len {
            Some(l) => format!("{anon}/{l}"),
            None => anon.to_string(),
        })
    }
}

/// A keyed permutation of port numbers: a 4-round Feistel network on 16 bits, so the mapping is
/// a bijection (two ports never collide) and consistent under one key.
#[derive(Clone)]
pub struct PortMap {
    keys: [[u8; 16]; 4],
}

impl PortMap {
    /// The permutation for a key.
    pub fn new(key: &AnonKey) -> PortMap {
        let mut keys = [[0u8; 16]; 4];
        for (i, k) in keys.iter_mut().enumerate() {
            k.copy_from_slice(&key[..16]);
            k[15] ^= 0xa0 + i as u8;
            k[0] ^= key[16 + i];
        }
        PortMap { keys }
    }

    fn round(&self, r: usize, half: u8) -> u8 {
        let mut h = siphasher::sip::SipHasher13::new_with_key(&self.keys[r]);
        h.write_u8(half);
        h.finish() as u8
    }

    /// The mapped port.
    pub fn map(&self, port: u16) -> u16 {
        let (mut l, mut r) = ((port >> 8) as u8, port as u8);
        for i in 0..4 {
            let next = l ^ self.round(i, r);
            l = r;
            r = next;
        }
        ((l as u16) << 8) | r as u16
    }
}

/// What an [`Anonymizer`] changes besides addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AnonOptions {
    /// Map ports through a keyed permutation (else they are kept).
    pub ports: bool,
    /// Remove `pid` and `comm`.
    pub tasks: bool,
}

/// Anonymizes recordings: batches and metadata.
#[derive(Clone)]
pub struct Anonymizer {
    pan: CryptoPan,
    ports: Option<PortMap>,
    tasks: bool,
    key: AnonKey,
}

impl Anonymizer {
    /// An anonymizer with this key and options.
    pub fn new(key: &AnonKey, opts: AnonOptions) -> Anonymizer {
        Anonymizer {
            pan: CryptoPan::new(key),
            ports: opts.ports.then(|| PortMap::new(key)),
            tasks: opts.tasks,
            key: *key,
        }
    }

    /// The address mapping.
    pub fn addresses(&self) -> &CryptoPan {
        &self.pan
    }

    /// Rewrites a batch of the recording schema: addresses, ports, tasks.
    pub fn anonymize_batch(&self, batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
        let schema = batch.schema();
        let mut cache: HashMap<String, Option<String>> = HashMap::new();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
        for (field, col) in schema.fields().iter().zip(batch.columns()) {
            let name = field.name().as_str();
            let new: ArrayRef = match name {
                "saddr" | "daddr" => {
                    let strings = col.as_string::<i32>();
                    let mapped: StringArray = strings
                        .iter()
                        .map(|v| {
                            v.and_then(|text| {
                                cache
                                    .entry(text.to_string())
                                    .or_insert_with(|| {
                                        text.parse::<IpAddr>()
                                            .ok()
                                            .map(|ip| self.pan.anonymize(ip).to_string())
                                    })
                                    .clone()
                            })
                        })
                        .collect();
                    Arc::new(mapped)
                }
                "sport" | "dport" if self.ports.is_some() => {
                    let map = self.ports.as_ref().expect("checked");
                    let ports = col.as_primitive::<UInt16Type>();
                    Arc::new(ports.unary::<_, UInt16Type>(|p| map.map(p)))
                }
                "pid" | "comm" if self.tasks => new_null_array(field.data_type(), batch.num_rows()),
                _ => col.clone(),
            };
            columns.push(new);
        }
        RecordBatch::try_new(schema, columns)
    }

    /// The metadata of the anonymized recording: flags set, filters and host name mapped.
    pub fn anonymize_meta(&self, meta: &RecordingMeta) -> RecordingMeta {
        let mut m = meta.clone();
        m.anonymization.addresses = true;
        m.anonymization.ports |= self.ports.is_some();
        m.anonymization.tasks |= self.tasks;
        m.filters.addrs = m
            .filters
            .addrs
            .iter()
            .map(|c| {
                self.pan
                    .anonymize_cidr(c)
                    .unwrap_or_else(|| "anonymized".into())
            })
            .collect();
        if let Some(map) = &self.ports {
            m.filters.ports = m.filters.ports.iter().map(|p| map.map(*p)).collect();
        }
        if self.tasks {
            m.filters.pids.clear();
            // Cgroup paths name services and containers as `comm` names processes: the ids
            // stay (the report still splits by them), the names go.
            for c in &mut m.cgroups {
                c.path = None;
                c.identity = None;
            }
            for c in &mut m.filters.cgroups {
                *c = "anonymized".into();
            }
        }
        let mut h = siphasher::sip::SipHasher13::new_with_key(
            &self.key[..16].try_into().expect("16 bytes"),
        );
        h.write(m.hostname.as_bytes());
        m.hostname = format!("host-{:08x}", h.finish() as u32);
        m
    }
}

/// Writes an anonymized copy of a recording as one Parquet file. Returns the rows written.
pub fn anonymize_recording(rec: &Recording, out: &Path, anon: &Anonymizer) -> Result<u64, String> {
    let mut w = ParquetFileWriter::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
    for batch in rec.batches(None) {
        let batch = batch.map_err(|e| e.to_string())?;
        let batch = anon.anonymize_batch(&batch).map_err(|e| e.to_string())?;
        w.write(&batch)
            .map_err(|e| format!("{}: {e}", out.display()))?;
    }
    let rows = w.rows();
    let mut meta = anon.anonymize_meta(&rec.meta());
    meta.segment.index = 0;
    w.finish(&meta)
        .map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key of the reference implementation's sample program.
    const PAPER_KEY: &[u8; 32] = &[
        21, 34, 23, 141, 51, 164, 207, 128, 19, 10, 91, 22, 73, 144, 125, 16, 216, 152, 143, 131,
        121, 121, 101, 39, 98, 87, 76, 45, 42, 132, 34, 2,
    ];

    /// Mappings of the reference implementation's sample trace for this key.
    #[test]
    fn matches_the_reference_implementation() {
        let c = CryptoPan::new(PAPER_KEY);
        for (orig, anon) in [
            ("128.11.68.132", "135.242.180.132"),
            ("129.118.74.4", "134.136.186.123"),
            ("130.132.252.244", "133.68.164.234"),
            ("141.223.7.43", "141.167.8.160"),
            ("141.233.145.108", "141.129.237.235"),
            ("152.163.225.39", "151.140.114.167"),
            ("156.29.3.236", "147.225.12.42"),
            ("165.247.96.84", "162.9.99.234"),
            ("166.107.77.190", "160.132.178.185"),
            ("192.102.249.13", "252.138.62.131"),
        ] {
            assert_eq!(
                c.anonymize_v4(orig.parse().unwrap()).to_string(),
                anon,
                "{orig}"
            );
        }
    }

    fn common_prefix(a: u128, b: u128) -> u32 {
        (a ^ b).leading_zeros()
    }

    #[test]
    fn prefixes_are_preserved_v4_and_v6() {
        let c = CryptoPan::new(&[7; 32]);
        let v4: Vec<Ipv4Addr> = [
            "10.200.0.1",
            "10.200.0.2",
            "10.200.1.1",
            "10.0.0.1",
            "192.168.1.1",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        for a in &v4 {
            for b in &v4 {
                let before = common_prefix(u32::from(*a) as u128, u32::from(*b) as u128);
                let after = common_prefix(
                    u32::from(c.anonymize_v4(*a)) as u128,
                    u32::from(c.anonymize_v4(*b)) as u128,
                );
                assert_eq!(before, after, "{a} {b}");
            }
        }
        let a: Ipv6Addr = "fd00:1::1".parse().unwrap();
        let b: Ipv6Addr = "fd00:1::2".parse().unwrap();
        let (x, y) = (c.anonymize_v6(a), c.anonymize_v6(b));
        assert_eq!(
            common_prefix(u128::from(a), u128::from(b)),
            common_prefix(u128::from(x), u128::from(y))
        );
        assert_ne!(x, a);
        assert_eq!(
            c.anonymize_cidr("10.200.0.0/24").unwrap(),
            format!("{}/24", c.anonymize_v4("10.200.0.0".parse().unwrap()))
        );
        assert_eq!(c.anonymize_cidr("not-an-address"), None);
    }

    #[test]
    fn port_map_is_a_keyed_bijection() {
        let m = PortMap::new(&[3; 32]);
        let mut seen = vec![false; 65536];
        for p in 0..=u16::MAX {
            let q = m.map(p) as usize;
            assert!(!seen[q], "collision at {p}");
            seen[q] = true;
        }
        assert_ne!(PortMap::new(&[4; 32]).map(443), m.map(443));
    }
}
