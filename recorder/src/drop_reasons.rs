//! Names of the kernel's drop reasons (`enum skb_drop_reason`), read from the host's BTF, and
//! the one device flag the programs test (`IFF_NO_QUEUE`).
//!
//! The eBPF programs record the raw value; the value-to-name table differs between kernels, so
//! it is taken from the recording host's `/sys/kernel/btf/vmlinux` and stored with the
//! recording. This is a minimal BTF reader: it walks the type section only to find one enum.

use std::collections::HashMap;

const BTF_MAGIC: u16 = 0xeb9f;
const KIND_ENUM: u32 = 6;
const KIND_ENUM64: u32 = 19;
/// The prefix every reason name carries in the kernel; recordings store the rest.
const PREFIX: &str = "SKB_DROP_REASON_";

/// Why BTF could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BtfError {
    /// Not BTF, or cut short.
    #[error("malformed BTF: {0}")]
    Malformed(&'static str),
    /// A type kind this reader does not know (a newer kernel): it cannot skip it safely.
    #[error("BTF type kind {0} is unknown to this reader")]
    UnknownKind(u32),
}

fn u16_at(b: &[u8], off: usize) -> Result<u16, BtfError> {
    b.get(off..off + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or(BtfError::Malformed("truncated"))
}

fn u32_at(b: &[u8], off: usize) -> Result<u32, BtfError> {
    b.get(off..off + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or(BtfError::Malformed("truncated"))
}

fn str_at(strings: &[u8], off: u32) -> Result<&str, BtfError> {
    let s = strings
        .get(off as usize..)
        .ok_or(BtfError::Malformed("string offset out of range"))?;
    let end = s.iter().position(|&c| c == 0).unwrap_or(s.len());
    std::str::from_utf8(&s[..end]).map_err(|_| BtfError::Malformed("string is not UTF-8"))
}

/// Bytes that follow a type's 12-byte header, by kind (see the kernel's `btf.rst`).
fn extra_bytes(kind: u32, vlen: usize) -> Result<usize, BtfError> {
    Ok(match kind {
        1 => 4,             // INT
        3 => 12,            // ARRAY
        4 | 5 => vlen * 12, // STRUCT, UNION
        6 => vlen * 8,      // ENUM
        2 | 7..=12 | 16 | 18 => 0,
        13 => vlen * 8,  // FUNC_PROTO
        14 => 4,         // VAR
        15 => vlen * 12, // DATASEC
        17 => 4,         // DECL_TAG
        19 => vlen * 12, // ENUM64
        k => return Err(BtfError::UnknownKind(k)),
    })
}

/// The members of the enum named `name` in a (little-endian) BTF blob, value → member name.
pub fn enum_members(btf: &[u8], name: &str) -> Result<Option<HashMap<u32, String>>, BtfError> {
    if u16_at(btf, 0)? != BTF_MAGIC {
        return Err(BtfError::Malformed("bad magic"));
    }
    let hdr_len = u32_at(btf, 4)? as usize;
    let type_off = u32_at(btf, 8)? as usize;
    let type_len = u32_at(btf, 12)? as usize;
    let str_off = u32_at(btf, 16)? as usize;
    let str_len = u32_at(btf, 20)? as usize;
    let section = |off: usize, len: usize| {
        btf.get(hdr_len + off..hdr_len + off + len)
            .ok_or(BtfError::Malformed("section out of range"))
    };
    let types = section(type_off, type_len)?;
    let strings = section(str_off, str_len)?;
    let mut pos = 0;
    while pos + 12 <= types.len() {
        let name_off = u32_at(types, pos)?;
        let info = u32_at(types, pos + 4)?;
        let kind = (info >> 24) & 0x1f;
        let vlen = (info & 0xffff) as usize;
        let extra = extra_bytes(kind, vlen)?;
        let body = pos + 12;
        if (kind == KIND_ENUM || kind == KIND_ENUM64) && str_at(strings, name_off)? == name {
            let step = if kind == KIND_ENUM { 8 } else { 12 };
            let mut out = HashMap::new();
            for i in 0..vlen {
                let m = body + i * step;
                let member = str_at(strings, u32_at(types, m)?)?;
                let value = u32_at(types, m + 4)?; // ENUM64: the low 32 bits
                let short = member.strip_prefix(PREFIX).unwrap_or(member);
                out.insert(value, short.to_string());
            }
            return Ok(Some(out));
        }
        pos = body + extra;
    }
    Ok(None)
}

/// The members of this host's enum `name` (from `/sys/kernel/btf/vmlinux`); `None` when the
/// host has no BTF, or no such enum.
fn host_enum(name: &str) -> Option<HashMap<u32, String>> {
    std::fs::read("/sys/kernel/btf/vmlinux")
        .ok()
        .and_then(|b| enum_members(&b, name).ok().flatten())
}

/// The drop-reason names of this host, or an empty table when its BTF has none.
pub fn host_drop_reasons() -> HashMap<u32, String> {
    host_enum("skb_drop_reason").unwrap_or_default()
}

/// The value of `IFF_NO_QUEUE` in this host's `enum netdev_priv_flags`; 0 when unknown. Given to
/// the programs at load: the enum is a BTF ENUM64 on some kernels (6.1), which a CO-RE
/// relocation from an object built by clang 14 (ENUM only) cannot match.
pub fn host_iff_no_queue() -> u32 {
    host_enum("netdev_priv_flags")
        .and_then(|m| {
            m.into_iter()
                .find(|(_, name)| name == "IFF_NO_QUEUE")
                .map(|(v, _)| v)
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BTF blob with an INT, a STRUCT with one member, and the enum.
    fn blob() -> Vec<u8> {
        let strings = b"\0int\0s\0m\0skb_drop_reason\0SKB_CONSUMED\0SKB_DROP_REASON_TCP_CSUM\0";
        let pos = |s: &str| {
            let needle = format!("\0{s}\0");
            strings
                .windows(needle.len())
                .position(|w| w == needle.as_bytes())
                .unwrap() as u32
                + 1
        };
        let mut types = Vec::new();
        let mut push = |v: u32| types.extend_from_slice(&v.to_le_bytes());
        // INT "int"
        push(pos("int"));
        push(1 << 24);
        push(4);
        push(32);
        // STRUCT "s" with one member "m"
        push(pos("s"));
        push((4 << 24) | 1);
        push(4);
        push(pos("m"));
        push(1);
        push(0);
        // ENUM skb_drop_reason { SKB_CONSUMED = 1, SKB_DROP_REASON_TCP_CSUM = 6 }
        push(pos("skb_drop_reason"));
        push((6 << 24) | 2);
        push(4);
        push(pos("SKB_CONSUMED"));
        push(1);
        push(pos("SKB_DROP_REASON_TCP_CSUM"));
        push(6);
        let mut b = Vec::new();
        b.extend_from_slice(&BTF_MAGIC.to_le_bytes());
        b.extend_from_slice(&[1, 0]);
        for v in [
            24u32,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&types);
        b.extend_from_slice(strings);
        b
    }

    #[test]
    fn finds_the_enum_after_other_types() {
        let m = enum_members(&blob(), "skb_drop_reason").unwrap().unwrap();
        assert_eq!(m.get(&1).map(String::as_str), Some("SKB_CONSUMED"));
        assert_eq!(m.get(&6).map(String::as_str), Some("TCP_CSUM"));
        assert_eq!(enum_members(&blob(), "other").unwrap(), None);
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        let b = blob();
        assert!(enum_members(&b[..10], "x").is_err());
        assert!(enum_members(b"nope", "x").is_err());
        for cut in [30, 50, b.len() - 3] {
            let _ = enum_members(&b[..cut], "skb_drop_reason");
        }
        let mut bad = b.clone();
        bad[24 + 7] = 31; // first type's kind byte → unknown kind 31
        assert_eq!(
            enum_members(&bad, "skb_drop_reason"),
            Err(BtfError::UnknownKind(31))
        );
    }

    #[test]
    fn this_host_has_reasons_when_it_has_btf() {
        if !std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
            eprintln!("SKIPPED: this host has no /sys/kernel/btf/vmlinux");
            return;
        }
        let m = host_drop_reasons();
        assert_eq!(m.get(&2).map(String::as_str), Some("NOT_SPECIFIED"));
        // One bit, where 6.1 to 6.18 keep it.
        assert_eq!(host_iff_no_queue(), 1 << 19);
    }
}
