//! The cgroup ids the events carry, turned into paths and workload identities while recording:
//! a container's cgroup is gone soon after the container, so each id is looked up when it is
//! first seen, not at the end.

use std::collections::{BTreeMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use tcptape_common::cgroup_identity::recognize;
use tcptape_common::event::{valid, RawEvent};
use tcptape_common::metadata::CgroupName;

/// Every cgroup id seen so far, with its name once looked up.
#[derive(Debug, Default)]
pub struct CgroupNames {
    mount: Option<PathBuf>,
    names: BTreeMap<u64, CgroupName>,
    pending: HashSet<u64>,
}

impl CgroupNames {
    /// Names looked up in the cgroup v2 hierarchy mounted at `mount` (none: ids only).
    pub fn new(mount: Option<PathBuf>) -> CgroupNames {
        CgroupNames {
            mount,
            ..CgroupNames::default()
        }
    }

    /// The same, knowing these names already (a synthetic recording's).
    pub fn knowing(mut self, names: &[CgroupName]) -> CgroupNames {
        self.names.extend(names.iter().map(|n| (n.id, n.clone())));
        self
    }

    /// Notes the cgroups of these events and looks up the new ones (one walk of the hierarchy,
    /// stopped once all are found).
    pub fn note(&mut self, events: &[RawEvent]) {
        // Consecutive events mostly name the same cgroups: a map lookup only when the
        // socket's or the task's changes (one `last` for both made every event with both a
        // lookup when they differ).
        let mut last = [None; 2];
        for e in events {
            for (k, bit, id) in [
                (0, valid::CGROUP, e.cgroup),
                (1, valid::TASK_CGROUP, e.task_cgroup),
            ] {
                if !e.has(bit) || last[k] == Some(id) {
                    continue;
                }
                last[k] = Some(id);
                if !self.names.contains_key(&id) {
                    self.pending.insert(id);
                }
            }
        }
        if !self.pending.is_empty() {
            let mut wanted = std::mem::take(&mut self.pending);
            let mut found = BTreeMap::new();
            if let Some(mount) = &self.mount {
                walk(mount, "", &mut wanted, &mut found, 0);
            }
            for id in wanted {
                found.insert(id, None);
            }
            for (id, path) in found {
                let identity = path.as_deref().and_then(recognize);
                self.names.insert(id, CgroupName { id, path, identity });
            }
        }
    }

    /// Every cgroup seen, by id.
    pub fn names(&self) -> Vec<CgroupName> {
        self.names.values().cloned().collect()
    }
}

/// Depth past which the walk stops: cgroup trees are shallow (Kubernetes: 5 levels).
const MAX_DEPTH: usize = 32;

fn walk(
    dir: &Path,
    path: &str,
    wanted: &mut HashSet<u64>,
    found: &mut BTreeMap<u64, Option<String>>,
    depth: usize,
) {
    if wanted.is_empty() || depth > MAX_DEPTH {
        return;
    }
    if let Ok(meta) = std::fs::metadata(dir) {
        if wanted.remove(&meta.ino()) {
            let shown = if path.is_empty() { "/" } else { path };
            found.insert(meta.ino(), Some(shown.to_string()));
        }
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            let name = entry.file_name().to_string_lossy().into_owned();
            walk(
                &entry.path(),
                &format!("{path}/{name}"),
                wanted,
                found,
                depth + 1,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(cgroup: u64, task: Option<u64>) -> RawEvent {
        let mut e = RawEvent {
            cgroup,
            valid: valid::CGROUP,
            ..Default::default()
        };
        if let Some(t) = task {
            e.task_cgroup = t;
            e.valid |= valid::TASK_CGROUP;
        }
        e
    }

    #[test]
    fn ids_are_named_by_the_directories_with_their_inode_and_recognised() {
        let root = tempfile::tempdir().unwrap();
        let pod = root
            .path()
            .join("kubepods.slice/kubepods-besteffort.slice")
            .join("kubepods-besteffort-pod1b4e28ba_2fa1_11d2_883f_0016d3cca427.slice")
            .join(format!("cri-containerd-{}.scope", "3f2a9c1b".repeat(8)));
        std::fs::create_dir_all(&pod).unwrap();
        std::fs::create_dir_all(root.path().join("plain/dir")).unwrap();
        let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
        let mut names = CgroupNames::new(Some(root.path().to_path_buf()));
        names.note(&[
            event(ino(&pod), Some(ino(&root.path().join("plain/dir")))),
            event(ino(root.path()), None),
            event(7, None), // no such directory: gone before it was looked up
        ]);
        let got = names.names();
        assert_eq!(got.len(), 4);
        let by_id = |id: u64| got.iter().find(|n| n.id == id).unwrap();
        let container = by_id(ino(&pod));
        assert!(container
            .path
            .as_deref()
            .unwrap()
            .starts_with("/kubepods.slice/kubepods-besteffort.slice/"));
        let identity = container.identity.as_ref().unwrap();
        assert_eq!(identity.runtime.as_deref(), Some("containerd"));
        assert_eq!(
            identity.pod_uid.as_deref(),
            Some("1b4e28ba-2fa1-11d2-883f-0016d3cca427")
        );
        let plain = by_id(ino(&root.path().join("plain/dir")));
        assert_eq!(plain.path.as_deref(), Some("/plain/dir"));
        assert_eq!(plain.identity, None);
        assert_eq!(by_id(ino(root.path())).path.as_deref(), Some("/"));
        assert_eq!(by_id(7).path, None);
        assert_eq!(by_id(7).label(), "cgroup 7 (no path)");
        // Known ids are not looked up again.
        std::fs::create_dir_all(root.path().join("late")).unwrap();
        names.note(&[event(7, None)]);
        assert_eq!(names.names().len(), 4);
    }
}
