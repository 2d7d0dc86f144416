//! Kubernetes pods and containers, and systemd services, named from the
//! cgroup path (and the kubelet's log tree).

use anyhow::{Context as _, Result};
use oomtrace_tests::{
    KernelLog, TestCgroup, Tracer, hog::HogOptions, system::ScratchDir, verify::victim_matches_log,
};

use crate::common::{MIB, fake_pod_ids, oom_domain_matches, oom_kill, record_for, setup, truth};

#[test]
fn kubernetes_pods_and_services_are_named_from_the_cgroup_path() -> Result<()> {
    let _serial = setup();
    // The kubelet's log tree names the cgroupfs pod only: the systemd one
    // must then get null names, not another pod's.
    let logs = ScratchDir::new("kubelet-logs")?;
    let (uid, id) = fake_pod_ids();
    let (named_uid, named_id) = fake_pod_ids();
    let pod_logs = logs
        .path
        .join(format!("pods/shop_cart-7f9c_{named_uid}/api"));
    std::fs::create_dir_all(&pod_logs)?;
    std::fs::create_dir_all(logs.path.join("containers"))?;
    std::fs::write(pod_logs.join("0.log"), "")?;
    std::os::unix::fs::symlink(
        pod_logs.join("0.log"),
        logs.path
            .join(format!("containers/cart-7f9c_shop_api-{named_id}.log")),
    )?;
    let log_dir = logs.path.to_str().context("utf-8 temp dir")?;
    let mut tracer = Tracer::start(&["--kubelet-log-dir", log_dir])?;
    let mut log = KernelLog::open()?;
    let uid_ = uid.replace('-', "_");
    // (driver, pod uid, container id, pod directory, container directory
    // below it, limit on the pod (true) or on the container, qos, runtime,
    // (namespace, pod, container) names)
    let cases = [
        (
            "systemd",
            uid.clone(),
            id.clone(),
            format!("kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice"),
            format!("cri-containerd-{id}.scope"),
            true,
            "burstable",
            Some("containerd"),
            None,
        ),
        (
            "cgroupfs",
            named_uid.clone(),
            named_id.clone(),
            format!("kubepods/besteffort/pod{named_uid}"),
            named_id.clone(),
            false,
            "besteffort",
            None,
            Some(("shop", "cart-7f9c", "api")),
        ),
    ];
    for (driver, uid, id, pod, container, pod_limit, qos, runtime, names) in cases {
        let mut node = TestCgroup::new(&format!("k8s-{driver}"), 128 * MIB)?;
        let pod_dir = node.child(&pod)?;
        let container_dir = node.child(&format!("{pod}/{container}"))?;
        let limited = if pod_limit { &pod_dir } else { &container_dir };
        let domain = node.set_child_limit(limited, 64 * MIB)?;
        let pid = oom_kill(&container_dir, None, &HogOptions::default())?;
        let record = &record_for(&mut tracer, pid)?;
        let truth = truth(&mut log, pid);
        victim_matches_log(record, &truth)?;
        oom_domain_matches(record, &truth, domain)?;

        let k8s = &record["victim"]["memcg"]["k8s"];
        assert_eq!(k8s["level"], "container", "{driver}: {k8s}");
        assert_eq!(k8s["cgroup_driver"], driver);
        assert_eq!(k8s["qos"], qos);
        assert_eq!(k8s["pod_uid"], uid.as_str());
        assert_eq!(k8s["container_id"], id.as_str());
        assert_eq!(k8s["runtime"], serde_json::json!(runtime));
        let (namespace, pod_name, container_name) = match names {
            Some((namespace, pod, container)) => (Some(namespace), Some(pod), Some(container)),
            None => (None, None, None),
        };
        assert_eq!(k8s["namespace"], serde_json::json!(namespace), "{driver}");
        assert_eq!(k8s["pod_name"], serde_json::json!(pod_name));
        assert_eq!(k8s["container_name"], serde_json::json!(container_name));
        assert!(record["victim"]["memcg"]["service"].is_null());
        let limit_owner = &record["oom_memcg"]["k8s"];
        assert_eq!(
            limit_owner["level"],
            if pod_limit { "pod" } else { "container" },
            "{driver}: whose limit, as the log's oom_memcg= {:?}",
            truth.context.oom_memcg
        );
        assert_eq!(limit_owner["pod_uid"], uid.as_str());
        assert_eq!(limit_owner["pod_name"], serde_json::json!(pod_name));
        let limit_container = if pod_limit { None } else { container_name };
        assert_eq!(
            limit_owner["container_name"],
            serde_json::json!(limit_container)
        );
    }

    let mut parent = TestCgroup::new("service", 64 * MIB)?;
    let unit = parent.child("oomtrace-demo.service")?;
    let pid = oom_kill(&unit, None, &HogOptions::default())?;
    let record = &record_for(&mut tracer, pid)?;
    assert_eq!(
        record["victim"]["memcg"]["service"],
        serde_json::json!({"kind": "systemd_service", "name": "oomtrace-demo.service",
            "container_name": null, "image": null, "labels": null})
    );
    assert!(record["victim"]["memcg"]["k8s"].is_null());
    assert!(
        record["oom_memcg"]["service"].is_null(),
        "the limit is the test cgroup's"
    );
    Ok(())
}
