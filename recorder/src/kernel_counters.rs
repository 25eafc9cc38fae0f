//! The kernel's counters of a live recording: events seen and lost per CPU, and the runs of
//! each program the kernel skipped, summed into what the metadata stores.

use crate::loader::CaptureMaps;
use crate::program_stats::recursion_misses;
use crate::segment_writer::Progress;
use aya::maps::MapData;
use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};
use tcptape_common::metadata::{host, Lost};
use tcptape_common::Stage;

/// True when the maps the recording goes on reading (counters, staged events) can be read.
pub(crate) fn counters_readable(maps: &CaptureMaps) -> bool {
    maps.seen.get(&0, 0).is_ok() && maps.lost.get(&0, 0).is_ok() && maps.batches.get(&0, 0).is_ok()
}

/// True when every attached program's statistics can be read (false as well on kernels that do
/// not report them).
pub(crate) fn program_stats_readable(programs: &[(Stage, Vec<OwnedFd>)]) -> bool {
    programs
        .iter()
        .flat_map(|(_, fds)| fds)
        .all(|fd| recursion_misses(fd.as_fd()).is_some())
}

/// Events the kernel saw of `stage` so far, all CPUs (0 when the map cannot be read).
pub(crate) fn seen_of(seen: &aya::maps::PerCpuArray<MapData, u64>, stage: Stage) -> u64 {
    seen.get(&u32::from(stage.code()), 0)
        .map(|v| v.iter().sum())
        .unwrap_or(0)
}

/// The per-CPU counter maps.
pub(crate) struct CountersMaps {
    pub(crate) seen: aya::maps::PerCpuArray<MapData, u64>,
    pub(crate) lost: aya::maps::PerCpuArray<MapData, u64>,
    /// The attached programs of each stage, for their skipped runs.
    pub(crate) program_fds: Vec<(Stage, Vec<OwnedFd>)>,
}

impl CountersMaps {
    /// Sums the per-CPU counters into what the metadata stores.
    pub(crate) fn progress(&self, attached: &[Stage]) -> Progress {
        let mut seen = BTreeMap::new();
        for &stage in attached {
            seen.insert(stage.name().to_string(), seen_of(&self.seen, stage));
        }
        let ring_per_cpu = self
            .lost
            .get(&0, 0)
            .map(|v| v.iter().copied().collect())
            .unwrap_or_default();
        let mut missed_runs = BTreeMap::new();
        for (stage, fds) in &self.program_fds {
            let n: u64 = fds
                .iter()
                .filter_map(|fd| recursion_misses(fd.as_fd()))
                .sum();
            if n > 0 {
                missed_runs.insert(stage.name().to_string(), n);
            }
        }
        Progress {
            lost: Lost {
                ring_per_cpu,
                writer_queue: 0,
                missed_runs,
            },
            seen,
            end_ns: host::monotonic_ns().unwrap_or(0),
        }
    }
}
