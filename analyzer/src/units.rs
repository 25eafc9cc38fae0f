//! Human-readable numbers: durations in ns/µs/ms/s, byte sizes, wall-clock times.

/// A duration in nanoseconds with a unit that keeps 3 significant digits (`412ns`, `23.1ms`).
pub fn ns(v: f64) -> String {
    let a = v.abs();
    let (x, unit) = if a < 1e3 {
        (v, "ns")
    } else if a < 1e6 {
        (v / 1e3, "µs")
    } else if a < 1e9 {
        (v / 1e6, "ms")
    } else {
        (v / 1e9, "s")
    };
    let digits = if x.abs() >= 100.0 || unit == "ns" {
        0
    } else if x.abs() >= 10.0 {
        1
    } else {
        2
    };
    format!("{x:.digits$}{unit}")
}

/// A byte count (`2.2 MiB`).
pub fn bytes(v: u64) -> String {
    bytesize::ByteSize::b(v).to_string()
}

/// Wall-clock time of a monotonic timestamp, RFC 3339 in UTC, to the millisecond.
pub fn wall(mono_ns: u64, mono_to_wall_ns: i64) -> String {
    let wall = mono_ns as i128 + mono_to_wall_ns as i128;
    if wall <= 0 || wall > u64::MAX as i128 {
        return format!("mono {}", ns(mono_ns as f64));
    }
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(wall as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// A flight recorder's trigger as `'REASON' at WALL-TIME (value V)` (the value for a condition).
pub fn trigger(t: &tcptape_common::metadata::Trigger, mono_to_wall_ns: i64) -> String {
    format!(
        "'{}' at {}{}",
        t.reason,
        wall(t.at_ns, mono_to_wall_ns),
        t.value
            .map_or(String::new(), |v| format!(" (value {v:.0})"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_keep_three_digits() {
        assert_eq!(ns(412.0), "412ns");
        assert_eq!(ns(1_234.0), "1.23µs");
        assert_eq!(ns(23_100_000.0), "23.1ms");
        assert_eq!(ns(250_000_000.0), "250ms");
        assert_eq!(ns(2_500_000_000.0), "2.50s");
    }

    #[test]
    fn wall_clock_from_offset() {
        assert_eq!(
            wall(1_000_000_000, 1_700_000_000_000_000_000),
            "2023-11-14T22:13:21.000Z"
        );
        assert!(wall(5, -10).starts_with("mono"));
    }
}
