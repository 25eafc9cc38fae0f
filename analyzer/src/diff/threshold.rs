//! `--fail-on` expressions: `[SCOPE:]METRIC OP VALUE`.
//!
//! - SCOPE: `FROM->TO` (one pair of stages, `→` also accepted), `STAGE` (every pair ending at
//!   that stage), `e2e` (whole journeys); none: every pair and every whole-journey row.
//! - METRIC: `p50`, `p90`, `p99`, `p999` (or `p99.9`), `max`, `mean`, `count`; or, without a
//!   scope, `retransmit_rate` (retransmissions sent per packet sent) and `lost` (lost events).
//! - OP: `>` (fail when above) or `<` (fail when below).
//! - VALUE: a signed change, relative (`+10%`, `-5%`) or absolute (`+2ms`, `-500us`, `+100`);
//!   or an unsigned level of the candidate (`5ms`, `0`, `1%` for a rate).

use std::fmt;
use tcptape_common::Stage;

/// Which rows a threshold applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every pair of stages and every whole-journey row.
    All,
    /// One pair of stages.
    Pair(Stage, Stage),
    /// Every pair ending at this stage.
    EndingAt(Stage),
    /// Whole journeys.
    EndToEnd,
}

/// What a threshold measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// A percentile (0.5, 0.9, 0.99, 0.999).
    Percentile(u16),
    /// The largest delay.
    Max,
    /// The mean delay.
    Mean,
    /// Packets measured.
    Count,
    /// Retransmissions sent per packet sent.
    RetransmitRate,
    /// Lost events.
    Lost,
}

impl Metric {
    /// True for the figures of one row of delays (as opposed to the recording-wide ones).
    pub fn is_latency(self) -> bool {
        !matches!(self, Metric::RetransmitRate | Metric::Lost)
    }
    /// True when the values are durations in ns.
    pub fn is_duration(self) -> bool {
        matches!(self, Metric::Percentile(_) | Metric::Max | Metric::Mean)
    }
}

/// The limit of a threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    /// Relative change (`+10%` = 0.10).
    Relative(f64),
    /// Absolute change, in the metric's unit (ns for durations, a fraction for rates).
    Absolute(f64),
    /// The candidate's value itself.
    Level(f64),
}

/// One parsed `--fail-on` expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// As given.
    pub text: String,
    /// Which rows.
    pub scope: Scope,
    /// Which figure.
    pub metric: Metric,
    /// True for `>`: fail when the value rises beyond the limit; false for `<`.
    pub above: bool,
    /// The limit.
    pub limit: Limit,
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn parse_stage(s: &str) -> Result<Stage, String> {
    s.trim()
        .parse::<Stage>()
        .map_err(|_| format!("'{}' is not a stage name", s.trim()))
}

fn parse_metric(s: &str) -> Result<Metric, String> {
    Ok(match s.trim() {
        "p50" | "median" => Metric::Percentile(500),
        "p90" => Metric::Percentile(900),
        "p99" => Metric::Percentile(990),
        "p999" | "p99.9" => Metric::Percentile(999),
        "max" => Metric::Max,
        "mean" => Metric::Mean,
        "count" => Metric::Count,
        "retransmit_rate" | "retransmits" => Metric::RetransmitRate,
        "lost" => Metric::Lost,
        m => {
            return Err(format!(
                "unknown metric '{m}' (known: p50 p90 p99 p999 max mean count retransmit_rate lost)"
            ))
        }
    })
}

/// A duration with a unit (`2ms`, `500us`, `1.5µs`, `10ns`, `1s`) in ns.
fn parse_duration_ns(s: &str) -> Option<f64> {
    let units = [
        ("ns", 1.0),
        ("us", 1e3),
        ("µs", 1e3),
        ("ms", 1e6),
        ("s", 1e9),
    ];
    for (u, mult) in units {
        if let Some(num) = s.strip_suffix(u) {
            if let Ok(v) = num.parse::<f64>() {
                return Some(v * mult);
            }
        }
    }
    None
}

fn parse_limit(s: &str, metric: Metric) -> Result<Limit, String> {
    let s = s.trim();
    let (sign, body) = match s.as_bytes().first() {
        Some(b'+') => (Some(1.0), &s[1..]),
        Some(b'-') => (Some(-1.0), &s[1..]),
        _ => (None, s),
    };
    let bad = || format!("'{s}' is not a limit (examples: +10%, -5%, +2ms, 5ms, 0)");
    if let Some(pct) = body.strip_suffix('%') {
        let v: f64 = pct.parse().map_err(|_| bad())?;
        return Ok(match sign {
            // A signed percentage of a rate is a relative change; unsigned, a level.
            Some(sg) => Limit::Relative(sg * v / 100.0),
            None if metric == Metric::RetransmitRate => Limit::Level(v / 100.0),
            None => {
                return Err(format!(
                    "'{s}': a relative limit needs a sign (+{s} or -{s})"
                ))
            }
        });
    }
    let v = if metric.is_duration() {
        match parse_duration_ns(body) {
            Some(v) => v,
            None if body == "0" => 0.0,
            None => return Err(format!("'{s}': a duration needs a unit (ns, us, ms, s)")),
        }
    } else {
        body.parse::<f64>().map_err(|_| bad())?
    };
    if !v.is_finite() || v < 0.0 {
        return Err(bad());
    }
    Ok(match sign {
        Some(sg) => Limit::Absolute(sg * v),
        None => Limit::Level(v),
    })
}

impl std::str::FromStr for Threshold {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let s = text.trim();
        // The operator comes after the scope (whose `->` holds a '>').
        let metric_at = s.rfind(':').map_or(0, |i| i + 1);
        let op = s[metric_at..]
            .find(['>', '<'])
            .map(|i| i + metric_at)
            .ok_or_else(|| format!("--fail-on '{s}': no '>' or '<' (example: 'p99>+10%')"))?;
        let (lhs, rhs) = (&s[..op], &s[op + 1..]);
        let above = s.as_bytes()[op] == b'>';
        let (scope, metric) = match lhs.rsplit_once(':') {
            None => (Scope::All, parse_metric(lhs)?),
            Some((scope, m)) => {
                let scope = scope.trim();
                let scope = if scope == "e2e" || scope == "end_to_end" {
                    Scope::EndToEnd
                } else if let Some((a, b)) =
                    scope.split_once("->").or_else(|| scope.split_once('→'))
                {
                    Scope::Pair(parse_stage(a)?, parse_stage(b)?)
                } else {
                    Scope::EndingAt(parse_stage(scope)?)
                };
                (scope, parse_metric(m)?)
            }
        };
        if !metric.is_latency() && scope != Scope::All {
            return Err(format!(
                "--fail-on '{s}': {} is a figure of the whole recording, without a stage",
                lhs.rsplit(':').next().unwrap_or(lhs).trim()
            ));
        }
        let limit = parse_limit(rhs, metric).map_err(|e| format!("--fail-on '{s}': {e}"))?;
        Ok(Threshold {
            text: s.to_string(),
            scope,
            metric,
            above,
            limit,
        })
    }
}

impl Threshold {
    /// True when this threshold's scope covers the row `from → to` (`e2e`: a whole-journey row).
    pub fn covers(&self, from: Stage, to: Stage, e2e: bool) -> bool {
        match &self.scope {
            Scope::All => true,
            Scope::Pair(a, b) => !e2e && *a == from && *b == to,
            Scope::EndingAt(b) => !e2e && *b == to,
            Scope::EndToEnd => e2e,
        }
    }

    /// True when the change from `base` to `cand` crosses the limit (before any noise check).
    pub fn crossed(&self, base: f64, cand: f64) -> bool {
        let value = match self.limit {
            Limit::Level(_) => cand,
            Limit::Absolute(_) => cand - base,
            Limit::Relative(_) if base == 0.0 => {
                // Any rise from zero is an infinite relative rise.
                return if self.above { cand > 0.0 } else { false };
            }
            Limit::Relative(_) => (cand - base) / base,
        };
        let limit = match self.limit {
            Limit::Level(v) | Limit::Absolute(v) | Limit::Relative(v) => v,
        };
        if self.above {
            value > limit
        } else {
            value < limit
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Threshold {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn the_documented_forms_parse() {
        let a = t("p99>+10%");
        assert_eq!(a.scope, Scope::All);
        assert_eq!(a.metric, Metric::Percentile(990));
        assert_eq!(a.limit, Limit::Relative(0.10));
        assert!(a.above);
        let b = t("rx_tcp_est->rx_app:p50>+2ms");
        assert_eq!(b.scope, Scope::Pair(Stage::RxTcpEst, Stage::RxApp));
        assert_eq!(b.limit, Limit::Absolute(2e6));
        assert_eq!(t("rx_tcp_est→rx_app:p50>+2ms").scope, b.scope);
        assert_eq!(t("rx_app:p999>5ms").limit, Limit::Level(5e6));
        assert_eq!(t("rx_app:max>500us").scope, Scope::EndingAt(Stage::RxApp));
        assert_eq!(t("e2e:mean>+1.5µs").limit, Limit::Absolute(1500.0));
        assert_eq!(t("count<-20%").limit, Limit::Relative(-0.20));
        assert!(!t("count<-20%").above);
        assert_eq!(t("retransmit_rate>+50%").limit, Limit::Relative(0.5));
        assert_eq!(t("retransmit_rate>1%").limit, Limit::Level(0.01));
        assert_eq!(t("lost>0").limit, Limit::Level(0.0));
        assert_eq!(t("lost>+100").limit, Limit::Absolute(100.0));
    }

    #[test]
    fn bad_expressions_say_what_is_wrong() {
        for (s, want) in [
            ("p99", "no '>' or '<'"),
            ("p98>+1%", "unknown metric"),
            ("rx_nope:p50>+1%", "not a stage"),
            ("p50>10%", "needs a sign"),
            ("p50>+2", "needs a unit"),
            ("p50>+x%", "not a limit"),
            ("rx_app:lost>0", "whole recording"),
        ] {
            let e = s.parse::<Threshold>().unwrap_err();
            assert!(e.contains(want), "{s}: {e}");
        }
    }

    #[test]
    fn crossing_follows_the_operator_and_the_kind_of_limit() {
        let up = t("p99>+10%");
        assert!(up.crossed(100.0, 111.0));
        assert!(!up.crossed(100.0, 110.0));
        assert!(!up.crossed(100.0, 50.0));
        let down = t("count<-20%");
        assert!(down.crossed(100.0, 79.0));
        assert!(!down.crossed(100.0, 81.0));
        assert!(t("p50>+2ms").crossed(1e6, 3.1e6));
        assert!(!t("p50>+2ms").crossed(1e6, 2.9e6));
        assert!(t("p50>5ms").crossed(9e6, 5.1e6));
        assert!(t("lost>0").crossed(0.0, 1.0));
        assert!(t("p99>+10%").crossed(0.0, 1.0));
        let rx = t("rx_tcp_est->rx_app:p50>+2ms");
        assert!(rx.covers(Stage::RxTcpEst, Stage::RxApp, false));
        assert!(!rx.covers(Stage::RxTcpEst, Stage::RxApp, true));
        assert!(!rx.covers(Stage::RxTcp, Stage::RxTcpEst, false));
    }
}
