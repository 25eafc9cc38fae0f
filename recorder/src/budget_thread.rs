//! The thread that holds `--budget`: every 25 ms it reads the kernel's per-stage counts and the
//! events drained so far, and moves the programs' sampling threshold when [`BudgetControl`]
//! says so.
//!
//! A thread of its own at normal CPU priority, apart from the drain loop: the drain runs at
//! `--priority idle` by default, and on a host whose CPUs are saturated (when the budget matters
//! most) it may not run for a long time while the rings fill; this thread then still cuts the
//! rate, from the kernel's counts alone, within a few tens of milliseconds.

use crate::sampling_budget::BudgetControl;
use aya::maps::{Array, MapData, PerCpuArray};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use tcptape_common::metadata::{host, SamplingStep};
use tcptape_common::Stage;

/// How often the thread looks.
const TICK: Duration = Duration::from_millis(25);

/// The maps the thread reads and writes: its own handle on the per-stage counts (the drain loop
/// keeps the other) and the threshold.
pub struct BudgetMaps {
    /// Events seen per stage, per CPU (a second handle on `SEEN`).
    pub seen: PerCpuArray<MapData, u64>,
    /// The threshold the programs keep flows below.
    pub keep_below: Array<MapData, u64>,
}

/// What the drain loop shares with the running thread.
#[derive(Default)]
pub struct BudgetShared {
    /// Events drained so far (the drain loop stores it).
    pub received: AtomicU64,
    /// Rates set in force and not yet handed to the writer.
    steps: Mutex<Vec<SamplingStep>>,
    stop: AtomicBool,
    /// The sparsest rate set in force so far (1 in N).
    sparsest: std::sync::atomic::AtomicU32,
    /// The rate in force now (1 in N).
    current: std::sync::atomic::AtomicU32,
    /// Why the threshold could not be changed, once.
    failure: Mutex<Option<String>>,
}

impl BudgetShared {
    /// The rates set in force since the last call.
    pub fn take_steps(&self) -> Vec<SamplingStep> {
        std::mem::take(&mut *self.steps.lock().expect("never poisoned"))
    }

    /// The sparsest rate the budget set in force (1 in N; the fixed `--sample` when it never
    /// had to).
    pub fn sparsest(&self) -> u32 {
        self.sparsest.load(Ordering::Relaxed)
    }

    /// The rate in force now (1 in N).
    pub fn current(&self) -> u32 {
        self.current.load(Ordering::Relaxed)
    }

    /// Why the budget stopped being held, if it did (once).
    pub fn take_failure(&self) -> Option<String> {
        self.failure.lock().expect("never poisoned").take()
    }
}

/// The running thread.
pub struct BudgetThread {
    shared: Arc<BudgetShared>,
    join: JoinHandle<()>,
}

impl BudgetThread {
    /// Starts holding `control`'s budget over the `stages` attached.
    pub fn spawn(
        mut control: BudgetControl,
        mut maps: BudgetMaps,
        stages: Vec<Stage>,
    ) -> std::io::Result<BudgetThread> {
        let shared = Arc::new(BudgetShared::default());
        shared.sparsest.store(control.one_in(), Ordering::Relaxed);
        shared.current.store(control.one_in(), Ordering::Relaxed);
        shared
            .steps
            .lock()
            .expect("never poisoned")
            .extend(control.take_steps());
        let s = shared.clone();
        let join = std::thread::Builder::new()
            .name("tcptape-budget".into())
            .spawn(move || {
                while !s.stop.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    let now = host::monotonic_ns().unwrap_or(0);
                    let seen: u64 = stages
                        .iter()
                        .map(|&st| crate::kernel_counters::seen_of(&maps.seen, st))
                        .sum();
                    let received = s.received.load(Ordering::Relaxed);
                    let Some(threshold) = control.tick(received, seen, now) else {
                        continue;
                    };
                    if let Err(e) = maps.keep_below.set(0, threshold, 0) {
                        // Never expected: the recorder holds the map.
                        *s.failure.lock().expect("never poisoned") = Some(e.to_string());
                        return;
                    }
                    s.sparsest.fetch_max(control.one_in(), Ordering::Relaxed);
                    s.current.store(control.one_in(), Ordering::Relaxed);
                    s.steps
                        .lock()
                        .expect("never poisoned")
                        .extend(control.take_steps());
                }
            })?;
        Ok(BudgetThread { shared, join })
    }

    /// What the drain loop shares with the thread.
    pub fn shared(&self) -> &Arc<BudgetShared> {
        &self.shared
    }

    /// Stops the thread; the threshold stays as it is.
    pub fn stop(self) -> Arc<BudgetShared> {
        self.shared.stop.store(true, Ordering::Relaxed);
        let _ = self.join.join();
        self.shared
    }
}
