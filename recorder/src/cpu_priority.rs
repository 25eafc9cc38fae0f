//! The CPU priority of the recorder once its programs are attached.
//!
//! The programs run inside the traffic's own kernel paths, wherever it runs; everything else the
//! recorder does (draining the rings, encoding, writing) can wait for CPU time the host's own work
//! leaves unused. At normal priority the woken reader preempts that work and delays packets in
//! flight; at `SCHED_IDLE` it never does. The rings and the writer queue absorb the wait, and
//! what they cannot absorb is counted as lost, never silently dropped.

use clap::ValueEnum;
use std::io;

/// Scheduling of the recorder's threads while recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Priority {
    /// `SCHED_IDLE`: run only on CPU time nothing else wants.
    #[default]
    Idle,
    /// The normal time-sharing policy, as started (competes with the host's work).
    Normal,
}

impl Priority {
    /// The name used on the command line and in messages.
    pub fn name(self) -> &'static str {
        match self {
            Priority::Idle => "idle",
            Priority::Normal => "normal",
        }
    }

    /// Applies the priority to the calling thread, and so to the threads it starts from now on.
    /// Lowering needs no privilege.
    pub fn apply_to_current_thread(self) -> io::Result<()> {
        let policy = match self {
            Priority::Idle => libc::SCHED_IDLE,
            Priority::Normal => return Ok(()),
        };
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param.
        if unsafe { libc::sched_setscheduler(0, policy, &param) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The policy of the calling thread.
    fn policy() -> i32 {
        // SAFETY: pid 0 is the calling thread.
        unsafe { libc::sched_getscheduler(0) }
    }

    #[test]
    fn idle_applies_to_the_thread_and_the_threads_it_starts() {
        std::thread::spawn(|| {
            assert_eq!(policy(), libc::SCHED_OTHER);
            Priority::Idle.apply_to_current_thread().unwrap();
            assert_eq!(policy(), libc::SCHED_IDLE);
            let child = std::thread::spawn(policy).join().unwrap();
            assert_eq!(child, libc::SCHED_IDLE);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn normal_leaves_the_policy_as_it_is() {
        std::thread::spawn(|| {
            Priority::Normal.apply_to_current_thread().unwrap();
            assert_eq!(policy(), libc::SCHED_OTHER);
        })
        .join()
        .unwrap();
    }
}
