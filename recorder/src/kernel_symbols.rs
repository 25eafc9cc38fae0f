//! Addresses of kernel variables the eBPF programs read, from `/proc/kallsyms`.
//!
//! On x86-64 kernels that randomize their memory layout (Debian's do), the base of the direct
//! map (`page_offset_base`) and of the page array (`vmemmap_base`) are variables set at boot. A
//! program that finds a packet's headers in a page fragment needs both to turn the page into an
//! address. Where they are not listed (no randomization, or `kptr_restrict` hiding addresses),
//! the addresses stay 0 and such headers are not read.

/// The addresses of `page_offset_base` and `vmemmap_base`, 0 where unknown.
pub fn page_bases() -> (u64, u64) {
    match std::fs::read_to_string("/proc/kallsyms") {
        Ok(text) => page_bases_in(&text),
        Err(_) => (0, 0),
    }
}

fn page_bases_in(kallsyms: &str) -> (u64, u64) {
    let (mut page_offset, mut vmemmap) = (0, 0);
    for line in kallsyms.lines() {
        let mut f = line.split_whitespace();
        let (Some(addr), Some(_kind), Some(name), None) = (f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        let slot = match name {
            "page_offset_base" => &mut page_offset,
            "vmemmap_base" => &mut vmemmap,
            _ => continue,
        };
        *slot = u64::from_str_radix(addr, 16).unwrap_or(0);
        if page_offset != 0 && vmemmap != 0 {
            break;
        }
    }
    if cfg!(target_arch = "x86_64") {
        (page_offset, vmemmap)
    } else {
        (0, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_bases_are_found_and_hidden_addresses_read_as_unknown() {
        let text = "ffffffff82e1c010 D page_offset_base\n\
                    ffffffff82e1c008 D vmemmap_base\n\
                    ffffffffc0a01000 t foo\t[veth]\n";
        assert_eq!(
            page_bases_in(text),
            (0xffff_ffff_82e1_c010, 0xffff_ffff_82e1_c008)
        );
        // kptr_restrict: every address reads 0.
        let hidden = "0000000000000000 D page_offset_base\n0000000000000000 D vmemmap_base\n";
        assert_eq!(page_bases_in(hidden), (0, 0));
        assert_eq!(page_bases_in("ffffffff81000000 T _text\n"), (0, 0));
    }
}
