//! The attach plan: for each stage, the kernel points that can feed it, in order of preference,
//! and the logic that takes the first that loads and attaches.
//!
//! Order per stage: fentry → kprobe → BTF tracepoint (`tp_btf`) → classic tracepoint. A
//! mechanism may need several programs (`rx_ip` needs `ip_rcv` and `ipv6_rcv`); it wins only if
//! all of them load and attach, otherwise the ones that did are removed again. Every attempt's
//! outcome is kept, so a recording says how each of its stages was captured and why the better
//! mechanisms were not used. The loading itself is behind [`ProgramLoader`], so the fallback
//! decisions are tested without a kernel.

use crate::stage_selection::StageUse;
use serde::Serialize;
use std::fmt;
use tcptape_common::metadata::{AttachAttempt, StageAttach};
use tcptape_common::Stage;

/// How a program is hooked into the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mechanism {
    /// BTF-typed function entry (BPF trampoline), and its return (fexit).
    Fentry,
    /// Function entry through a kprobe, and its return (kretprobe).
    Kprobe,
    /// BTF-typed tracepoint.
    TpBtf,
    /// Classic tracepoint (tracefs).
    Tracepoint,
}

impl Mechanism {
    /// The name used in metadata and output.
    pub const fn name(self) -> &'static str {
        match self {
            Mechanism::Fentry => "fentry",
            Mechanism::Kprobe => "kprobe",
            Mechanism::TpBtf => "tp_btf",
            Mechanism::Tracepoint => "tracepoint",
        }
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One program of the eBPF object and the kernel point it hooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hook {
    /// Program (C function) name in the object.
    pub program: &'static str,
    /// Kernel function (fentry, kprobe), tracepoint name (tp_btf) or `category/name`
    /// (classic tracepoint).
    pub target: &'static str,
}

/// One way to capture a stage: a mechanism and the programs it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    /// The mechanism.
    pub mechanism: Mechanism,
    /// Programs that must all attach.
    pub hooks: &'static [Hook],
}

/// The ways to capture one stage, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StagePlan {
    /// The stage.
    pub stage: Stage,
    /// Options, best first.
    pub options: &'static [Choice],
    /// Why the stage may have no option on a host (shown when none attaches).
    pub note: &'static str,
}

macro_rules! hook {
    ($program:literal, $target:literal) => {
        Hook {
            program: $program,
            target: $target,
        }
    };
}

macro_rules! opt {
    ($mech:ident: $($hook:expr),+ $(,)?) => {
        Choice {
            mechanism: Mechanism::$mech,
            hooks: &[$($hook),+],
        }
    };
}

/// The plan of every stage recorded ([`Stage::is_recorded`]), in stage order. Program names follow
/// `<stage>__<mechanism>__<kernel point>` in `ebpf/src/bpf/tcptape.bpf.c`.
pub const PLAN: &[StagePlan] = &[
    StagePlan {
        stage: Stage::RxDriver,
        options: &[
            opt!(TpBtf: hook!("rx_driver__tp_btf__napi_gro_receive_entry", "napi_gro_receive_entry"),
                        hook!("rx_driver__tp_btf__netif_rx", "netif_rx")),
            opt!(Tracepoint: hook!("rx_driver__tracepoint__napi_gro_receive_entry", "net/napi_gro_receive_entry"),
                             hook!("rx_driver__tracepoint__netif_rx", "net/netif_rx")),
        ],
        note: "",
    },
    StagePlan {
        stage: Stage::RxNetif,
        options: &[
            opt!(TpBtf: hook!("rx_netif__tp_btf__netif_receive_skb", "netif_receive_skb")),
            opt!(Tracepoint: hook!("rx_netif__tracepoint__netif_receive_skb", "net/netif_receive_skb")),
        ],
        note: "",
    },
    StagePlan {
        stage: Stage::RxIp,
        options: &[
            opt!(Fentry: hook!("rx_ip__fentry__ip_rcv", "ip_rcv"),
                         hook!("rx_ip__fentry__ipv6_rcv", "ipv6_rcv")),
            opt!(Kprobe: hook!("rx_ip__kprobe__ip_rcv", "ip_rcv"),
                         hook!("rx_ip__kprobe__ipv6_rcv", "ipv6_rcv")),
        ],
        note: "no tracepoint exists at IP receive",
    },
    StagePlan {
        stage: Stage::RxTcp,
        options: &[
            opt!(Fentry: hook!("rx_tcp__fentry__tcp_v4_rcv", "tcp_v4_rcv"),
                         hook!("rx_tcp__fentry__tcp_v6_rcv", "tcp_v6_rcv")),
            opt!(Kprobe: hook!("rx_tcp__kprobe__tcp_v4_rcv", "tcp_v4_rcv"),
                         hook!("rx_tcp__kprobe__tcp_v6_rcv", "tcp_v6_rcv")),
        ],
        note: "no tracepoint exists at TCP receive",
    },
    StagePlan {
        stage: Stage::RxTcpEst,
        options: &[
            opt!(Fentry: hook!("rx_tcp_est__fentry__tcp_rcv_established", "tcp_rcv_established")),
            opt!(Kprobe: hook!("rx_tcp_est__kprobe__tcp_rcv_established", "tcp_rcv_established")),
            opt!(TpBtf: hook!("rx_tcp_est__tp_btf__tcp_probe", "tcp_probe")),
            opt!(Tracepoint: hook!("rx_tcp_est__tracepoint__tcp_probe", "tcp/tcp_probe")),
        ],
        note: "",
    },
    StagePlan {
        stage: Stage::RxApp,
        options: &[
            opt!(TpBtf: hook!("rx_app__tp_btf__skb_copy_datagram_iovec", "skb_copy_datagram_iovec")),
            opt!(Tracepoint: hook!("rx_app__tracepoint__skb_copy_datagram_iovec", "skb/skb_copy_datagram_iovec")),
        ],
        note: "",
    },
    StagePlan {
        stage: Stage::TxSendmsg,
        options: &[
            // Entry opens a call, return ends it with the bytes written (fexit, kretprobe).
            opt!(Fentry: hook!("tx_sendmsg__fentry__tcp_sendmsg", "tcp_sendmsg"),
                         hook!("tx_sendmsg__fentry__tcp_sendmsg_return", "tcp_sendmsg")),
            opt!(Kprobe: hook!("tx_sendmsg__kprobe__tcp_sendmsg", "tcp_sendmsg"),
                         hook!("tx_sendmsg__kprobe__tcp_sendmsg_return", "tcp_sendmsg")),
            // The first opens a call, the second ends it with the bytes written (Linux 6.4+).
            opt!(TpBtf: hook!("tx_sendmsg__tp_btf__tcp_sendmsg_locked", "tcp_sendmsg_locked"),
                        hook!("tx_sendmsg__tp_btf__sock_send_length", "sock_send_length")),
            opt!(Tracepoint: hook!("tx_sendmsg__tracepoint__tcp_sendmsg_locked", "tcp/tcp_sendmsg_locked"),
                             hook!("tx_sendmsg__tracepoint__sock_send_length", "sock/sock_send_length")),
        ],
        note:
            "without tcp_sendmsg, the tracepoints need sock_send_length (Linux 6.4) to end a call",
    },
    StagePlan {
        stage: Stage::TxTcpXmit,
        options: &[
            opt!(Fentry: hook!("tx_tcp_xmit__fentry____tcp_transmit_skb", "__tcp_transmit_skb")),
            opt!(Kprobe: hook!("tx_tcp_xmit__kprobe____tcp_transmit_skb", "__tcp_transmit_skb")),
        ],
        note: "no tracepoint exists there; tx_dev_queue events carry the TCP sequence instead",
    },
    StagePlan {
        stage: Stage::TxDevQueue,
        options: &[
            opt!(TpBtf: hook!("tx_dev_queue__tp_btf__net_dev_queue", "net_dev_queue")),
            opt!(Tracepoint: hook!("tx_dev_queue__tracepoint__net_dev_queue", "net/net_dev_queue")),
        ],
        note: "",
    },
    StagePlan {
        stage: Stage::TxQdiscEnq,
        options: &[
            opt!(TpBtf: hook!("tx_qdisc_enq__tp_btf__qdisc_enqueue", "qdisc_enqueue")),
            opt!(Tracepoint: hook!("tx_qdisc_enq__tracepoint__qdisc_enqueue", "qdisc/qdisc_enqueue")),
        ],
        note: "",
    },
    StagePlan {
        stage: Stage::TxQdiscDeq,
        options: &[
            opt!(TpBtf: hook!("tx_qdisc_deq__tp_btf__qdisc_dequeue", "qdisc_dequeue")),
            opt!(Tracepoint: hook!("tx_qdisc_deq__tracepoint__qdisc_dequeue", "qdisc/qdisc_dequeue")),
        ],
        note: "",
    },
    StagePlan {
        stage: Stage::TxDriver,
        options: &[
            opt!(TpBtf: hook!("tx_driver__tp_btf__net_dev_start_xmit", "net_dev_start_xmit")),
            opt!(Tracepoint: hook!("tx_driver__tracepoint__net_dev_start_xmit", "net/net_dev_start_xmit")),
        ],
        note: "",
    },
    StagePlan {
        stage: Stage::TxDone,
        options: &[
            opt!(TpBtf: hook!("tx_done__tp_btf__consume_skb", "consume_skb")),
            opt!(Tracepoint: hook!("tx_done__tracepoint__consume_skb", "skb/consume_skb")),
        ],
        note: "",
    },
    StagePlan {
        stage: Stage::Retransmit,
        options: &[
            opt!(TpBtf: hook!("retransmit__tp_btf__tcp_retransmit_skb", "tcp_retransmit_skb")),
            opt!(Tracepoint: hook!("retransmit__tracepoint__tcp_retransmit_skb", "tcp/tcp_retransmit_skb")),
        ],
        note: "",
    },
    StagePlan {
        stage: Stage::CongState,
        options: &[
            opt!(TpBtf: hook!("cong_state__tp_btf__tcp_cong_state_set", "tcp_cong_state_set")),
            opt!(Tracepoint: hook!("cong_state__tracepoint__tcp_cong_state_set", "tcp/tcp_cong_state_set")),
        ],
        note: "",
    },
    StagePlan {
        stage: Stage::State,
        options: &[
            opt!(TpBtf: hook!("state__tp_btf__inet_sock_set_state", "inet_sock_set_state")),
            opt!(Tracepoint: hook!("state__tracepoint__inet_sock_set_state", "sock/inet_sock_set_state")),
        ],
        note: "",
    },
    StagePlan {
        stage: Stage::Drop,
        options: &[
            opt!(TpBtf: hook!("drop__tp_btf__kfree_skb", "kfree_skb")),
            opt!(Tracepoint: hook!("drop__tracepoint__kfree_skb", "skb/kfree_skb")),
        ],
        note: "",
    },
    StagePlan {
        stage: Stage::Buffer,
        options: &[
            opt!(TpBtf: hook!("buffer__tp_btf__sock_rcvqueue_full", "sock_rcvqueue_full"),
                        hook!("buffer__tp_btf__sock_exceed_buf_limit", "sock_exceed_buf_limit")),
        ],
        note: "the classic tracepoints carry no socket, so they cannot tell TCP apart",
    },
];

/// Loads and attaches single programs; implemented with aya for the kernel and by fakes in tests.
pub trait ProgramLoader {
    /// Loads `hook.program` and attaches it with `mechanism` to `hook.target`. On error the
    /// program must be left unloaded. The error is one line for the user.
    fn attach(&mut self, mechanism: Mechanism, hook: &Hook) -> Result<(), String>;
    /// Removes a program attached earlier (used when a later program of the same option fails).
    fn detach(&mut self, hook: &Hook);
}

/// The outcome for one stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageOutcome {
    /// The stage.
    pub stage: Stage,
    /// The mechanism that won, if any.
    pub chosen: Option<Mechanism>,
    /// Every attempt, in order: mechanism, targets, error (`None` = attached).
    pub attempts: Vec<Attempt>,
    /// The plan's note for the stage.
    pub note: &'static str,
    /// Programs of the chosen mechanism (empty when none was chosen).
    pub programs: Vec<&'static str>,
    /// What the recording does with the stage (`--stage`).
    pub usage: StageUse,
}

/// One attempt at one option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The mechanism tried.
    pub mechanism: Mechanism,
    /// The kernel points it hooks, comma-separated.
    pub target: String,
    /// `None` when it attached; else why not.
    pub error: Option<String>,
}

/// Attaches every stage in `plan` through `loader`, taking the first option that fully attaches.
pub fn attach_all(plan: &[StagePlan], loader: &mut dyn ProgramLoader) -> Vec<StageOutcome> {
    attach_selected(plan, |_| StageUse::Keep, loader)
}

/// [`attach_all`] for the stages `use_of` does not skip; a skipped stage's outcome has no
/// attempts.
pub fn attach_selected(
    plan: &[StagePlan],
    use_of: impl Fn(Stage) -> StageUse,
    loader: &mut dyn ProgramLoader,
) -> Vec<StageOutcome> {
    plan.iter()
        .map(|sp| match use_of(sp.stage) {
            StageUse::Skip => StageOutcome {
                stage: sp.stage,
                chosen: None,
                attempts: Vec::new(),
                note: sp.note,
                programs: Vec::new(),
                usage: StageUse::Skip,
            },
            usage => StageOutcome {
                usage,
                ..attach_stage(sp, loader)
            },
        })
        .collect()
}

fn attach_stage(sp: &StagePlan, loader: &mut dyn ProgramLoader) -> StageOutcome {
    let (chosen, attempts, programs) = attach_first(sp.options, loader);
    StageOutcome {
        stage: sp.stage,
        chosen,
        attempts,
        note: sp.note,
        programs,
        usage: StageUse::Keep,
    }
}

/// Tries `options` in order and keeps the first whose programs all attach: its mechanism, every
/// attempt, and its programs.
fn attach_first(
    options: &[Choice],
    loader: &mut dyn ProgramLoader,
) -> (Option<Mechanism>, Vec<Attempt>, Vec<&'static str>) {
    let mut attempts = Vec::new();
    for option in options {
        let target = option
            .hooks
            .iter()
            .map(|h| h.target)
            .collect::<Vec<_>>()
            .join(",");
        let mut attached: Vec<&Hook> = Vec::new();
        let mut error = None;
        for hook in option.hooks {
            match loader.attach(option.mechanism, hook) {
                Ok(()) => attached.push(hook),
                Err(e) => {
                    error = Some(if option.hooks.len() > 1 {
                        format!("{}: {e}", hook.target)
                    } else {
                        e
                    });
                    break;
                }
            }
        }
        if error.is_some() {
            for hook in attached {
                loader.detach(hook);
            }
        }
        let ok = error.is_none();
        attempts.push(Attempt {
            mechanism: option.mechanism,
            target,
            error,
        });
        if ok {
            let programs = option.hooks.iter().map(|h| h.program).collect();
            return (Some(option.mechanism), attempts, programs);
        }
    }
    (None, attempts, Vec::new())
}

/// Programs that record no event but tell the stages' programs in which context they run: a
/// per-CPU flag set while a softirq is served, so that events of packets received and of timers
/// carry no pid (the interrupted task's pid would name the wrong process, and admit its flows
/// under `--pid`). Attached before the stages.
pub const CONTEXT: &[Choice] = &[
    opt!(TpBtf: hook!("context__tp_btf__softirq_entry", "softirq_entry"),
                hook!("context__tp_btf__softirq_exit", "softirq_exit")),
    opt!(Tracepoint: hook!("context__tracepoint__softirq_entry", "irq/softirq_entry"),
                     hook!("context__tracepoint__softirq_exit", "irq/softirq_exit")),
];

/// The stages whose events may carry the pid of the task they run in, and so need [`CONTEXT`].
pub const TASK_STAGES: &[Stage] = &[Stage::RxApp, Stage::TxSendmsg, Stage::State, Stage::Buffer];

/// What attaching [`CONTEXT`] gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextOutcome {
    /// The mechanism that won; `None` when the softirq context is unknown.
    pub chosen: Option<Mechanism>,
    /// Every attempt, in order.
    pub attempts: Vec<Attempt>,
    /// The programs attached (none when nothing was).
    pub programs: Vec<&'static str>,
}

impl ContextOutcome {
    /// A warning for the user when the context is unknown.
    pub fn warning(&self) -> Option<String> {
        if self.chosen.is_some() {
            return None;
        }
        let why: Vec<String> = self
            .attempts
            .iter()
            .filter_map(|a| a.error.as_ref().map(|e| format!("{}: {e}", a.mechanism)))
            .collect();
        Some(format!(
            "the softirq tracepoints did not attach ({}): events handled in softirq may carry the \
             pid of the task they interrupted, and --pid may keep its flows",
            why.join("; ")
        ))
    }
}

/// Attaches [`CONTEXT`] through `loader`.
pub fn attach_context(loader: &mut dyn ProgramLoader) -> ContextOutcome {
    let (chosen, attempts, programs) = attach_first(CONTEXT, loader);
    ContextOutcome {
        chosen,
        attempts,
        programs,
    }
}

impl StageOutcome {
    /// The outcome as recording metadata.
    pub fn to_meta(&self) -> StageAttach {
        StageAttach {
            stage: self.stage.name().to_string(),
            chosen: self.chosen.map(|m| m.name().to_string()),
            attempts: self
                .attempts
                .iter()
                .map(|a| AttachAttempt {
                    mechanism: a.mechanism.name().to_string(),
                    target: a.target.clone(),
                    error: a.error.clone(),
                })
                .collect(),
        }
    }
}

impl StageOutcome {
    /// True when the stage's events are recorded: attached and kept.
    pub fn records(&self) -> bool {
        self.chosen.is_some() && self.usage == StageUse::Keep
    }
}

/// True when at least one stage is recorded.
pub fn anything_recorded(outcomes: &[StageOutcome]) -> bool {
    outcomes.iter().any(StageOutcome::records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    /// A loader whose failures are injected per mechanism or per program.
    #[derive(Default)]
    struct FakeLoader {
        fail_mechanisms: HashMap<Mechanism, String>,
        fail_programs: HashMap<&'static str, String>,
        attached: HashSet<&'static str>,
        calls: Vec<(Mechanism, &'static str)>,
    }

    impl ProgramLoader for FakeLoader {
        fn attach(&mut self, mechanism: Mechanism, hook: &Hook) -> Result<(), String> {
            self.calls.push((mechanism, hook.program));
            if let Some(e) = self.fail_programs.get(hook.program) {
                return Err(e.clone());
            }
            if let Some(e) = self.fail_mechanisms.get(&mechanism) {
                return Err(e.clone());
            }
            assert!(self.attached.insert(hook.program), "attached twice");
            Ok(())
        }
        fn detach(&mut self, hook: &Hook) {
            assert!(self.attached.remove(hook.program), "detached unknown");
        }
    }

    fn this_host() -> FakeLoader {
        let mut l = FakeLoader::default();
        l.fail_mechanisms.insert(
            Mechanism::Fentry,
            "the BPF_PROG_LOAD syscall returned Operation not permitted (os error 1)".into(),
        );
        l.fail_mechanisms
            .insert(Mechanism::Kprobe, "kprobes are not available".into());
        l
    }

    fn outcome(outcomes: &[StageOutcome], stage: Stage) -> &StageOutcome {
        outcomes.iter().find(|o| o.stage == stage).unwrap()
    }

    #[test]
    fn plan_covers_every_stage_once_in_order_with_unique_programs() {
        let stages: Vec<Stage> = PLAN.iter().map(|p| p.stage).collect();
        let recorded: Vec<Stage> = Stage::ALL
            .iter()
            .copied()
            .filter(|s| s.is_recorded())
            .collect();
        assert_eq!(stages, recorded);
        let mut names = HashSet::new();
        for sp in PLAN {
            let mut last = None;
            for o in sp.options {
                assert!(
                    last < Some(o.mechanism),
                    "{}: options out of order",
                    sp.stage
                );
                last = Some(o.mechanism);
                for h in o.hooks {
                    assert!(names.insert(h.program), "{} listed twice", h.program);
                    let prefix = format!("{}__{}__", sp.stage.name(), o.mechanism.name());
                    assert!(h.program.starts_with(&prefix), "{} misnamed", h.program);
                    if o.mechanism == Mechanism::Tracepoint {
                        assert!(h.target.contains('/'), "{} needs category/name", h.target);
                    }
                }
            }
        }
    }

    #[test]
    fn fentry_wins_when_everything_loads() {
        let mut l = FakeLoader::default();
        let out = attach_all(PLAN, &mut l);
        let rx_tcp = outcome(&out, Stage::RxTcp);
        assert_eq!(rx_tcp.chosen, Some(Mechanism::Fentry));
        assert_eq!(rx_tcp.attempts.len(), 1);
        assert_eq!(outcome(&out, Stage::RxNetif).chosen, Some(Mechanism::TpBtf));
    }

    #[test]
    fn without_fentry_and_kprobes_tracepoints_take_over() {
        let mut l = this_host();
        let out = attach_all(PLAN, &mut l);
        let est = outcome(&out, Stage::RxTcpEst);
        assert_eq!(est.chosen, Some(Mechanism::TpBtf));
        let tried: Vec<_> = est.attempts.iter().map(|a| a.mechanism).collect();
        assert_eq!(
            tried,
            [Mechanism::Fentry, Mechanism::Kprobe, Mechanism::TpBtf]
        );
        assert!(est.attempts[0]
            .error
            .as_deref()
            .unwrap()
            .contains("Operation not permitted"));
        assert_eq!(est.attempts[2].error, None);
        // Function-only stages have nothing left.
        for stage in [Stage::RxIp, Stage::RxTcp, Stage::TxTcpXmit] {
            let o = outcome(&out, stage);
            assert_eq!(o.chosen, None, "{stage}");
            assert_eq!(o.attempts.len(), 2);
            assert!(!o.note.is_empty());
        }
        assert!(anything_recorded(&out));
        let attached = out.iter().filter(|o| o.chosen.is_some()).count();
        assert_eq!(attached, PLAN.len() - 3);
    }

    #[test]
    fn classic_tracepoint_is_the_last_resort() {
        let mut l = this_host();
        l.fail_mechanisms
            .insert(Mechanism::TpBtf, "no BTF tracepoints".into());
        let out = attach_all(PLAN, &mut l);
        assert_eq!(
            outcome(&out, Stage::TxDevQueue).chosen,
            Some(Mechanism::Tracepoint)
        );
        assert_eq!(outcome(&out, Stage::Buffer).chosen, None);
        let meta = outcome(&out, Stage::TxDevQueue).to_meta();
        assert_eq!(meta.chosen.as_deref(), Some("tracepoint"));
        assert_eq!(meta.attempts[0].mechanism, "tp_btf");
        assert_eq!(
            meta.attempts[0].error.as_deref(),
            Some("no BTF tracepoints")
        );
        assert_eq!(meta.attempts[1].target, "net/net_dev_queue");
    }

    #[test]
    fn a_partly_attached_option_is_rolled_back() {
        let mut l = this_host();
        l.fail_programs
            .insert("rx_driver__tp_btf__netif_rx", "no such tracepoint".into());
        let out = attach_all(PLAN, &mut l);
        let drv = outcome(&out, Stage::RxDriver);
        assert_eq!(drv.chosen, Some(Mechanism::Tracepoint));
        assert_eq!(
            drv.programs,
            [
                "rx_driver__tracepoint__napi_gro_receive_entry",
                "rx_driver__tracepoint__netif_rx"
            ]
        );
        assert_eq!(
            drv.attempts[0].error.as_deref(),
            Some("netif_rx: no such tracepoint")
        );
        assert!(!l
            .attached
            .contains("rx_driver__tp_btf__napi_gro_receive_entry"));
        assert!(l
            .attached
            .contains("rx_driver__tracepoint__napi_gro_receive_entry"));
    }

    #[test]
    fn nothing_attached_is_reported() {
        let mut l = this_host();
        l.fail_mechanisms.insert(Mechanism::TpBtf, "x".into());
        l.fail_mechanisms.insert(Mechanism::Tracepoint, "y".into());
        let out = attach_all(PLAN, &mut l);
        assert!(!anything_recorded(&out));
        assert!(l.attached.is_empty());
    }

    #[test]
    fn stages_not_selected_are_not_attached_and_filter_only_ones_record_nothing() {
        let mut l = this_host();
        let use_of = |s: Stage| match s {
            Stage::Retransmit => StageUse::Keep,
            Stage::RxApp => StageUse::FilterOnly,
            _ => StageUse::Skip,
        };
        let out = attach_selected(PLAN, use_of, &mut l);
        assert_eq!(out.len(), PLAN.len());
        let attached: HashSet<Stage> = l
            .calls
            .iter()
            .map(|(_, p)| {
                PLAN.iter()
                    .find(|sp| {
                        sp.options
                            .iter()
                            .any(|o| o.hooks.iter().any(|h| h.program == *p))
                    })
                    .unwrap()
                    .stage
            })
            .collect();
        assert_eq!(attached, HashSet::from([Stage::Retransmit, Stage::RxApp]));
        let skipped = outcome(&out, Stage::TxDriver);
        assert!(skipped.chosen.is_none() && skipped.attempts.is_empty());
        assert!(!skipped.records());
        let filter_only = outcome(&out, Stage::RxApp);
        assert!(filter_only.chosen.is_some() && !filter_only.records());
        assert!(outcome(&out, Stage::Retransmit).records());
        assert!(anything_recorded(&out));
        // Only filter-only stages attached: nothing would be recorded.
        let out = attach_selected(
            PLAN,
            |s| {
                if s == Stage::RxApp {
                    StageUse::FilterOnly
                } else {
                    StageUse::Skip
                }
            },
            &mut this_host(),
        );
        assert!(!anything_recorded(&out));
    }

    #[test]
    fn context_falls_back_to_the_classic_tracepoint_and_warns_when_nothing_attaches() {
        let mut l = this_host();
        l.fail_programs
            .insert("context__tp_btf__softirq_exit", "no such tracepoint".into());
        let out = attach_context(&mut l);
        assert_eq!(out.chosen, Some(Mechanism::Tracepoint));
        assert!(out.warning().is_none());
        // The half-attached tp_btf pair was rolled back.
        assert!(!l.attached.contains("context__tp_btf__softirq_entry"));
        let mut l = this_host();
        l.fail_mechanisms.insert(Mechanism::TpBtf, "refused".into());
        l.fail_mechanisms
            .insert(Mechanism::Tracepoint, "no tracefs".into());
        let out = attach_context(&mut l);
        assert_eq!(out.chosen, None);
        let w = out.warning().unwrap();
        assert!(
            w.contains("tp_btf: softirq_entry: refused")
                && w.contains("tracepoint: irq/softirq_entry: no tracefs"),
            "{w}"
        );
    }

    /// Every program of the eBPF object is named by the plan or the context programs, and every
    /// name there is a program of the object: the two lists are written by hand on both sides.
    #[test]
    fn every_program_in_the_object_is_in_the_plan_and_back() {
        let source = include_str!("../../ebpf/src/bpf/tcptape.bpf.c");
        let mut in_object = HashSet::new();
        let mut lines = source.lines();
        while let Some(line) = lines.next() {
            if !line.starts_with("SEC(\"") {
                continue;
            }
            let def = lines.next().unwrap();
            let name = def
                .strip_prefix("int BPF_PROG(")
                .or_else(|| def.strip_prefix("int BPF_KPROBE("))
                .or_else(|| def.strip_prefix("int BPF_KRETPROBE("))
                .or_else(|| def.strip_prefix("int "))
                .unwrap_or_else(|| panic!("unexpected program line: {def}"));
            let end = name.find([',', '(', ')']).unwrap();
            in_object.insert(name[..end].to_string());
        }
        let in_plan: HashSet<String> = PLAN
            .iter()
            .flat_map(|sp| sp.options)
            .chain(CONTEXT)
            .flat_map(|o| o.hooks)
            .map(|h| h.program.to_string())
            .collect();
        assert!(in_object.len() > 40, "{} programs parsed", in_object.len());
        assert_eq!(in_object, in_plan);
    }
}
