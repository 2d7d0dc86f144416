//! Who a memory cgroup belongs to, from its path: a Kubernetes pod and
//! container (both kubelet cgroup drivers), a systemd service, a container
//! outside Kubernetes. Only what the path shows; no guesses.

use crate::report::{CgroupDriver, ContainerRuntime, K8s, K8sLevel, Qos, Service, ServiceKind};

/// Identifies a cgroup path (`/a/b/c`). The Kubernetes part may sit
/// anywhere below the root (a custom `--cgroup-root`, a nested runtime).
pub fn identify(path: &str) -> (Option<K8s>, Option<Service>) {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if let Some(k8s) = systemd_driver(&parts).or_else(|| cgroupfs_driver(&parts)) {
        return (Some(k8s), None);
    }
    (None, service(&parts))
}

/// The kubelet's top cgroup itself, before the path says more.
fn node_level(cgroup_driver: CgroupDriver) -> K8s {
    K8s {
        level: K8sLevel::Node,
        qos: None,
        pod_uid: None,
        container_id: None,
        runtime: None,
        cgroup_driver,
        namespace: None,
        pod_name: None,
        container_name: None,
    }
}

/// `kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid with
/// _>.slice/cri-containerd-<id>.scope`; Guaranteed pods sit directly at
/// `kubepods.slice/kubepods-pod<uid>.slice`.
fn systemd_driver(parts: &[&str]) -> Option<K8s> {
    let start = parts.iter().position(|p| *p == "kubepods.slice")?;
    let mut k8s = node_level(CgroupDriver::Systemd);
    let rest = &parts[start + 1..];
    let mut rest = rest.iter();
    let Some(next) = rest.next() else {
        return Some(k8s);
    };
    let pod_slice = match *next {
        "kubepods-burstable.slice" | "kubepods-besteffort.slice" => {
            let (qos, name) = if next.contains("burstable") {
                (Qos::Burstable, "burstable")
            } else {
                (Qos::Besteffort, "besteffort")
            };
            k8s.qos = Some(qos);
            k8s.level = K8sLevel::Qos;
            match rest.next() {
                Some(pod) => pod
                    .strip_prefix(&format!("kubepods-{name}-pod"))
                    .and_then(|p| p.strip_suffix(".slice")),
                None => return Some(k8s),
            }
        }
        pod => {
            k8s.qos = Some(Qos::Guaranteed);
            pod.strip_prefix("kubepods-pod")
                .and_then(|p| p.strip_suffix(".slice"))
        }
    };
    // Anything else under kubepods.slice is not a pod we can name.
    let uid = pod_slice.filter(|u| is_pod_uid(&u.replace('_', "-")))?;
    k8s.pod_uid = Some(uid.replace('_', "-"));
    k8s.level = K8sLevel::Pod;
    if let Some(scope) = rest.next() {
        let scope = scope.strip_suffix(".scope")?;
        let (runtime, id) = [
            ("cri-containerd-", ContainerRuntime::Containerd),
            ("crio-conmon-", ContainerRuntime::CriO),
            ("crio-", ContainerRuntime::CriO),
            ("docker-", ContainerRuntime::Docker),
        ]
        .iter()
        .find_map(|(prefix, runtime)| Some((*runtime, scope.strip_prefix(prefix)?)))?;
        if !is_container_id(id) {
            return None;
        }
        k8s.runtime = Some(runtime);
        k8s.container_id = Some(id.to_string());
        k8s.level = K8sLevel::Container;
    }
    Some(k8s)
}

/// `kubepods/burstable/pod<uid>/<id>`, `kubepods/besteffort/pod<uid>/<id>`,
/// `kubepods/pod<uid>/<id>` (Guaranteed).
fn cgroupfs_driver(parts: &[&str]) -> Option<K8s> {
    let start = parts.iter().position(|p| *p == "kubepods")?;
    let mut k8s = node_level(CgroupDriver::Cgroupfs);
    let mut rest = parts[start + 1..].iter();
    let Some(next) = rest.next() else {
        return Some(k8s);
    };
    let pod = match *next {
        "burstable" | "besteffort" => {
            k8s.qos = Some(if *next == "burstable" {
                Qos::Burstable
            } else {
                Qos::Besteffort
            });
            k8s.level = K8sLevel::Qos;
            match rest.next() {
                Some(pod) => *pod,
                None => return Some(k8s),
            }
        }
        pod => {
            k8s.qos = Some(Qos::Guaranteed);
            pod
        }
    };
    let uid = pod.strip_prefix("pod").filter(|u| is_pod_uid(u))?;
    k8s.pod_uid = Some(uid.to_string());
    k8s.level = K8sLevel::Pod;
    if let Some(id) = rest.next() {
        if !is_container_id(id) {
            return None;
        }
        k8s.container_id = Some((*id).to_string());
        k8s.level = K8sLevel::Container;
    }
    Some(k8s)
}

fn service(parts: &[&str]) -> Option<Service> {
    let leaf = *parts.last()?;
    let parent = parts.len().checked_sub(2).map(|i| parts[i]);
    if let Some(id) = leaf
        .strip_prefix("docker-")
        .and_then(|s| s.strip_suffix(".scope"))
        && is_container_id(id)
    {
        return Some(Service::from_path(
            ServiceKind::DockerContainer,
            id.to_string(),
        ));
    }
    if parent == Some("docker") && is_container_id(leaf) {
        return Some(Service::from_path(
            ServiceKind::DockerContainer,
            leaf.to_string(),
        ));
    }
    // podman's monitor of a container (conmon) with the systemd cgroup
    // manager. With cgroupfs every conmon shares `/libpod_parent/conmon`,
    // which names no container.
    if let Some(id) = leaf
        .strip_prefix("libpod-conmon-")
        .and_then(|s| s.strip_suffix(".scope"))
        && is_container_id(id)
    {
        return Some(Service::from_path(
            ServiceKind::PodmanConmon,
            id.to_string(),
        ));
    }
    // nerdctl (containerd) with the systemd cgroup manager.
    if let Some(id) = leaf
        .strip_prefix("nerdctl-")
        .and_then(|s| s.strip_suffix(".scope"))
        && is_container_id(id)
    {
        return Some(Service::from_path(
            ServiceKind::ContainerdContainer,
            id.to_string(),
        ));
    }
    // podman: `machine.slice/libpod-<id>.scope` with the systemd cgroup
    // manager, `/libpod_parent/libpod-<id>` with cgroupfs.
    if let Some(id) = leaf.strip_prefix("libpod-").and_then(|s| {
        s.strip_suffix(".scope")
            .or_else(|| (parent == Some("libpod_parent")).then_some(s))
    }) && is_container_id(id)
    {
        return Some(Service::from_path(
            ServiceKind::PodmanContainer,
            id.to_string(),
        ));
    }
    if leaf.ends_with(".service") && leaf.len() > ".service".len() {
        return Some(Service::from_path(
            ServiceKind::SystemdService,
            leaf.to_string(),
        ));
    }
    if leaf.ends_with(".scope") && leaf.len() > ".scope".len() {
        return Some(Service::from_path(
            ServiceKind::SystemdScope,
            leaf.to_string(),
        ));
    }
    None
}

/// containerd outside Kubernetes with cgroupfs (nerdctl, `ctr run
/// --cgroup /<namespace>/<id>`): `/<namespace>/<id>` -> (namespace, id).
/// The shape alone could be any tool's (Docker with `--cgroup-parent=/x`
/// makes `/x/<id>`), so the caller checks containerd's own task state
/// before saying it is containerd's.
pub fn containerd_shape(path: &str) -> Option<(&str, &str)> {
    let mut parts = path.split('/').filter(|p| !p.is_empty());
    let (Some(namespace), Some(id), None) = (parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    // containerd's namespace rule: alphanumeric words joined by `.`, `_`
    // or `-`.
    let words_ok = namespace
        .split(['.', '_', '-'])
        .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_alphanumeric()));
    (words_ok && is_container_id(id) && namespace.len() <= 76).then_some((namespace, id))
}

/// A pod UID: a 36-character UUID.
fn is_pod_uid(uid: &str) -> bool {
    let groups: Vec<&str> = uid.split('-').collect();
    groups.len() == 5
        && groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A container id: 64 hex digits.
fn is_container_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "0f0e7c1a-3b2d-4c5e-8f9a-0123456789ab";
    const ID: &str = "4f3b7d8ce2a9c1b0d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8";

    fn k8s(path: &str) -> Option<K8s> {
        identify(path).0
    }

    #[test]
    fn systemd_driver_paths() {
        let uid_ = UID.replace('-', "_");
        let cases = [
            (
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice/cri-containerd-{ID}.scope"
                ),
                "container",
                Some("burstable"),
                Some("containerd"),
            ),
            (
                format!(
                    "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid_}.slice/crio-{ID}.scope"
                ),
                "container",
                Some("besteffort"),
                Some("cri-o"),
            ),
            (
                format!(
                    "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid_}.slice/crio-conmon-{ID}.scope"
                ),
                "container",
                Some("besteffort"),
                Some("cri-o"),
            ),
            (
                format!("/kubepods.slice/kubepods-pod{uid_}.slice/docker-{ID}.scope"),
                "container",
                Some("guaranteed"),
                Some("docker"),
            ),
            (
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice"
                ),
                "pod",
                Some("burstable"),
                None,
            ),
        ];
        for (path, level, qos, runtime) in cases {
            let k = k8s(&path).unwrap_or_else(|| panic!("{path}"));
            assert_eq!(
                (
                    k.level.name(),
                    k.qos.map(Qos::name),
                    k.runtime.map(ContainerRuntime::name),
                    k.cgroup_driver.name()
                ),
                (level, qos, runtime, "systemd"),
                "{path}"
            );
            assert_eq!(k.pod_uid.as_deref(), Some(UID), "dashes back: {path}");
            assert_eq!(k.container_id.is_some(), level == "container", "{path}");
        }
        let qos = k8s("/kubepods.slice/kubepods-burstable.slice").expect("qos level");
        assert_eq!(
            (qos.level.name(), qos.qos.map(Qos::name), qos.pod_uid),
            ("qos", Some("burstable"), None)
        );
        assert_eq!(
            k8s("/kubepods.slice").map(|k| k.level),
            Some(K8sLevel::Node)
        );
    }

    #[test]
    fn cgroupfs_driver_paths() {
        for (path, qos) in [
            (format!("/kubepods/burstable/pod{UID}/{ID}"), "burstable"),
            (format!("/kubepods/besteffort/pod{UID}/{ID}"), "besteffort"),
            (format!("/kubepods/pod{UID}/{ID}"), "guaranteed"),
        ] {
            let k = k8s(&path).unwrap_or_else(|| panic!("{path}"));
            assert_eq!(
                (
                    k.level.name(),
                    k.qos.map(Qos::name),
                    k.cgroup_driver.name(),
                    k.runtime
                ),
                ("container", Some(qos), "cgroupfs", None)
            );
            assert_eq!(
                (k.pod_uid.as_deref(), k.container_id.as_deref()),
                (Some(UID), Some(ID))
            );
        }
        let pod = k8s(&format!("/kubepods/burstable/pod{UID}")).expect("pod level");
        assert_eq!((pod.level, pod.container_id), (K8sLevel::Pod, None));
    }

    #[test]
    fn a_prefix_before_kubepods_is_fine() {
        let path = format!("/oomtrace-test-1-0-k8s/kubepods/besteffort/pod{UID}/{ID}");
        assert_eq!(k8s(&path).and_then(|k| k.pod_uid).as_deref(), Some(UID));
    }

    #[test]
    fn near_misses_are_not_guessed() {
        let uid_ = UID.replace('-', "_");
        for path in [
            format!("/kubepods/burstable/pod{}/{ID}", &UID[..30]),
            format!("/kubepods/burstable/pod{UID}/{}", &ID[..12]),
            format!("/kubepods/burstable/pod{UID}/not-a-container"),
            format!("/kubepods.slice/kubepods-burstable.slice/kubepods-besteffort-pod{uid_}.slice"),
            format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice/runc-{ID}.scope"
            ),
            "/kubepods.slice/system-something.slice".to_string(),
            "/podkubepods/x".to_string(),
        ] {
            assert_eq!(k8s(&path), None, "{path}");
        }
    }

    #[test]
    fn services_and_plain_containers() {
        let service = |p: &str| identify(p).1.map(|s| (s.kind.name(), s.name));
        assert_eq!(
            service("/system.slice/nginx.service"),
            Some(("systemd_service", "nginx.service".into()))
        );
        assert_eq!(
            service("/user.slice/user-1000.slice/session-3.scope"),
            Some(("systemd_scope", "session-3.scope".into()))
        );
        assert_eq!(
            service(&format!("/system.slice/docker-{ID}.scope")),
            Some(("docker_container", ID.into()))
        );
        assert_eq!(
            service(&format!("/docker/{ID}")),
            Some(("docker_container", ID.into()))
        );
        assert_eq!(
            service(&format!("/machine.slice/libpod-{ID}.scope")),
            Some(("podman_container", ID.into()))
        );
        // podman's cgroupfs manager: no `.scope` (seen for real on this
        // project's host, 2026-12-01).
        assert_eq!(
            service(&format!("/libpod_parent/libpod-{ID}")),
            Some(("podman_container", ID.into()))
        );
        assert_eq!(service(&format!("/elsewhere/libpod-{ID}")), None);
        assert_eq!(
            service(&format!("/machine.slice/libpod-conmon-{ID}.scope")),
            Some(("podman_conmon", ID.into()))
        );
        assert_eq!(
            service(&format!("/system.slice/nerdctl-{ID}.scope")),
            Some(("containerd_container", ID.into()))
        );
        // A shape only: containerd's task state decides (enrich::names).
        assert_eq!(service(&format!("/default/{ID}")), None);
        assert_eq!(
            containerd_shape(&format!("/default/{ID}")),
            Some(("default", ID))
        );
        assert_eq!(
            containerd_shape(&format!("/k8s.io/{ID}")),
            Some(("k8s.io", ID))
        );
        for near in [
            format!("/a/default/{ID}"),
            format!("/{ID}"),
            format!("/de..fault/{ID}"),
            format!("/default/{}", &ID[..12]),
            format!("/default/{ID}/x"),
        ] {
            assert_eq!(containerd_shape(&near), None, "{near}");
        }
        assert_eq!(service("/"), None);
        assert_eq!(service("/oomtrace-test-1"), None);
        assert_eq!(service("/a/.service"), None);
        assert_eq!(
            identify(&format!("/kubepods/pod{UID}/{ID}")).1,
            None,
            "k8s wins"
        );
    }

    fn hex(digits: usize) -> impl proptest::strategy::Strategy<Value = String> {
        proptest::string::string_regex(&format!("[0-9a-f]{{{digits}}}")).expect("regex")
    }

    proptest::proptest! {
        #[test]
        fn any_path_is_identified_or_not_without_panicking(path in "(/[^/]{0,70}){0,8}") {
            let _ = identify(&path);
        }

        #[test]
        fn generated_kubelet_paths_give_back_their_ids(
            prefix in "(/[a-z0-9.-]{1,12}){0,3}",
            groups in (hex(8), hex(4), hex(4), hex(4), hex(12)),
            id in hex(64),
            qos in proptest::sample::select(vec!["burstable", "besteffort", "guaranteed"]),
            systemd in proptest::bool::ANY,
        ) {
            let uid = format!("{}-{}-{}-{}-{}", groups.0, groups.1, groups.2, groups.3, groups.4);
            let path = match (systemd, qos) {
                (true, "guaranteed") => format!(
                    "{prefix}/kubepods.slice/kubepods-pod{}.slice/cri-containerd-{id}.scope",
                    uid.replace('-', "_")
                ),
                (true, qos) => format!(
                    "{prefix}/kubepods.slice/kubepods-{qos}.slice/kubepods-{qos}-pod{}.slice/cri-containerd-{id}.scope",
                    uid.replace('-', "_")
                ),
                (false, "guaranteed") => format!("{prefix}/kubepods/pod{uid}/{id}"),
                (false, qos) => format!("{prefix}/kubepods/{qos}/pod{uid}/{id}"),
            };
            let k = identify(&path).0;
            proptest::prop_assert!(k.is_some(), "{}", path);
            let k = k.expect("checked");
            proptest::prop_assert_eq!(k.qos.map(Qos::name), Some(qos));
            proptest::prop_assert_eq!(k.pod_uid.as_deref(), Some(uid.as_str()));
            proptest::prop_assert_eq!(k.container_id.as_deref(), Some(id.as_str()));
            proptest::prop_assert_eq!(k.level, K8sLevel::Container);
        }
    }
}
