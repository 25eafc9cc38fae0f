//! `--speed X`: releasing events at X times the pace they were recorded at.

use std::time::{Duration, Instant};

/// Sleeps before each event so that the time between two events is their recorded time
/// divided by the speed (no sleeping without a speed).
pub struct Pace {
    speed: Option<f64>,
    origin: Option<(u64, Instant)>,
}

impl Pace {
    /// Pacing at `speed` (1 = the recorded pace), or none.
    pub fn new(speed: Option<f64>) -> Pace {
        Pace {
            speed,
            origin: None,
        }
    }

    /// True when events are paced (the output is then flushed after each one).
    pub fn active(&self) -> bool {
        self.speed.is_some()
    }

    /// Waits until the event recorded at `ts_ns` is due.
    pub fn wait(&mut self, ts_ns: u64) {
        let Some(speed) = self.speed else {
            return;
        };
        let (t0, wall0) = *self.origin.get_or_insert((ts_ns, Instant::now()));
        let due = wall0 + Duration::from_secs_f64(ts_ns.saturating_sub(t0) as f64 / 1e9 / speed);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
    }
}

/// Parses a speed: a positive, finite factor.
pub fn parse_speed(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!(
            "'{s}' is not a positive speed factor (1 = recorded pace)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_come_out_at_the_recorded_pace_divided_by_the_speed() {
        let mut p = Pace::new(Some(2.0));
        let start = Instant::now();
        for ts in [1_000_000_000u64, 1_050_000_000, 1_100_000_000] {
            p.wait(ts);
        }
        // 100 ms of recording at 2×: 50 ms.
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(50), "{took:?}");
        assert!(took < Duration::from_millis(500), "{took:?}");
        assert!(parse_speed("0").is_err() && parse_speed("-1").is_err());
        assert!(parse_speed("inf").is_err());
        assert_eq!(parse_speed("0.5"), Ok(0.5));
    }
}
