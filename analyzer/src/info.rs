//! `tcptape info REC`: what a recording is, before any analysis — the first command a person
//! runs on a recording from a ticket.

use crate::cli::{InfoArgs, InfoFormat};
use crate::exit_code;
use crate::units::{bytes, ns, wall};
use arrow_like::count_kinds;
use comfy_table::{presets::UTF8_BORDERS_ONLY, Table};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use tcptape_common::metadata::RecordingMeta;
use tcptape_common::{Recording, Stage};

/// What `info` reports, also its JSON shape.
#[derive(Debug, Serialize)]
pub struct Info {
    /// The recording's path.
    pub path: String,
    /// Number of finished segment files.
    pub segments: usize,
    /// Unfinished segment files (left by a killed recorder).
    pub unfinished_segments: usize,
    /// Bytes on disk.
    pub bytes: u64,
    /// Rows.
    pub events: u64,
    /// True when the recorder ended the recording itself.
    pub closed: bool,
    /// Why the recorder stopped (`duration`, `signal`, `max-size`, `disk-full`...), when closed.
    pub stop_reason: Option<String>,
    /// The status line: `closed (stopped: REASON)` or `NOT CLOSED ...`.
    pub status: String,
    /// Events per stage name, in stage order.
    pub events_per_stage: BTreeMap<String, u64>,
    /// Span of the recording, ns.
    pub duration_ns: u64,
    /// The metadata (counters from the last segment).
    pub meta: RecordingMeta,
}

mod arrow_like {
    use std::collections::BTreeMap;
    use tcptape_common::{ReadError, Recording};

    /// Events per `kind`, reading only that column.
    pub fn count_kinds(rec: &Recording) -> Result<BTreeMap<String, u64>, ReadError> {
        let mut counts = BTreeMap::new();
        for batch in rec.batches(Some(&["kind"])) {
            let batch = batch?;
            let col = batch.column(0);
            let kinds = col
                .as_any()
                .downcast_ref::<tcptape_common::arrow_array::StringArray>()
                .expect("the reader checked the kind column's type");
            for k in kinds.iter().flatten() {
                match counts.get_mut(k) {
                    Some(n) => *n += 1,
                    None => {
                        counts.insert(k.to_string(), 1);
                    }
                }
            }
        }
        Ok(counts)
    }
}

/// Gathers the facts `info` shows.
pub fn gather(rec: &Recording) -> anyhow::Result<Info> {
    let meta = rec.meta();
    let duration_ns = meta.end_ns.saturating_sub(meta.start_ns);
    Ok(Info {
        path: rec.path.display().to_string(),
        segments: rec.segments.len(),
        unfinished_segments: rec.unfinished.len(),
        bytes: rec.bytes(),
        events: rec.rows(),
        closed: rec.closed(),
        stop_reason: rec
            .closed()
            .then(|| meta.segment.stop_reason.clone())
            .flatten(),
        status: status(rec, duration_ns),
        events_per_stage: count_kinds(rec)?,
        duration_ns,
        meta,
    })
}

/// The status line: a closed recording says why it stopped (a recording stopped by
/// `disk-full` or `max-size` is whole up to that point, but shorter than asked); an unclosed
/// one says how much time its finished segments cover.
fn status(rec: &Recording, duration_ns: u64) -> String {
    // Older segments deleted by the recorder's rolling window: the recording starts later.
    let window = rec.rolled_out().map_or(String::new(), |(n, keep)| {
        format!("; starts at segment {n}: the older ones rolled out of the --keep {keep} window")
    });
    if rec.closed() {
        let meta = rec.meta();
        let why = meta
            .segment
            .stop_reason
            .clone()
            .unwrap_or_else(|| "unknown".into());
        let trigger = meta.segment.trigger.as_ref().map_or(String::new(), |t| {
            format!(
                "; a window saved by trigger {}",
                crate::units::trigger(t, meta.mono_to_wall_ns)
            )
        });
        return format!("closed (stopped: {why}){trigger}{window}");
    }
    format!(
        "NOT CLOSED: the recorder did not finish this recording (killed?); {} finished \
         segment(s) cover {}{}",
        rec.segments.len(),
        ns(duration_ns as f64),
        if rec.unfinished.is_empty() {
            String::new()
        } else {
            format!(
                ", {} unfinished segment file(s) ignored",
                rec.unfinished.len()
            )
        },
    ) + &window
}

/// Runs `info`: one recording in full, or a recording set one line per recording.
pub fn run(args: &InfoArgs, out: &mut impl Write) -> anyhow::Result<i32> {
    let arg = args.rec.to_string_lossy().into_owned();
    let paths = crate::inputs::expand(std::slice::from_ref(&arg))?;
    if paths.len() != 1 || paths[0] != args.rec {
        return run_set(&paths, args.format, out);
    }
    let rec = Recording::open(&args.rec)?;
    let info = gather(&rec)?;
    match args.format {
        InfoFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&info)?)?,
        InfoFormat::Table => write_text(&info, out)?,
    }
    Ok(exit_code::OK)
}

/// `info` of a recording set: per recording its host, kernel, start, span, events, lost events,
/// sampling and status (JSON: every recording's full `info`).
fn run_set(
    paths: &[std::path::PathBuf],
    format: InfoFormat,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    let infos = paths
        .iter()
        .map(|p| gather(&Recording::open(p)?))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if format == InfoFormat::Json {
        writeln!(out, "{}", serde_json::to_string_pretty(&infos)?)?;
        return Ok(exit_code::OK);
    }
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
    t.set_header([
        "host",
        "kernel",
        "start",
        "span",
        "events",
        "lost",
        "sampling",
        "status",
        "recording",
    ]);
    for i in &infos {
        let m = &i.meta;
        t.add_row([
            m.hostname.clone(),
            m.kernel_release.clone(),
            crate::units::wall(m.start_ns, m.mono_to_wall_ns),
            ns(i.duration_ns as f64),
            i.events.to_string(),
            m.lost.total().to_string(),
            m.sampling.describe(),
            i.status.split(';').next().unwrap_or_default().to_string(),
            i.path.clone(),
        ]);
    }
    writeln!(out, "{} recordings\n{t}", infos.len())?;
    Ok(exit_code::OK)
}

fn or_none(v: String) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v
    }
}

fn write_text(info: &Info, out: &mut impl Write) -> std::io::Result<()> {
    let m = &info.meta;
    let files = if info.segments == 1 {
        "1 file".to_string()
    } else {
        format!("{} segments", info.segments)
    };
    writeln!(
        out,
        "recording    {} ({files}, {}, {} events)",
        info.path,
        bytes(info.bytes),
        info.events
    )?;
    writeln!(
        out,
        "source       {} recording by tcptape {}, schema {}, id {}",
        m.source, m.tool_version, m.schema_version, m.recording_id
    )?;
    writeln!(
        out,
        "host         {}, kernel {}",
        m.hostname, m.kernel_release
    )?;
    writeln!(
        out,
        "time         {} → {} ({})",
        wall(m.start_ns, m.mono_to_wall_ns),
        wall(m.end_ns, m.mono_to_wall_ns),
        ns(info.duration_ns as f64)
    )?;
    writeln!(out, "status       {}", info.status)?;
    let lost = m.lost.total();
    let per_cpu = m
        .lost
        .ring_per_cpu
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(" ");
    writeln!(
        out,
        "lost events  {lost}{}",
        if lost > 0 || !m.lost.ring_per_cpu.is_empty() {
            format!(
                " (ring buffer per CPU: [{per_cpu}], writer queue: {})",
                m.lost.writer_queue
            )
        } else {
            String::new()
        }
    )?;
    if !m.lost.missed_runs.is_empty() {
        let runs = m
            .lost
            .missed_runs
            .iter()
            .map(|(stage, n)| format!("{stage} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        writeln!(
            out,
            "             program runs skipped by the kernel: {runs}"
        )?;
    }
    writeln!(
        out,
        "sampling     {}",
        if m.sampling.sampled() {
            format!(
                "{} (counts below are of the sampled flows; 'seen by the kernel' counts \
                 before sampling)",
                m.sampling.describe()
            )
        } else {
            m.sampling.describe()
        }
    )?;
    let f = &m.filters;
    let mut filters = Vec::new();
    filters.extend(f.ports.iter().map(|p| format!("port {p}")));
    filters.extend(f.addrs.iter().map(|a| format!("addr {a}")));
    filters.extend(f.pids.iter().map(|p| format!("pid {p}")));
    filters.extend(f.netns.iter().map(|n| format!("netns {n}")));
    filters.extend(f.ifaces.iter().map(|i| format!("iface {i}")));
    // With the workload the path names, when it is in a known layout.
    filters.extend(
        f.cgroups
            .iter()
            .map(|c| match tcptape_common::cgroup_identity::recognize(c) {
                Some(id) => format!("cgroup {c} ({})", id.describe()),
                None => format!("cgroup {c}"),
            }),
    );
    if !f.stages.is_empty() {
        filters.push(format!("stages {}", f.stages.join(" ")));
    }
    writeln!(out, "filters      {}", or_none(filters.join(", ")))?;
    let a = &m.anonymization;
    let mut anon = Vec::new();
    if a.addresses {
        anon.push("addresses");
    }
    if a.ports {
        anon.push("ports");
    }
    if a.tasks {
        anon.push("pid/comm");
    }
    writeln!(out, "anonymized   {}", or_none(anon.join(", ")))?;
    // The cgroups the events name: what --cgroup and --container choose from.
    for (i, c) in m.cgroups.iter().enumerate() {
        let head = if i == 0 {
            "cgroups     "
        } else {
            "            "
        };
        let line = match (&c.identity, &c.path) {
            (Some(w), Some(p)) => format!("{p} ({})", w.describe()),
            (None, Some(p)) => p.clone(),
            _ => c.label(),
        };
        writeln!(out, "{head} {line}")?;
    }
    if m.ring_bytes > 0 {
        writeln!(out, "ring buffer  {}", bytes(m.ring_bytes))?;
    }
    let e = &m.environment;
    writeln!(
        out,
        "environment  kernel {}, congestion control {}, tcp_rmem [{}], tcp_wmem [{}]",
        or_none(e.kernel_release.clone()),
        or_none(e.congestion_control.clone()),
        e.tcp_rmem,
        e.tcp_wmem
    )?;
    let flag = |v: Option<bool>| match v {
        Some(true) => "on",
        Some(false) => "off",
        None => "?",
    };
    for i in &e.interfaces {
        writeln!(
            out,
            "             {} (ifindex {}): gro {}, tso {}, gso {}",
            i.name,
            i.ifindex,
            flag(i.gro),
            flag(i.tso),
            flag(i.gso)
        )?;
    }

    if !m.attach_plan.is_empty() {
        writeln!(out, "\nattach plan")?;
        let mut t = Table::new();
        t.load_preset(UTF8_BORDERS_ONLY).set_header([
            "stage",
            "mechanism",
            "target",
            "other attempts",
        ]);
        for s in &m.attach_plan {
            let chosen = s.attempts.iter().find(|a| a.error.is_none());
            let others = s
                .attempts
                .iter()
                .filter(|a| a.error.is_some())
                .map(|a| {
                    format!(
                        "{} {}: {}",
                        a.mechanism,
                        a.target,
                        a.error.as_deref().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            let mechanism = match (&s.chosen, m.filters.keeps_stage(&s.stage)) {
                (Some(c), true) => c.clone(),
                (None, true) => "UNAVAILABLE".into(),
                // Attached for --pid/--iface, its events dropped.
                (Some(c), false) => format!("{c}, not kept"),
                (None, false) => "not requested".into(),
            };
            t.add_row([
                s.stage.clone(),
                mechanism,
                chosen.map(|a| a.target.clone()).unwrap_or_default(),
                others,
            ]);
        }
        writeln!(out, "{t}")?;
    } else {
        writeln!(
            out,
            "attach plan  none recorded{}",
            if m.source == "synth" {
                " (synthetic recording)"
            } else {
                ""
            }
        )?;
    }

    writeln!(out, "\nevents per stage")?;
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY).set_header([
        "stage",
        "recorded",
        "seen by the kernel",
        "not recorded",
    ]);
    let mut names: Vec<&String> = info.events_per_stage.keys().chain(m.seen.keys()).collect();
    names.sort_by_key(|n| {
        (
            n.parse::<Stage>().map(|s| s.code()).unwrap_or(u8::MAX),
            n.to_string(),
        )
    });
    names.dedup();
    for name in names {
        let recorded = info.events_per_stage.get(name).copied().unwrap_or(0);
        let seen = m.seen.get(name).copied();
        t.add_row([
            name.clone(),
            recorded.to_string(),
            seen.map_or_else(|| "-".into(), |n| n.to_string()),
            // Sampled out, filtered out after the kernel saw them, or lost.
            seen.map_or_else(|| "-".into(), |n| n.saturating_sub(recorded).to_string()),
        ]);
    }
    writeln!(out, "{t}")
}
