//! The BPF programs a process holds, as the kernel reports them: what a recorder really
//! attached, not what its metadata says.

use std::collections::BTreeSet;

/// The names of the BPF programs process `pid` holds a file descriptor of (a program or a link
/// to one), from `/proc/PID/fdinfo` and `bpftool prog show id`.
pub fn held_by(pid: u32) -> Result<BTreeSet<String>, String> {
    let dir = format!("/proc/{pid}/fdinfo");
    let mut ids = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).map_err(|e| format!("{dir}: {e}"))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        // A descriptor closed meanwhile is no program.
        let Ok(info) = std::fs::read_to_string(&path) else {
            continue;
        };
        for line in info.lines() {
            if let Some(id) = line.strip_prefix("prog_id:") {
                ids.insert(id.trim().to_string());
            }
        }
    }
    ids.iter()
        .map(|id| {
            let json = crate::netns::run("bpftool", &["prog", "show", "id", id, "--json"])?;
            let v: serde_json::Value = serde_json::from_str(&json).map_err(|e| e.to_string())?;
            v["name"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("bpftool gave no name for program {id}: {json}"))
        })
        .collect()
}
