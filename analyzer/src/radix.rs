//! A stable radix sort of (key, row) pairs, for the sorts of millions of rows the analyzer does
//! itself: only an integer key and a row number move, not the rows.

/// Sorts by key (least significant digit first, 11 bits a pass, stable), over `bits` bits.
pub fn radix_sort(v: &mut Vec<(u64, u32)>, bits: u32) {
    const DIGIT: u32 = 11;
    const BUCKETS: usize = 1 << DIGIT;
    let passes = bits.div_ceil(DIGIT) as usize;
    if passes == 0 || v.len() < 2 {
        return;
    }
    let mut hist = vec![[0usize; BUCKETS]; passes];
    for &(k, _) in v.iter() {
        for (p, h) in hist.iter_mut().enumerate() {
            h[((k >> (p as u32 * DIGIT)) as usize) & (BUCKETS - 1)] += 1;
        }
    }
    let mut tmp = vec![(0u64, 0u32); v.len()];
    for (p, h) in hist.iter_mut().enumerate() {
        // A digit that is the same for every key moves nothing.
        if h.contains(&v.len()) {
            continue;
        }
        let mut at = 0;
        for c in h.iter_mut() {
            let n = *c;
            *c = at;
            at += n;
        }
        let shift = p as u32 * DIGIT;
        for &(k, r) in v.iter() {
            let b = ((k >> shift) as usize) & (BUCKETS - 1);
            tmp[h[b]] = (k, r);
            h[b] += 1;
        }
        std::mem::swap(v, &mut tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_and_is_stable() {
        let mut v: Vec<(u64, u32)> = (0..5000u32)
            .map(|i| ((i as u64 * 7919) % 1013 + ((i as u64 % 3) << 30), i))
            .collect();
        let mut want = v.clone();
        want.sort_by_key(|&(k, i)| (k, i));
        radix_sort(&mut v, 32);
        assert_eq!(v, want);
        let mut v: Vec<(u64, u32)> = (0..3000u32)
            .map(|i| (u64::MAX - (i % 7) as u64, i))
            .collect();
        let mut want = v.clone();
        want.sort_by_key(|&(k, i)| (k, i));
        radix_sort(&mut v, 64);
        assert_eq!(v, want);
    }
}
