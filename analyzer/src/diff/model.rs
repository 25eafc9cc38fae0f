//! What `diff` finds, also its JSON shape (`schema` 1). Fields are only ever added.

use super::stats::{MannWhitney, Welch};
use crate::report::model::StageLatency;
use serde::Serialize;

/// The JSON schema version of a diff.
pub const DIFF_SCHEMA: u32 = 1;

/// One recording of the comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    /// Path given (the first, with several runs).
    pub path: String,
    /// Every recording of this side: one per run.
    pub paths: Vec<String>,
    /// Host it was recorded on.
    pub host: String,
    /// `live` or `synth`.
    pub source: String,
    /// Events read.
    pub events: u64,
    /// Time covered, ns.
    pub duration_ns: u64,
    /// Events the recorder lost.
    pub lost_events: u64,
    /// Packet journeys built.
    pub journeys: u64,
}

/// One way the two recordings' environments differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvDifference {
    /// What differs (`kernel`, `congestion control`, `offload veth0 gro`, `attach rx_tcp_est`...).
    pub what: String,
    /// Base value.
    pub base: String,
    /// Candidate value.
    pub cand: String,
}

/// Change of one figure, candidate minus base.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Change {
    /// Base value.
    pub base: f64,
    /// Candidate value.
    pub cand: f64,
    /// `cand − base`.
    pub abs: f64,
    /// `(cand − base) / base`, `None` when the base is 0.
    pub rel: Option<f64>,
}

impl Change {
    /// The change from `base` to `cand`.
    pub fn of(base: f64, cand: f64) -> Change {
        Change {
            base,
            cand,
            abs: cand - base,
            rel: (base != 0.0).then(|| (cand - base) / base),
        }
    }
}

/// The statistical verdict on one pair of stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// A real shift towards longer delays, at least the minimum effect.
    Slower,
    /// A real shift towards shorter delays, at least the minimum effect.
    Faster,
    /// No shift beyond noise, or one smaller than the minimum effect.
    NoChange,
    /// Too few packets for any test to decide, and the medians do not suggest a regression
    /// (or the pair is too rare on its side to matter).
    TooFewPackets,
    /// No test can decide, and the pair matters: its median rose by the failing amount, or it
    /// was recorded on one side only with enough packets. Never a pass.
    Undecided,
    /// The pair was recorded on one side only, too rarely to matter.
    OneSideOnly,
}

impl Verdict {
    /// How the verdict reads in a table.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Slower => "SLOWER",
            Verdict::Faster => "faster",
            Verdict::NoChange => "no change",
            Verdict::TooFewPackets => "too few packets",
            Verdict::Undecided => "UNDECIDED",
            Verdict::OneSideOnly => "one side only",
        }
    }
}

/// One pair of stages compared.
#[derive(Debug, Clone, Serialize)]
pub struct StageDiff {
    /// Earlier stage.
    pub from: String,
    /// Later stage.
    pub to: String,
    /// The base recording's figures, as `tcptape report` computes them.
    pub base: Option<StageLatency>,
    /// The candidate's figures.
    pub cand: Option<StageLatency>,
    /// Changes of count, mean and each percentile (when both sides have the pair).
    pub changes: Option<Changes>,
    /// The 99% (see `confidence`) intervals of the medians, base and candidate, ns.
    pub p50_ci_ns: Option<[(i64, i64); 2]>,
    /// Mann–Whitney U test of the medians of the two sides' time blocks (`method` `time
    /// blocks`) or of their packets (`packets`).
    pub test: Option<MannWhitney>,
    /// Which test decided: `time blocks` (medians of time blocks, from 100 packets a side),
    /// `packets` (a permutation test on the packets, below that), `runs` (a t test on the
    /// runs' medians, with two or more runs a side); `None` when none could.
    pub method: Option<&'static str>,
    /// With runs: each run's median, ns, base then candidate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runs_p50_ns: Option<[Vec<i64>; 2]>,
    /// With runs: the test on them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runs_test: Option<Welch>,
    /// Time blocks compared by the test, base and candidate.
    pub test_blocks: Option<[usize; 2]>,
    /// The verdict.
    pub verdict: Verdict,
}

impl StageDiff {
    /// `from→to`.
    pub fn name(&self) -> String {
        format!("{}→{}", self.from, self.to)
    }
}

/// Changes of a [`StageLatency`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Changes {
    /// Packets.
    pub count: Change,
    /// Mean, ns.
    pub mean_ns: Change,
    /// Median, ns.
    pub p50_ns: Change,
    /// 90th percentile, ns.
    pub p90_ns: Change,
    /// 99th percentile, ns.
    pub p99_ns: Change,
    /// 99.9th percentile, ns.
    pub p999_ns: Change,
    /// Largest, ns.
    pub max_ns: Change,
}

/// Retransmissions of each side, and their rate per transmitted packet.
#[derive(Debug, Clone, Serialize)]
pub struct RetransmitDiff {
    /// Retransmissions sent (attempts that left the host), base and candidate.
    pub packets: [u64; 2],
    /// Retransmitted segments, base and candidate.
    pub segments: [u64; 2],
    /// Packets transmitted (journeys starting on the TX path), base and candidate.
    pub packets_sent: [u64; 2],
    /// Retransmissions sent per packet transmitted.
    pub rate: Change,
}

/// Lost events of each side.
#[derive(Debug, Clone, Serialize)]
pub struct LostDiff {
    /// Lost events.
    pub events: Change,
    /// Lost events per event recorded.
    pub rate: Change,
}

/// One `--fail-on` threshold evaluated on one row.
#[derive(Debug, Clone, Serialize)]
pub struct ThresholdCheck {
    /// The expression as given.
    pub expr: String,
    /// The row it was checked on (`from→to`, `end to end from→to`, `retransmits`, `lost`).
    pub row: String,
    /// The figure, base and candidate.
    pub change: Option<Change>,
    /// Unit of the figure: `ns`, `fraction` (a rate) or `count`.
    pub unit: &'static str,
    /// True when the threshold is crossed beyond noise: a regression.
    pub failed: bool,
    /// Why it did not fire although crossed, or why it could not be checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Crossed, but too few packets to tell a real crossing from noise: never a pass.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub undecided: bool,
}

/// The settings the verdicts were made with.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// Significance level of the whole family of tests (Bonferroni-corrected per test).
    pub alpha: f64,
    /// Smallest relative shift of the median called a change.
    pub min_effect: f64,
    /// Smallest absolute shift of the median called a change, ns.
    pub min_shift_ns: u64,
    /// Without thresholds: smallest relative rise of a SLOWER stage's median that fails.
    pub fail_effect: f64,
    /// Without thresholds: smallest absolute rise of a SLOWER stage's median that fails, ns.
    pub fail_shift_ns: u64,
    /// Confidence level of the quantile intervals used by thresholds.
    pub confidence: f64,
    /// Undecided rows do not change the exit code (`--allow-undecided`).
    pub allow_undecided: bool,
}

/// Everything `tcptape diff` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    /// [`DIFF_SCHEMA`].
    pub schema: u32,
    /// The base recording.
    pub base: Side,
    /// The candidate.
    pub cand: Side,
    /// Differences of environment fingerprint and attach plan (empty: comparable).
    pub environment: Vec<EnvDifference>,
    /// Settings of the verdicts.
    pub settings: Settings,
    /// Every pair of adjacent stages, in packet order.
    pub stages: Vec<StageDiff>,
    /// Whole journeys, first stage to last.
    pub end_to_end: Vec<StageDiff>,
    /// Pairs recorded only in the base.
    pub only_in_base: Vec<String>,
    /// Pairs recorded only in the candidate.
    pub only_in_cand: Vec<String>,
    /// Retransmissions.
    pub retransmits: RetransmitDiff,
    /// Lost events.
    pub lost: LostDiff,
    /// `--fail-on` thresholds, one entry per row each was checked on.
    pub thresholds: Vec<ThresholdCheck>,
    /// What made this a regression (empty: none).
    pub regressions: Vec<String>,
    /// True when a regression was found (exit code 1).
    pub regression: bool,
    /// Rows no test could decide that matter, and why (exit code 3 unless
    /// `--allow-undecided`, when no regression was found).
    pub undecided: Vec<String>,
}
