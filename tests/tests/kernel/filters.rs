//! `--cgroup`, `--comm`, `--pod`: only the chosen kills are written.

use std::time::Duration;

use anyhow::Result;
use oomtrace_tests::{TestCgroup, Tracer, hog::HogOptions};

use crate::common::{MIB, fake_pod_ids, oom_kill, setup};

#[test]
fn filters_write_only_the_chosen_subtree_name_and_pod() -> Result<()> {
    let _serial = setup();
    let (uid, id) = fake_pod_ids();
    let mut pods = TestCgroup::new("filter-pods", 128 * MIB)?;
    let pod_dir = pods.child(&format!("kubepods/burstable/pod{uid}"))?;
    let container = pods.child(&format!("kubepods/burstable/pod{uid}/{id}"))?;
    pods.set_child_limit(&pod_dir, 64 * MIB)?;
    let other = TestCgroup::new("filter-other", 64 * MIB)?;
    let named = HogOptions {
        comm: Some(b"filtered-name".to_vec()),
        ..Default::default()
    };

    // Each filter on its own: kills outside it never show.
    let by_cgroup = Tracer::start(&["--cgroup", &pods.path()])?;
    let by_comm = Tracer::start(&["--comm", "filtered-name"])?;
    let by_pod = Tracer::start(&["--pod", &uid.replace('-', "_")])?;
    let outside = oom_kill(&other.dir, None, &HogOptions::default())?;
    let in_pod = oom_kill(&container, None, &HogOptions::default())?;
    let by_name = oom_kill(&other.dir, None, &named)?;
    let kills = |tracer: Tracer| -> Result<Vec<u64>> {
        let (status, records, _) = tracer.stop()?;
        assert!(status.success());
        Ok(records
            .iter()
            .filter(|r| r["type"] == "oom_kill")
            .filter_map(|r| r["victim"]["pid"].as_u64())
            .collect())
    };
    // stop() drains what is left: every kill above has been captured by
    // then (each waited for its SIGKILL; the records follow within ms).
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(kills(by_cgroup)?, vec![u64::from(in_pod)], "--cgroup");
    assert_eq!(kills(by_comm)?, vec![u64::from(by_name)], "--comm");
    assert_eq!(kills(by_pod)?, vec![u64::from(in_pod)], "--pod");
    let _ = outside;
    Ok(())
}
