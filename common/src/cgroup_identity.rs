//! What a cgroup v2 path says about the workload in it: a container (Docker, containerd, CRI-O,
//! Podman), a Kubernetes pod (its UID and QoS class), or a systemd unit. Recognised from the
//! layouts these tools write, never guessed: a path in any other layout has no identity, and the
//! path alone is shown.

use serde::{Deserialize, Serialize};

/// The workload a cgroup belongs to, as its path names it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupIdentity {
    /// `docker`, `containerd`, `cri-o` or `podman`, for a container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// The container id (64 hex digits).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The Kubernetes pod's UID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
    /// The pod's QoS class: `guaranteed`, `burstable` or `besteffort`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qos: Option<String>,
    /// The systemd unit (`nginx.service`, `session-3.scope`), outside containers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

impl CgroupIdentity {
    /// A few words: `containerd container 3f2a9c1b0d4e, Kubernetes pod 1b4e…, QoS burstable`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let (Some(r), Some(c)) = (&self.runtime, &self.container) {
            parts.push(format!("{r} container {}", &c[..c.len().min(12)]));
        }
        if let Some(p) = &self.pod_uid {
            parts.push(format!("Kubernetes pod {p}"));
        }
        if let Some(q) = &self.qos {
            parts.push(format!("QoS {q}"));
        }
        if let Some(u) = &self.unit {
            parts.push(format!("systemd unit {u}"));
        }
        parts.join(", ")
    }
}

/// True for a container id: 64 lower-case hex digits.
fn container_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A pod UID as the kubelet writes it in a path (`_` for `-` under the systemd driver), checked
/// to be one: 8-4-4-4-12 hex digits.
fn pod_uid(s: &str) -> Option<String> {
    let uid = s.replace('_', "-");
    let groups: Vec<&str> = uid.split('-').collect();
    let ok = groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()));
    ok.then_some(uid)
}

/// The container runtime and id of a path component: `docker-ID.scope`,
/// `cri-containerd-ID.scope`, `crio-ID.scope`, `libpod-ID.scope` (systemd driver), or a bare id
/// under a `docker`, `kubepods` or `libpod_parent` parent (cgroupfs driver). Runtime monitors
/// (`crio-conmon-ID.scope`, `libpod-conmon-ID.scope`) are not containers.
fn container_of(component: &str, parents: &[&str]) -> Option<(&'static str, String)> {
    if let Some(scope) = component.strip_suffix(".scope") {
        for (prefix, runtime) in [
            ("docker-", "docker"),
            ("cri-containerd-", "containerd"),
            ("crio-", "cri-o"),
            ("libpod-", "podman"),
        ] {
            if let Some(id) = scope.strip_prefix(prefix).filter(|id| container_id(id)) {
                return Some((runtime, id.to_string()));
            }
        }
        return None;
    }
    if !container_id(component) {
        return None;
    }
    match parents.first().copied() {
        Some("docker") => Some(("docker", component.to_string())),
        Some("libpod_parent") => Some(("podman", component.to_string())),
        // Under a kubelet's cgroupfs layout the runtime is not in the path.
        _ if parents.contains(&"kubepods") => Some(("kubernetes", component.to_string())),
        _ => None,
    }
}

/// The identity a cgroup path names, if it is in a layout known here.
pub fn recognize(path: &str) -> Option<CgroupIdentity> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let mut id = CgroupIdentity::default();
    for (i, part) in parts.iter().enumerate() {
        // Kubernetes, systemd driver: kubepods[-QOS]-pod<UID>.slice.
        if let Some(rest) = part
            .strip_prefix("kubepods-")
            .and_then(|r| r.strip_suffix(".slice"))
        {
            let (qos, pod) = match rest.split_once("-pod") {
                Some((q, p)) => (Some(q), Some(p)),
                None => (None, rest.strip_prefix("pod")),
            };
            if let Some(uid) = pod.and_then(pod_uid) {
                id.pod_uid = Some(uid);
                id.qos = Some(qos.unwrap_or("guaranteed").to_string());
            }
            continue;
        }
        // Kubernetes, cgroupfs driver: kubepods/[QOS/]pod<UID>.
        if let Some(uid) = part.strip_prefix("pod").and_then(pod_uid) {
            if parts[..i].contains(&"kubepods") {
                id.pod_uid = Some(uid);
                id.qos = Some(match parts[i - 1] {
                    q @ ("burstable" | "besteffort") => q.to_string(),
                    _ => "guaranteed".to_string(),
                });
                continue;
            }
        }
        let parents: Vec<&str> = parts[..i].iter().rev().copied().collect();
        if let Some((runtime, cid)) = container_of(part, &parents) {
            id.runtime = Some(runtime.to_string());
            id.container = Some(cid);
            continue;
        }
        // A systemd service or scope that is not a container's (the last one named wins).
        if (part.ends_with(".service") || part.ends_with(".scope")) && id.container.is_none() {
            id.unit = Some(part.to_string());
        }
    }
    (id != CgroupIdentity::default()).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f2a9c1b0d4e5f60718293a4b5c6d7e8f90123456789abcdef0123456789abcd";
    const UID: &str = "1b4e28ba-2fa1-11d2-883f-0016d3cca427";

    fn r(path: &str) -> Option<CgroupIdentity> {
        recognize(path)
    }

    #[test]
    fn containers_of_each_runtime_are_recognised() {
        for (path, runtime) in [
            (format!("/system.slice/docker-{ID}.scope"), "docker"),
            (format!("/docker/{ID}"), "docker"),
            (format!("/machine.slice/libpod-{ID}.scope"), "podman"),
            (format!("/libpod_parent/{ID}"), "podman"),
            (format!("/system.slice/crio-{ID}.scope"), "cri-o"),
            (
                format!("/system.slice/cri-containerd-{ID}.scope"),
                "containerd",
            ),
        ] {
            let id = r(&path).unwrap_or_else(|| panic!("{path}"));
            assert_eq!(id.runtime.as_deref(), Some(runtime), "{path}");
            assert_eq!(id.container.as_deref(), Some(ID), "{path}");
            assert_eq!(id.unit, None, "{path}");
        }
    }

    #[test]
    fn kubernetes_pods_give_their_uid_and_qos_with_either_driver() {
        let uid_ = UID.replace('-', "_");
        let systemd = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice/cri-containerd-{ID}.scope"
        );
        let id = r(&systemd).unwrap();
        assert_eq!(id.pod_uid.as_deref(), Some(UID));
        assert_eq!(id.qos.as_deref(), Some("burstable"));
        assert_eq!(id.runtime.as_deref(), Some("containerd"));
        assert_eq!(
            id.describe(),
            format!("containerd container 3f2a9c1b0d4e, Kubernetes pod {UID}, QoS burstable")
        );
        let guaranteed = format!("/kubepods.slice/kubepods-pod{uid_}.slice/crio-{ID}.scope");
        assert_eq!(r(&guaranteed).unwrap().qos.as_deref(), Some("guaranteed"));
        let besteffort = format!(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid_}.slice"
        );
        let pod = r(&besteffort).unwrap();
        assert_eq!(
            (pod.qos.as_deref(), pod.container),
            (Some("besteffort"), None)
        );
        let cgroupfs = format!("/kubepods/burstable/pod{UID}/{ID}");
        let id = r(&cgroupfs).unwrap();
        assert_eq!(
            (
                id.pod_uid.as_deref(),
                id.qos.as_deref(),
                id.container.as_deref()
            ),
            (Some(UID), Some("burstable"), Some(ID))
        );
        assert_eq!(
            r(&format!("/kubepods/pod{UID}")).unwrap().qos.as_deref(),
            Some("guaranteed")
        );
    }

    #[test]
    fn systemd_units_are_named_and_other_layouts_keep_the_path_only() {
        let unit = r("/system.slice/nginx.service").unwrap();
        assert_eq!(unit.unit.as_deref(), Some("nginx.service"));
        assert_eq!(unit.describe(), "systemd unit nginx.service");
        let session = r("/user.slice/user-1000.slice/session-3.scope").unwrap();
        assert_eq!(session.unit.as_deref(), Some("session-3.scope"));
        // Not a container: a monitor, a short id, an id outside a known parent, a pod UID
        // outside kubepods.
        for path in [
            format!("/system.slice/crio-conmon-{ID}.scope"),
            "/system.slice/docker-3f2a.scope".to_string(),
            format!("/mygroup/{ID}"),
            format!("/pod{UID}"),
            "/".to_string(),
            "/tcptape-test-42/a/inner".to_string(),
        ] {
            let id = r(&path);
            assert!(
                id.as_ref()
                    .is_none_or(|i| i.container.is_none() && i.pod_uid.is_none()),
                "{path}: {id:?}"
            );
        }
        assert_eq!(r("/tcptape-test-42/a/inner"), None);
        assert_eq!(r("/"), None);
    }
}
