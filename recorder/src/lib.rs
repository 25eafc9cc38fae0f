//! # tcptape-recorder: the `tcptape-record` binary's library
//!
//! Data flows kernel event → ring buffer → batch → Parquet:
//! the capture side drains one ring buffer per CPU ([`ring_reader`]) into batches of [`tcptape_common::RawEvent`], hands
//! them to the [`write_pipeline`] (a writer thread behind a bounded queue), which encodes them and
//! writes finished segments with the [`segment_writer`].
//!
//! A live recording ([`capture`]) first checks the host ([`preflight`]), validates the
//! [`filters`] and the [`stage_selection`], loads the eBPF object with them and the addresses of
//! the kernel variables its programs read ([`loader`], [`kernel_symbols`]) and
//! attaches each stage by the first mechanism that works ([`attach_plan`]), then gives up the
//! capabilities it no longer needs ([`least_privilege`]) and lowers its CPU priority
//! ([`cpu_priority`]); `check` ([`check_command`]) shows that plan ([`plan_report`]). The metadata gets the host's drop-reason names ([`drop_reasons`]) and its
//! [`environment`] fingerprint.
//!
//! Everything it says on stderr goes through [`tcptape_common::note!`], which a closed stderr
//! cannot fail.
//!
//! [`synth_command`] feeds the same writer with synthetic events, which is how the writer is
//! tested and benchmarked without root.
#![deny(missing_docs)]

pub mod attach_plan;
pub mod budget_thread;
pub mod capture;
pub mod cgroup_names;
pub mod cgroup_paths;
pub mod check_command;
pub mod cli;
pub mod cost_probe;
pub mod cpu_priority;
pub mod drain_loop;
pub mod drop_reasons;
pub mod environment;
pub mod exit_code;
pub mod filters;
pub mod flight_control;
pub mod kernel_counters;
pub mod kernel_symbols;
pub mod least_privilege;
pub mod listening_sockets;
pub mod live_view;
pub mod load_error;
pub mod loader;
pub mod plan_report;
pub mod preflight;
pub mod program_stats;
pub mod ring_reader;
pub mod sampling_budget;
pub mod segment_writer;
pub mod stage_selection;
pub mod synth_command;
pub mod trigger_conditions;
pub mod write_pipeline;
