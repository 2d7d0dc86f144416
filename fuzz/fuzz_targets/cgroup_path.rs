//! Cgroup paths (enrich/workload.rs `identify`): any process can create a
//! cgroup with a name of its choosing under a delegated subtree. Arbitrary
//! paths must give only names the path shows; pod and container paths of
//! both kubelet drivers, docker, podman and systemd must be recognised.
#![no_main]

use libfuzzer_sys::{
    arbitrary::{self, Unstructured},
    fuzz_target,
};
use oomtrace::enrich::workload::identify;
use serde_json::{Value, json};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn pod_uid(bytes: &[u8; 16]) -> String {
    let h = hex(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Invariants of whatever `identify` returns for any path.
fn check_any(path: &str) {
    let (k8s, service) = identify(path);
    assert!(
        k8s.is_none() || service.is_none(),
        "{path}: both k8s and service"
    );
    let components: Vec<&str> = path.split('/').collect();
    if let Some(k8s) = k8s {
        let k8s = serde_json::to_value(&k8s).expect("serializes");
        let level = k8s["level"].as_str().expect("level is a string");
        assert!(
            ["node", "qos", "pod", "container"].contains(&level),
            "{path}: {k8s}"
        );
        let driver = k8s["cgroup_driver"].as_str().expect("driver");
        assert!(["systemd", "cgroupfs"].contains(&driver), "{path}: {k8s}");
        assert!(
            [
                Value::Null,
                json!("guaranteed"),
                json!("burstable"),
                json!("besteffort")
            ]
            .contains(&k8s["qos"]),
            "{path}: {k8s}"
        );
        assert_eq!(k8s["qos"].is_null(), level == "node", "{path}: {k8s}");
        assert_eq!(
            k8s["pod_uid"].is_string(),
            level == "pod" || level == "container"
        );
        assert_eq!(k8s["container_id"].is_string(), level == "container");
        if let Some(uid) = k8s["pod_uid"].as_str() {
            assert_eq!(uid.len(), 36, "{path}: {k8s}");
            // The systemd driver writes the uid's dashes as underscores.
            assert!(path.replace('_', "-").contains(uid), "{path}: {k8s}");
        }
        if let Some(id) = k8s["container_id"].as_str() {
            assert!(id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()));
            assert!(components.iter().any(|c| c.contains(id)), "{path}: {k8s}");
        }
        if !k8s["runtime"].is_null() {
            assert_eq!(driver, "systemd", "{path}: {k8s}");
        }
        // Names come from the kubelet's log directories, never the path.
        for key in ["namespace", "pod_name", "container_name"] {
            assert!(k8s[key].is_null(), "{path}: {k8s}");
        }
    }
    if let Some(service) = service {
        let service = serde_json::to_value(&service).expect("serializes");
        let name = service["name"].as_str().expect("name");
        let leaf = components
            .iter()
            .rev()
            .find(|c| !c.is_empty())
            .expect("a leaf");
        assert!(!name.is_empty() && leaf.contains(name), "{path}: {service}");
    }
}

/// A path of a known layout below arbitrary (non-kubelet) parents.
fn check_layout(u: &mut Unstructured) -> arbitrary::Result<()> {
    let parents: Vec<String> = u.arbitrary()?;
    let parents: Vec<String> = parents
        .into_iter()
        .take(3)
        .map(|p| p.replace('/', ""))
        .filter(|p| !p.is_empty() && !p.starts_with("kubepods"))
        .collect();
    let uid = pod_uid(&u.arbitrary()?);
    let id = hex(&u.arbitrary::<[u8; 32]>()?);
    let qos = *u.choose(&["guaranteed", "burstable", "besteffort"])?;
    let systemd: bool = u.arbitrary()?;
    let mut parts = parents.clone();
    let runtime = if systemd {
        parts.push("kubepods.slice".into());
        let pod = uid.replace('-', "_");
        if qos == "guaranteed" {
            parts.push(format!("kubepods-pod{pod}.slice"));
        } else {
            parts.push(format!("kubepods-{qos}.slice"));
            parts.push(format!("kubepods-{qos}-pod{pod}.slice"));
        }
        let (prefix, runtime) = *u.choose(&[
            ("cri-containerd-", "containerd"),
            ("crio-", "cri-o"),
            ("docker-", "docker"),
        ])?;
        parts.push(format!("{prefix}{id}.scope"));
        json!(runtime)
    } else {
        parts.push("kubepods".into());
        if qos != "guaranteed" {
            parts.push(qos.into());
        }
        parts.push(format!("pod{uid}"));
        parts.push(id.clone());
        Value::Null
    };
    let path = format!("/{}", parts.join("/"));
    let (k8s, service) = identify(&path);
    let k8s = serde_json::to_value(k8s.expect("a pod path is Kubernetes")).expect("serializes");
    assert!(service.is_none());
    assert_eq!(k8s["level"], "container", "{path}: {k8s}");
    assert_eq!(k8s["qos"], qos, "{path}: {k8s}");
    assert_eq!(k8s["pod_uid"], uid.as_str(), "{path}: {k8s}");
    assert_eq!(k8s["container_id"], id.as_str(), "{path}: {k8s}");
    assert_eq!(k8s["runtime"], runtime, "{path}: {k8s}");
    assert_eq!(
        k8s["cgroup_driver"],
        if systemd { "systemd" } else { "cgroupfs" }
    );
    // The same container outside Kubernetes: docker (both drivers), podman.
    let parent = format!("/{}", parents.join("/"));
    for (path, kind) in [
        (format!("{parent}/docker/{id}"), "docker_container"),
        (
            format!("{parent}/system.slice/docker-{id}.scope"),
            "docker_container",
        ),
        (
            format!("{parent}/machine.slice/libpod-{id}.scope"),
            "podman_container",
        ),
        (
            format!("{parent}/libpod_parent/libpod-{id}"),
            "podman_container",
        ),
    ] {
        let service = identify(&path).1.expect("a container path is a service");
        let service = serde_json::to_value(service).expect("serializes");
        // The path names the runtime and the id; the runtime's own names
        // come later, from its API, never from the path.
        assert_eq!(
            service,
            json!({"kind": kind, "name": id, "container_name": null, "image": null, "labels": null}),
            "{path}"
        );
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    if let Ok(path) = std::str::from_utf8(data) {
        check_any(path);
    }
    let _ = check_layout(&mut Unstructured::new(data));
});
