//! A stable radix sort of (key, row) pairs, for the sorts of millions of rows the analyzer does
//! itself: only an integer key and a row number move, not the rows.

/// A key and its row number.
type Entry = (u64, u32);

const DIGIT: u32 = 11;
const BUCKETS: usize = 1 << DIGIT;

fn digit(k: u64, shift: u32) -> usize {
    ((k >> shift) as usize) & (BUCKETS - 1)
}

/// Sorts by the low `bits` bits of the key (least significant digit first, 11 bits a pass,
/// stable).
pub fn radix_sort(v: &mut [(u64, u32)], bits: u32) {
    let mut scratch = Vec::new();
    lsd(v, bits, &mut scratch);
}

/// [`radix_sort`] for keys evenly spread over their `bits` bits (hashes), on two threads: one
/// pass on the top digit spreads the keys over buckets small enough for the cache, and each
/// bucket is then sorted on the remaining bits, half the buckets on each thread.
pub fn radix_sort_spread(v: &mut Vec<(u64, u32)>, bits: u32) {
    if v.len() < 1 << 16 || bits <= DIGIT {
        return radix_sort(v, bits);
    }
    let shift = bits - DIGIT;
    let mut start = vec![0usize; BUCKETS + 1];
    for &(k, _) in v.iter() {
        start[digit(k, shift) + 1] += 1;
    }
    for b in 0..BUCKETS {
        start[b + 1] += start[b];
    }
    let mut out = vec![(0u64, 0u32); v.len()];
    let mut at = start.clone();
    for &(k, r) in v.iter() {
        let b = digit(k, shift);
        out[at[b]] = (k, r);
        at[b] += 1;
    }
    // The bucket boundary nearest the middle.
    let half = start.partition_point(|&s| s < v.len() / 2).min(BUCKETS);
    let (lo, hi) = out.split_at_mut(start[half]);
    let sort_buckets = |part: &mut [(u64, u32)], bounds: &[usize]| {
        let base = bounds[0];
        let mut scratch = Vec::new();
        for w in bounds.windows(2) {
            lsd(&mut part[w[0] - base..w[1] - base], shift, &mut scratch);
        }
    };
    std::thread::scope(|scope| {
        scope.spawn(|| sort_buckets(lo, &start[..=half]));
        sort_buckets(hi, &start[half..]);
    });
    *v = out;
}

/// Least significant digit first, over the low `bits` bits, with `scratch` as the other buffer.
fn lsd(v: &mut [(u64, u32)], bits: u32, scratch: &mut Vec<(u64, u32)>) {
    let passes = bits.div_ceil(DIGIT) as usize;
    if passes == 0 || v.len() < 2 {
        return;
    }
    let mut hist = vec![[0usize; BUCKETS]; passes];
    for &(k, _) in v.iter() {
        for (p, h) in hist.iter_mut().enumerate() {
            h[digit(k, p as u32 * DIGIT)] += 1;
        }
    }
    // The last digit may be narrower than the others.
    let top_mask = |p: usize| {
        let width = (bits - p as u32 * DIGIT).min(DIGIT);
        (1usize << width) - 1
    };
    scratch.clear();
    scratch.resize(v.len(), (0, 0));
    let mut in_scratch = false;
    for (p, h) in hist.iter_mut().enumerate() {
        let mask = top_mask(p);
        // Bits above `bits` are not part of the key.
        let mut masked = [0usize; BUCKETS];
        for (b, n) in h.iter().enumerate() {
            masked[b & mask] += n;
        }
        // A digit that is the same for every key moves nothing.
        if masked.contains(&v.len()) {
            continue;
        }
        let mut at = 0;
        for c in masked.iter_mut() {
            let n = *c;
            *c = at;
            at += n;
        }
        let shift = p as u32 * DIGIT;
        let (src, dst): (&[Entry], &mut [Entry]) = if in_scratch {
            (&scratch[..], &mut v[..])
        } else {
            (&v[..], &mut scratch[..])
        };
        for &(k, r) in src {
            let b = digit(k, shift) & mask;
            dst[masked[b]] = (k, r);
            masked[b] += 1;
        }
        in_scratch = !in_scratch;
    }
    if in_scratch {
        v.copy_from_slice(scratch);
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

    #[test]
    fn bits_above_the_key_are_ignored_and_spread_keys_sort_the_same() {
        // Keys of 40 bits with noise above; 200k rows, so the two-thread path runs.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut v: Vec<(u64, u32)> = (0..200_000u32)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Repeated keys check stability.
                let key = (x >> 24) & ((1 << 40) - 1);
                ((x << 40) | if i % 5 == 0 { 12345 } else { key }, i)
            })
            .collect();
        let mut want = v.clone();
        want.sort_by_key(|&(k, i)| (k & ((1 << 40) - 1), i));
        let mut lsd = v.clone();
        radix_sort(&mut lsd, 40);
        assert_eq!(lsd, want);
        radix_sort_spread(&mut v, 40);
        assert_eq!(v, want);
    }
}
