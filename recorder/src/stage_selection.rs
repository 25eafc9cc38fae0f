//! `--stage`: which stages a recording keeps, and which programs that needs attached.
//!
//! A recording of a few stages (the TCP events of a busy server, say) costs a fraction of a full
//! one: the other stages' programs are not attached at all. `--pid` and `--iface` are the
//! exception. They admit a flow from whichever of its events carries the pid or the interface
//! (a socket call, a packet), and the events of the kept stages pass because their flow was
//! admitted. So with either filter every stage is attached, and the kernel drops the events of
//! stages not kept after the filters have seen them (`targ_stages` in `capture.bpf.h`). Likewise
//! `tx_done` attaches `tx_driver`, whose program notes what the driver was handed.

use std::collections::BTreeSet;
use tcptape_common::stage::Path;
use tcptape_common::Stage;

/// What a recording does with one stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageUse {
    /// Attached, its events recorded.
    Keep,
    /// Attached so that `--pid` or `--iface` see its events, which are then dropped.
    FilterOnly,
    /// Not attached.
    Skip,
}

/// The stages a recording keeps: all of them, or those `--stage` names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StageSelection {
    /// Empty: every stage.
    chosen: BTreeSet<Stage>,
}

/// The stages one `--stage` value names: a stage, or `rx`, `tx`, `tcp` for a path's stages.
pub fn parse_stage_arg(s: &str) -> Result<Vec<Stage>, String> {
    let path = match s {
        "rx" => Some(Path::Rx),
        "tx" => Some(Path::Tx),
        "tcp" => Some(Path::Tcp),
        _ => None,
    };
    if let Some(path) = path {
        return Ok(recorded()
            .filter(|st| st.path() == path)
            .collect::<Vec<_>>());
    }
    match s.parse::<Stage>() {
        Ok(Stage::TcpSample) => Err(
            "tcp_sample is not recorded any more: the rx_tcp_est events carry the congestion \
             snapshot; use --stage rx_tcp_est"
                .into(),
        ),
        Ok(st) => Ok(vec![st]),
        Err(_) => Err(format!(
            "unknown stage '{s}' (stages: {}; or rx, tx, tcp for a path's stages)",
            recorded().map(Stage::name).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// The stages the recorder can record, in stage order.
fn recorded() -> impl Iterator<Item = Stage> {
    Stage::ALL.iter().copied().filter(|s| s.is_recorded())
}

impl StageSelection {
    /// The selection of the `--stage` values (each a list from [`parse_stage_arg`]); none: all.
    pub fn new(args: &[Vec<Stage>]) -> StageSelection {
        StageSelection {
            chosen: args.iter().flatten().copied().collect(),
        }
    }

    /// True when every stage is kept.
    pub fn is_all(&self) -> bool {
        self.chosen.is_empty()
    }

    /// True when `stage`'s events are kept.
    pub fn keeps(&self, stage: Stage) -> bool {
        self.is_all() || self.chosen.contains(&stage)
    }

    /// What to do with `stage` when the flow-admitting filters (`--pid`, `--iface`) are on or not.
    /// `tx_done` records the completion of what `tx_driver` saw handed to the driver, so it needs
    /// that program attached.
    pub fn use_of(&self, stage: Stage, flow_filters: bool) -> StageUse {
        if self.keeps(stage) {
            StageUse::Keep
        } else if flow_filters || (stage == Stage::TxDriver && self.keeps(Stage::TxDone)) {
            StageUse::FilterOnly
        } else {
            StageUse::Skip
        }
    }

    /// The kernel's `targ_stages`: bit `1 << code` for each kept stage.
    pub fn mask(&self) -> u32 {
        if self.is_all() {
            return !0;
        }
        self.chosen.iter().fold(0, |m, s| m | 1 << s.code())
    }

    /// The chosen stages' names for the metadata, in stage order; empty for all.
    pub fn names(&self) -> Vec<String> {
        self.chosen.iter().map(|s| s.name().to_string()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_name_or_a_path_selects_stages() {
        assert_eq!(parse_stage_arg("rx_app"), Ok(vec![Stage::RxApp]));
        let tcp = parse_stage_arg("tcp").unwrap();
        assert_eq!(
            tcp,
            [
                Stage::Retransmit,
                Stage::CongState,
                Stage::State,
                Stage::Drop,
                Stage::Buffer
            ]
        );
        let rx = parse_stage_arg("rx").unwrap();
        assert!(rx.iter().all(|s| s.path() == Path::Rx) && rx.len() == 6);
        assert_eq!(parse_stage_arg("tx").unwrap().len(), 7);
    }

    #[test]
    fn unknown_stages_and_tcp_sample_are_refused_with_the_valid_names() {
        let e = parse_stage_arg("rx_nope").unwrap_err();
        assert!(e.contains("unknown stage 'rx_nope'"), "{e}");
        assert!(e.contains("rx_driver") && e.contains("buffer"), "{e}");
        assert!(!e.contains("tcp_sample"), "{e}");
        let e = parse_stage_arg("tcp_sample").unwrap_err();
        assert!(e.contains("rx_tcp_est"), "{e}");
    }

    #[test]
    fn the_mask_has_one_bit_per_kept_stage() {
        let all = StageSelection::new(&[]);
        assert!(all.is_all() && all.keeps(Stage::Drop));
        assert_eq!(all.mask(), !0);
        assert!(all.names().is_empty());
        let some = StageSelection::new(&[vec![Stage::Retransmit], vec![Stage::RxApp]]);
        assert_eq!(some.mask(), 1 << 14 | 1 << 6);
        assert_eq!(some.names(), ["rx_app", "retransmit"]);
        assert!(!some.keeps(Stage::TxDriver));
    }

    #[test]
    fn stages_not_kept_are_attached_only_for_the_flow_filters() {
        let s = StageSelection::new(&[vec![Stage::State]]);
        assert_eq!(s.use_of(Stage::State, false), StageUse::Keep);
        assert_eq!(s.use_of(Stage::State, true), StageUse::Keep);
        assert_eq!(s.use_of(Stage::RxApp, false), StageUse::Skip);
        assert_eq!(s.use_of(Stage::RxApp, true), StageUse::FilterOnly);
        let done = StageSelection::new(&[vec![Stage::TxDone]]);
        assert_eq!(done.use_of(Stage::TxDriver, false), StageUse::FilterOnly);
        assert_eq!(done.use_of(Stage::TxDone, false), StageUse::Keep);
        assert_eq!(done.use_of(Stage::TxQdiscDeq, false), StageUse::Skip);
    }
}
