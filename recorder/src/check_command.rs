//! `tcptape-record check`: what this host can record, per stage, and why not.
//!
//! It goes through the same steps as a recording (privileges, BTF, tracefs, loading and attaching
//! every program) and then detaches everything; with `--cost`, it measures for a while first
//! ([`crate::cost_probe`]).

use crate::attach_plan::{
    anything_recorded, attach_all, attach_context, Mechanism, StageOutcome, PLAN,
};
use crate::cli::CheckArgs;
use crate::exit_code::{self, ExitError};
use crate::filters::KernelFilters;
use crate::loader::{AyaLoader, LoadConfig, RingLayout};
use crate::{plan_report, preflight};

/// Every stage attached, as a recording without filters would be: the loader (programs stay
/// attached while it lives), each stage's outcome, and the warnings on the way.
pub struct Attached {
    /// The loaded object.
    pub loader: AyaLoader,
    /// Each stage's outcome, in plan order.
    pub outcomes: Vec<StageOutcome>,
    /// What the host lacks, in sentences.
    pub warnings: Vec<String>,
    /// How the stages learn whether they run in softirq (`None`: they cannot).
    pub softirq_context: Option<Mechanism>,
    /// The programs that tell them (they record nothing, but run at every softirq).
    pub context_programs: Vec<&'static str>,
}

/// Checks privileges and BTF, then loads the object with rings of `ring_bytes` in all and
/// attaches every stage (without fentry when `no_fentry`).
pub fn attach_every_stage(no_fentry: bool, ring_bytes: u64) -> anyhow::Result<Attached> {
    preflight::check_privileges()?;
    preflight::check_btf()?;
    let warning = preflight::ensure_tracefs();
    let cfg = LoadConfig {
        filters: KernelFilters::default(),
        sample: 1,
        adaptive: false,
        rings: RingLayout::for_host(ring_bytes)
            .map_err(|e| ExitError::new(exit_code::UNSUPPORTED, e))?,
    };
    let mut loader = AyaLoader::open(&cfg).map_err(ExitError::from)?;
    if no_fentry {
        loader.disable(Mechanism::Fentry);
    }
    let context = attach_context(&mut loader);
    let outcomes = attach_all(PLAN, &mut loader);
    Ok(Attached {
        loader,
        outcomes,
        warnings: warning.into_iter().chain(context.warning()).collect(),
        softirq_context: context.chosen,
        context_programs: context.programs,
    })
}

/// Runs the subcommand.
pub fn run(args: &CheckArgs) -> anyhow::Result<()> {
    if let Some(duration) = args.cost {
        return cost(args, duration);
    }
    // The smallest rings: nothing is recorded.
    let Attached {
        loader,
        outcomes,
        warnings,
        softirq_context,
        ..
    } = attach_every_stage(args.no_fentry, 0)?;
    drop(loader);
    if args.json {
        let doc = serde_json::json!({
            "kernel_release": tcptape_common::metadata::host::kernel_release(),
            "ebpf_object": tcptape_ebpf::OBJECT_SOURCE,
            "warnings": warnings,
            "softirq_context": softirq_context.map(|m| m.name()),
            "recordable": outcomes.iter().filter(|o| o.chosen.is_some()).count(),
            "stages": plan_report::rows(&outcomes),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        for w in &warnings {
            println!("warning: {w}");
        }
        print!("{}", plan_report::table(&outcomes));
    }
    if !anything_recorded(&outcomes) {
        return Err(ExitError::new(
            exit_code::UNSUPPORTED,
            "no stage can be recorded on this kernel (see the table above)",
        )
        .into());
    }
    Ok(())
}

/// `check --cost`: the plan, then what a recording would cost now.
fn cost(args: &CheckArgs, duration: std::time::Duration) -> anyhow::Result<()> {
    let (cost, outcomes) = crate::cost_probe::measure(duration, args.no_fentry)?;
    if args.json {
        let doc = serde_json::json!({
            "kernel_release": tcptape_common::metadata::host::kernel_release(),
            "stages": plan_report::rows(&outcomes),
            "cost": cost,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{}", plan_report::table(&outcomes));
        println!();
        print!("{}", crate::cost_probe::table(&cost));
    }
    Ok(())
}
