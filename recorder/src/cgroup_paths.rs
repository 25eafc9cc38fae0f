//! `--cgroup PATH`: a cgroup v2 directory turned into what the programs compare (its id, the
//! inode number of the directory, and its depth below the root), or one sentence saying why not.

use std::path::{Component, Path};

/// A cgroup the recording is restricted to, with its descendants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupTarget {
    /// The path below the cgroup v2 root, with a leading `/` (as `/proc/PID/cgroup` shows it).
    pub path: String,
    /// The cgroup's id: its directory's inode number.
    pub id: u64,
    /// Its depth: 0 for the root, 1 for a directory just below it.
    pub level: u32,
}

/// Resolves `--cgroup ARG`: a path below the cgroup v2 root (`system.slice/nginx.service`,
/// `/kubepods.slice`), or a full path into its mount (`/sys/fs/cgroup/system.slice`); `mount` is
/// where the hierarchy is ([`tcptape_common::metadata::host::cgroup2_mount`]).
pub fn resolve(arg: &str, mount: Option<&Path>) -> Result<CgroupTarget, String> {
    use std::os::unix::fs::MetadataExt;
    let mount = mount
        .ok_or_else(|| format!("--cgroup {arg}: this host has no cgroup v2 hierarchy mounted"))?;
    let given = Path::new(arg);
    let below = match given.strip_prefix(mount) {
        Ok(rest) => rest.to_path_buf(),
        // `/system.slice` is a path below the root, as /proc/PID/cgroup writes it.
        Err(_) => given.strip_prefix("/").unwrap_or(given).to_path_buf(),
    };
    let mut parts = Vec::new();
    for c in below.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::CurDir => {}
            _ => {
                return Err(format!(
                    "--cgroup {arg}: give a path below the cgroup v2 root, without `..`"
                ))
            }
        }
    }
    let dir = parts.iter().fold(mount.to_path_buf(), |d, p| d.join(p));
    let meta = std::fs::metadata(&dir)
        .ok()
        .filter(|m| m.is_dir() && dir.join("cgroup.procs").exists())
        .ok_or_else(|| {
            format!(
                "--cgroup {arg}: there is no cgroup {} (the cgroup v2 hierarchy is mounted at {})",
                dir.display(),
                mount.display()
            )
        })?;
    Ok(CgroupTarget {
        path: format!("/{}", parts.join("/")),
        id: meta.ino(),
        level: parts.len() as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::path::PathBuf;
    use tcptape_common::metadata::host::cgroup2_mount_in;

    #[test]
    fn the_cgroup2_mount_is_found_on_unified_and_hybrid_hosts() {
        let unified = "29 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            cgroup2_mount_in(unified),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
        let hybrid = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
                      32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n\
                      41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup2_mount_in(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(
            cgroup2_mount_in("32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw\n"),
            None
        );
    }

    #[test]
    fn paths_resolve_below_the_root_or_in_the_mount_and_missing_ones_are_refused() {
        // A directory that looks like a cgroup v2 root, built here.
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("system.slice/web.service");
        std::fs::create_dir_all(&dir).unwrap();
        for d in [root.path(), &root.path().join("system.slice"), &dir] {
            std::fs::write(d.join("cgroup.procs"), "").unwrap();
        }
        use std::os::unix::fs::MetadataExt;
        let ino = std::fs::metadata(&dir).unwrap().ino();
        let want = CgroupTarget {
            path: "/system.slice/web.service".into(),
            id: ino,
            level: 2,
        };
        let m = Some(root.path());
        assert_eq!(resolve("system.slice/web.service", m).unwrap(), want);
        assert_eq!(resolve("/system.slice/web.service", m).unwrap(), want);
        assert_eq!(resolve(dir.to_str().unwrap(), m).unwrap(), want);
        assert_eq!(resolve("/", m).unwrap().level, 0);
        let e = resolve("system.slice/db.service", m).unwrap_err();
        assert!(
            e.contains("there is no cgroup") && e.contains("db.service"),
            "{e}"
        );
        assert!(resolve("system.slice/../x", m)
            .unwrap_err()
            .contains("without `..`"));
        assert!(resolve("x", None).unwrap_err().contains("no cgroup v2"));
    }
}
