//! The Parquet key-value metadata contract: what a recording says about itself.
//!
//! Every top-level field of [`RecordingMeta`] is stored under the key `tcptape.<field>` with a
//! JSON value, so `SELECT * FROM parquet_kv_metadata('rec.parquet')` in DuckDB shows them one per
//! row. Readers ignore keys they do not know, so fields can be added without a schema bump.
//! Each segment of a recording carries the whole metadata; the counters (lost events, seen
//! events, end time) are cumulative up to that segment's finalization.

use crate::schema::SCHEMA_VERSION;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Prefix of every key tcptape writes.
pub const KEY_PREFIX: &str = "tcptape.";
/// The key of the schema version, checked before anything else.
pub const SCHEMA_VERSION_KEY: &str = "tcptape.schema_version";

/// Everything a recording says about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordingMeta {
    /// Version of the columns and of these keys.
    pub schema_version: u32,
    /// Version of the tool that wrote the file.
    pub tool_version: String,
    /// Random id shared by the segments of one recording.
    pub recording_id: String,
    /// `live` for a kernel capture, `synth` for a synthetic recording.
    pub source: String,
    /// Host name of the recording host.
    pub hostname: String,
    /// The recording host's boot id (`/proc/sys/kernel/random/boot_id`): recordings with the
    /// same one share a monotonic clock. Empty in recordings made before it was kept.
    #[serde(default)]
    pub boot_id: String,
    /// `uname -r` of the recording host.
    pub kernel_release: String,
    /// Add to a `ts_ns` value to get wall-clock nanoseconds since the Unix epoch.
    pub mono_to_wall_ns: i64,
    /// Monotonic time the recording started.
    pub start_ns: u64,
    /// Monotonic time the recording (or, in a segment, this segment) ended.
    pub end_ns: u64,
    /// How each stage was attached, with every attempt.
    pub attach_plan: Vec<StageAttach>,
    /// Filters applied in the kernel.
    pub filters: Filters,
    /// Flow sampling.
    pub sampling: Sampling,
    /// Ring-buffer size in bytes.
    pub ring_bytes: u64,
    /// Events lost, by where they were lost.
    pub lost: Lost,
    /// Events the kernel side saw per stage (before sampling), when known.
    pub seen: BTreeMap<String, u64>,
    /// What was anonymized.
    pub anonymization: Anonymization,
    /// The environment the recording was made in.
    pub environment: Environment,
    /// This segment's place in the recording.
    pub segment: SegmentInfo,
    /// Parameters of a synthetic recording (`source` = `synth`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synth: Option<serde_json::Value>,
    /// The cgroups the `cgroup` and `task_cgroup` columns name, resolved to paths while
    /// recording (cumulative: a segment names every cgroup seen up to its end).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cgroups: Vec<CgroupName>,
}

/// A cgroup v2 id with the path it had and the workload the path names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupName {
    /// The cgroup's id (its directory's inode number).
    pub id: u64,
    /// Its path below the cgroup v2 root (`/` for the root); `None` when it was gone before the
    /// recorder looked it up, or removed by `tcptape anonymize`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The container, pod or unit the path names, in a layout known to tcptape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<crate::cgroup_identity::CgroupIdentity>,
}

impl CgroupName {
    /// How a report names it: the container or unit when recognised, else the path, else the
    /// id.
    pub fn label(&self) -> String {
        match (&self.identity, &self.path) {
            (Some(i), _) => i.describe(),
            (None, Some(p)) => p.clone(),
            (None, None) => format!("cgroup {} (no path)", self.id),
        }
    }
}

/// The outcome of attaching one stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageAttach {
    /// Stage name.
    pub stage: String,
    /// The mechanism that won (`fentry`, `kprobe`, `tp_btf`, `tracepoint`), if any.
    pub chosen: Option<String>,
    /// Every mechanism tried, in order.
    pub attempts: Vec<AttachAttempt>,
}

/// One attach attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachAttempt {
    /// `fentry`, `kprobe`, `tp_btf` or `tracepoint`.
    pub mechanism: String,
    /// Kernel function or tracepoint.
    pub target: String,
    /// `None` on success, else the error.
    pub error: Option<String>,
}

/// Kernel-side filters of a recording.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filters {
    /// Ports, either side.
    pub ports: Vec<u16>,
    /// Address ranges (CIDR), either side.
    pub addrs: Vec<String>,
    /// Process ids.
    pub pids: Vec<u32>,
    /// Network namespace inodes.
    pub netns: Vec<u32>,
    /// Interface names.
    pub ifaces: Vec<String>,
    /// The stages kept (`--stage`), in stage order; empty for every stage. Absent from
    /// recordings made before the option existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<String>,
    /// Cgroups (`--cgroup`), paths below the cgroup v2 root. Absent from recordings made
    /// before the option existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cgroups: Vec<String>,
}

impl Filters {
    /// True when the recording kept `stage`'s events (every stage unless `--stage` chose some).
    pub fn keeps_stage(&self, stage: &str) -> bool {
        self.stages.is_empty() || self.stages.iter().any(|s| s == stage)
    }
}

/// Flow sampling: 1 in `one_in` flows is kept, coherently across stages. Under an event budget
/// (`--budget`) the rate changes while recording, and `steps` say which rate was in force when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sampling {
    /// The fixed sampling (`--sample`); 1 = every flow.
    pub one_in: u32,
    /// The event budget (events per second) the recorder held by sampling more, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<u64>,
    /// Under a budget, the rate in force from each step's time on (the first step is the
    /// recording's start). Each segment stores the steps of its own time span; a recording's
    /// metadata holds them all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<SamplingStep>,
}

/// From `from_ns` on, 1 flow in `one_in` was kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamplingStep {
    /// Monotonic time the rate took effect.
    pub from_ns: u64,
    /// 1 = every flow.
    pub one_in: u32,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            one_in: 1,
            budget: None,
            steps: Vec::new(),
        }
    }
}

impl Sampling {
    /// The rate in force at monotonic time `ts_ns` (1 = every flow).
    pub fn one_in_at(&self, ts_ns: u64) -> u32 {
        let i = self.steps.partition_point(|s| s.from_ns <= ts_ns);
        match i {
            0 => self.steps.first().map_or(self.one_in, |s| s.one_in),
            _ => self.steps[i - 1].one_in,
        }
        .max(1)
    }

    /// The sparsest rate ever in force (1 = every flow at all times).
    pub fn max_one_in(&self) -> u32 {
        self.steps
            .iter()
            .map(|s| s.one_in)
            .chain([self.one_in])
            .max()
            .unwrap_or(1)
            .max(1)
    }

    /// The densest rate ever in force.
    pub fn min_one_in(&self) -> u32 {
        match self.steps.iter().map(|s| s.one_in).min() {
            Some(m) => m.max(1),
            None => self.one_in.max(1),
        }
    }

    /// True when some flows were left out at some time.
    pub fn sampled(&self) -> bool {
        self.max_one_in() > 1
    }

    /// The steps of the time from `start_ns` on: the one in force at `start_ns` (moved to it)
    /// and those after.
    pub fn steps_from(&self, start_ns: u64) -> Vec<SamplingStep> {
        let i = self.steps.partition_point(|s| s.from_ns <= start_ns);
        let mut v = Vec::with_capacity(self.steps.len() + 1 - i.min(self.steps.len()));
        if i > 0 {
            v.push(SamplingStep {
                from_ns: start_ns,
                one_in: self.steps[i - 1].one_in,
            });
        }
        v.extend_from_slice(&self.steps[i..]);
        v
    }

    /// Joins the steps of consecutive segments (each holding its own span's) into one
    /// timeline, dropping steps that change nothing.
    pub fn join_steps<'a>(
        parts: impl IntoIterator<Item = &'a [SamplingStep]>,
    ) -> Vec<SamplingStep> {
        let mut all: Vec<SamplingStep> = parts.into_iter().flatten().copied().collect();
        all.sort_by_key(|s| s.from_ns);
        all.dedup_by(|b, a| a.one_in == b.one_in);
        all
    }

    /// The sampling of several recordings read as one (a host's recordings): at each time the
    /// sparsest rate any of them had in force, so a scaled count is never an underestimate for
    /// want of a recording's rate.
    pub fn merged<'a>(parts: impl IntoIterator<Item = &'a Sampling>) -> Sampling {
        let parts: Vec<&Sampling> = parts.into_iter().collect();
        if let [one] = parts.as_slice() {
            return (*one).clone();
        }
        let mut times: Vec<u64> = parts
            .iter()
            .flat_map(|p| p.steps.iter().map(|s| s.from_ns))
            .collect();
        times.sort_unstable();
        times.dedup();
        let steps = times
            .into_iter()
            .map(|t| SamplingStep {
                from_ns: t,
                one_in: parts.iter().map(|p| p.one_in_at(t)).max().unwrap_or(1),
            })
            .collect::<Vec<_>>();
        Sampling {
            one_in: parts.iter().map(|p| p.one_in.max(1)).max().unwrap_or(1),
            budget: parts.iter().filter_map(|p| p.budget).max(),
            steps: Sampling::join_steps([steps.as_slice()]),
        }
    }

    /// How the flows were sampled, in a few words: `every flow`, `1 in 10 flows`, or under a
    /// budget `1 in 1 to 1 in 8 flows over time (budget 20000 events/s)`.
    pub fn describe(&self) -> String {
        let (lo, hi) = (self.min_one_in(), self.max_one_in());
        let rate = match (lo, hi) {
            (1, 1) => "every flow".to_string(),
            (lo, hi) if lo == hi => format!("1 in {hi} flows"),
            (lo, hi) => format!("1 in {lo} to 1 in {hi} flows over time"),
        };
        match self.budget {
            Some(b) if hi > 1 => format!("{rate} (budget {b} events/s)"),
            Some(b) => format!("{rate} (budget {b} events/s, never reached)"),
            None => rate,
        }
    }
}

/// Events lost, cumulative.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lost {
    /// Events a CPU's ring buffer had no room for, per CPU.
    pub ring_per_cpu: Vec<u64>,
    /// Events dropped because the writer fell behind (its queue was full).
    pub writer_queue: u64,
    /// Program runs the kernel skipped, per stage, because the same program was already
    /// running on that CPU (an interrupt arrived while it ran): events never produced.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub missed_runs: BTreeMap<String, u64>,
}

impl Lost {
    /// All lost events.
    pub fn total(&self) -> u64 {
        self.ring_per_cpu.iter().sum::<u64>()
            + self.writer_queue
            + self.missed_runs.values().sum::<u64>()
    }
}

/// What was anonymized in a recording.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anonymization {
    /// Addresses replaced by prefix-preserving pseudonyms.
    pub addresses: bool,
    /// Ports mapped.
    pub ports: bool,
    /// `pid` and `comm` removed.
    pub tasks: bool,
}

/// The environment fingerprint: what must match for two recordings to be comparable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Environment {
    /// `uname -r`.
    pub kernel_release: String,
    /// `net.ipv4.tcp_congestion_control`.
    pub congestion_control: String,
    /// `net.ipv4.tcp_rmem`.
    pub tcp_rmem: String,
    /// `net.ipv4.tcp_wmem`.
    pub tcp_wmem: String,
    /// Offloads per interface.
    pub interfaces: Vec<InterfaceOffloads>,
}

/// Offload settings of one interface.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceOffloads {
    /// Interface name.
    pub name: String,
    /// Interface index.
    pub ifindex: u32,
    /// Generic receive offload.
    pub gro: Option<bool>,
    /// TCP segmentation offload.
    pub tso: Option<bool>,
    /// Generic segmentation offload.
    pub gso: Option<bool>,
}

/// A segment's place in its recording.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentInfo {
    /// 0-based index.
    pub index: u32,
    /// True only in the last segment of a recording that ended cleanly.
    pub last: bool,
    /// Why the recording stopped (in the last segment): `duration`, `signal`, `max-size`, ...
    pub stop_reason: Option<String>,
    /// Monotonic time this segment's data starts at (the previous segment's end; the
    /// recording's start for the first), when the recorder stored it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ns: Option<u64>,
    /// The rolling window in force (`--keep`, e.g. `10m` or `2 GiB`): older segments are
    /// deleted so that the recording on disk stays within it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep: Option<String>,
    /// Segments deleted by that window before this one was finished.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rolled_out: u32,
    /// In the last segment of a window saved by a trigger: what fired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
}

/// A trigger that saved a flight recorder's window (`tcptape-record --keep … --trigger …`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    /// Monotonic time it fired, ns.
    pub at_ns: u64,
    /// Why: `SIGUSR1`, the text given to `tcptape-record trigger --reason`, or the condition.
    pub reason: String,
    /// The condition that fired, as given (`retrans>200/s`), for a condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// The condition's value when it fired (per second, or ns for a latency).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// How long recording went on after it, ns.
    pub after_ns: u64,
}

impl Eq for Trigger {}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Why key-value metadata is not a valid tcptape description.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetaError {
    /// No tcptape keys at all.
    #[error("no tcptape metadata (not a tcptape recording)")]
    Foreign,
    /// A newer schema than this build reads.
    #[error(
        "schema version {0} is newer than this tcptape reads ({SCHEMA_VERSION}); upgrade tcptape"
    )]
    Newer(u32),
    /// A value that does not parse.
    #[error("metadata key '{key}' is invalid: {reason}")]
    Invalid {
        /// The key.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

impl RecordingMeta {
    /// The metadata as `(key, value)` pairs: one `tcptape.<field>` key per field, JSON values.
    pub fn to_key_values(&self) -> Vec<(String, String)> {
        let value = serde_json::to_value(self).expect("metadata serializes");
        let serde_json::Value::Object(map) = value else {
            unreachable!("a struct is an object")
        };
        map.into_iter()
            .map(|(k, v)| (format!("{KEY_PREFIX}{k}"), v.to_string()))
            .collect()
    }

    /// Parses metadata from key-value pairs, checking the schema version first. Keys without
    /// the `tcptape.` prefix and unknown fields are ignored.
    pub fn from_key_values<'a>(
        kvs: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Result<RecordingMeta, MetaError> {
        let mut map = serde_json::Map::new();
        for (k, v) in kvs {
            let Some(field) = k.strip_prefix(KEY_PREFIX) else {
                continue;
            };
            let v = v.unwrap_or("null");
            let parsed: serde_json::Value =
                serde_json::from_str(v).map_err(|e| MetaError::Invalid {
                    key: k.to_string(),
                    reason: format!("not JSON ({e})"),
                })?;
            map.insert(field.to_string(), parsed);
        }
        let version = match map.get("schema_version") {
            None if map.is_empty() => return Err(MetaError::Foreign),
            None => {
                return Err(MetaError::Invalid {
                    key: SCHEMA_VERSION_KEY.into(),
                    reason: "missing".into(),
                })
            }
            Some(v) => v
                .as_u64()
                .filter(|&v| v >= 1 && v <= u32::MAX as u64)
                .ok_or_else(|| MetaError::Invalid {
                    key: SCHEMA_VERSION_KEY.into(),
                    reason: format!("{v} is not a version number"),
                })? as u32,
        };
        if version > SCHEMA_VERSION {
            return Err(MetaError::Newer(version));
        }
        serde_json::from_value(serde_json::Value::Object(map)).map_err(|e| MetaError::Invalid {
            key: format!("{KEY_PREFIX}*"),
            reason: e.to_string(),
        })
    }

    /// A minimal description for a recording made on this host now; callers fill in the rest.
    pub fn new(source: &str) -> RecordingMeta {
        let kernel_release = host::kernel_release();
        RecordingMeta {
            schema_version: SCHEMA_VERSION,
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            recording_id: format!("{:032x}", rand::random::<u128>()),
            source: source.to_string(),
            hostname: host::hostname(),
            boot_id: host::boot_id(),
            kernel_release: kernel_release.clone(),
            mono_to_wall_ns: host::mono_to_wall_ns(),
            start_ns: 0,
            end_ns: 0,
            attach_plan: Vec::new(),
            filters: Filters::default(),
            sampling: Sampling::default(),
            ring_bytes: 0,
            lost: Lost::default(),
            seen: BTreeMap::new(),
            anonymization: Anonymization::default(),
            environment: Environment {
                kernel_release,
                ..Environment::default()
            },
            segment: SegmentInfo::default(),
            synth: None,
            cgroups: Vec::new(),
        }
    }
}

/// Facts about the host, read without privileges.
pub mod host {
    /// `uname -r`, or `unknown`.
    pub fn kernel_release() -> String {
        read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_else(|| "unknown".into())
    }

    /// The host name, or `unknown`.
    pub fn hostname() -> String {
        read_trimmed("/proc/sys/kernel/hostname").unwrap_or_else(|| "unknown".into())
    }

    /// The boot id, or empty.
    pub fn boot_id() -> String {
        read_trimmed("/proc/sys/kernel/random/boot_id").unwrap_or_default()
    }

    /// Wall-clock minus monotonic time, in ns (0 where there is no monotonic clock to read).
    pub fn mono_to_wall_ns() -> i64 {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0);
        match monotonic_ns() {
            Some(m) => wall - m as i64,
            None => 0,
        }
    }

    /// CLOCK_MONOTONIC now, in ns: the clock `bpf_ktime_get_ns` reads (`None` off Unix).
    pub fn monotonic_ns() -> Option<u64> {
        #[cfg(unix)]
        {
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: `ts` is a valid, writable timespec.
            let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
            (rc == 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
        }
        #[cfg(not(unix))]
        {
            None
        }
    }

    /// Where the cgroup v2 hierarchy is mounted on this host (`/sys/fs/cgroup`, or
    /// `/sys/fs/cgroup/unified` on a hybrid one).
    pub fn cgroup2_mount() -> Option<std::path::PathBuf> {
        cgroup2_mount_in(&std::fs::read_to_string("/proc/self/mountinfo").ok()?)
    }

    /// [`cgroup2_mount`] from a `/proc/self/mountinfo` text.
    pub fn cgroup2_mount_in(mountinfo: &str) -> Option<std::path::PathBuf> {
        mountinfo.lines().find_map(|l| {
            // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS... - FSTYPE SOURCE SUPER
            let (left, right) = l.split_once(" - ")?;
            (right.split_whitespace().next()? == "cgroup2")
                .then(|| left.split_whitespace().nth(4).map(std::path::PathBuf::from))
                .flatten()
        })
    }

    /// A sysctl value by its `/proc/sys` path relative part (`net/ipv4/tcp_rmem`).
    pub fn sysctl(name: &str) -> Option<String> {
        read_trimmed(&format!("/proc/sys/{name}"))
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
    }

    fn read_trimmed(path: &str) -> Option<String> {
        std::fs::read_to_string(path)
            .ok()
            .map(|s| s.trim().to_string())
    }
}

#[cfg(test)]
mod sampling_tests {
    use super::*;

    fn step(from_ns: u64, one_in: u32) -> SamplingStep {
        SamplingStep { from_ns, one_in }
    }

    fn budget(steps: Vec<SamplingStep>) -> Sampling {
        Sampling {
            one_in: 1,
            budget: Some(1000),
            steps,
        }
    }

    #[test]
    fn the_rate_at_a_time_is_the_last_step_at_or_before_it() {
        let s = budget(vec![step(100, 1), step(200, 8), step(300, 4)]);
        assert_eq!(s.one_in_at(50), 1);
        assert_eq!(s.one_in_at(100), 1);
        assert_eq!(s.one_in_at(199), 1);
        assert_eq!(s.one_in_at(200), 8);
        assert_eq!(s.one_in_at(299), 8);
        assert_eq!(s.one_in_at(10_000), 4);
        assert_eq!((s.min_one_in(), s.max_one_in()), (1, 8));
        assert!(s.sampled());
        // Without steps: the fixed rate.
        let fixed = Sampling {
            one_in: 10,
            ..Default::default()
        };
        assert_eq!(fixed.one_in_at(5), 10);
        assert_eq!(fixed.describe(), "1 in 10 flows");
        assert!(!Sampling::default().sampled());
    }

    #[test]
    fn segments_split_and_join_the_timeline_unchanged() {
        let s = budget(vec![step(100, 1), step(200, 8), step(300, 4), step(400, 2)]);
        // Three segments: [100, 250), [250, 350), [350, …), each finished knowing the steps
        // so far.
        let upto = |v: Vec<SamplingStep>, end: u64| -> Vec<SamplingStep> {
            v.into_iter().filter(|x| x.from_ns < end).collect()
        };
        let parts = [
            upto(s.steps_from(100), 250),
            upto(s.steps_from(250), 350),
            s.steps_from(350),
        ];
        assert_eq!(parts[1], [step(250, 8), step(300, 4)]);
        assert_eq!(parts[2], [step(350, 4), step(400, 2)]);
        let joined = Sampling::join_steps(parts.iter().map(|p| p.as_slice()));
        let j = budget(joined);
        for t in [100, 150, 200, 249, 250, 299, 300, 349, 350, 399, 400, 999] {
            assert_eq!(j.one_in_at(t), s.one_in_at(t), "at {t}");
        }
        // A rolled-out first segment: the timeline starts where the kept ones do.
        let tail = budget(Sampling::join_steps(
            parts[1..].iter().map(|p| p.as_slice()),
        ));
        assert_eq!(tail.steps.first(), Some(&step(250, 8)));
    }

    #[test]
    fn merged_recordings_take_the_sparsest_rate_at_each_time() {
        let a = budget(vec![step(0, 1), step(100, 8)]);
        let b = budget(vec![step(0, 2), step(50, 1), step(150, 16)]);
        let m = Sampling::merged([&a, &b]);
        let at: Vec<u32> = [0, 50, 100, 150].iter().map(|&t| m.one_in_at(t)).collect();
        assert_eq!(at, [2, 1, 8, 16]);
        assert_eq!(Sampling::merged([&a]), a);
        assert_eq!(
            m.describe(),
            "1 in 1 to 1 in 16 flows over time (budget 1000 events/s)"
        );
        assert_eq!(
            budget(vec![step(0, 1)]).describe(),
            "every flow (budget 1000 events/s, never reached)"
        );
    }
}
