//! `--metrics` against a real Prometheus server (Debian's `prometheus`
//! package, installed by `cargo xtask test`): it scrapes oomtrace on
//! localhost while the test kills, and its query API must show the kills.

use std::{
    net::SocketAddr,
    os::unix::process::CommandExt,
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use oomtrace_tests::{
    TestCgroup, Tracer,
    hog::HogOptions,
    http::{self, encode, free_port},
    system::ScratchDir,
    wait,
};
use serde_json::Value;

use crate::common::{MIB, oom_kill, setup};

/// Prometheus scrapes every second and needs a few to start.
const TIMEOUT: Duration = Duration::from_secs(60);
const PROMETHEUS: &str = "/usr/bin/prometheus";

/// A Prometheus server scraping `target` every second; killed on drop.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    _dir: ScratchDir,
}

impl Prometheus {
    fn start(target: SocketAddr) -> Result<Prometheus> {
        assert!(
            std::path::Path::new(PROMETHEUS).is_file(),
            "{PROMETHEUS} is missing: install Debian's `prometheus` package \
             (`cargo xtask test` does)"
        );
        let dir = ScratchDir::new("prometheus")?;
        let config = dir.path.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                 scrape_configs:\n  - job_name: oomtrace\n    static_configs:\n      \
                 - targets: ['{target}']\n"
            ),
        )?;
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let child = Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .context("start prometheus")?;
        let prometheus = Prometheus {
            child,
            addr,
            _dir: dir,
        };
        wait::poll(TIMEOUT, Duration::from_millis(200), || {
            Ok(matches!(http::get(addr, "/-/ready"), Ok((200, _))).then_some(()))
        })?
        .with_context(|| format!("prometheus was not ready on {addr} within {TIMEOUT:?}"))?;
        Ok(prometheus)
    }

    /// An instant query's result vector.
    fn query(&self, promql: &str) -> Result<Vec<Value>> {
        let (status, body) = http::get(
            self.addr,
            &format!("/api/v1/query?query={}", encode(promql)),
        )?;
        let reply: Value = serde_json::from_str(&body).context("query reply")?;
        if status != 200 || reply["status"] != "success" {
            bail!("query {promql}: {status} {body}");
        }
        Ok(reply["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// Polls `promql` until `done` accepts its result.
    fn wait_for(&self, promql: &str, done: impl Fn(&[Value]) -> bool) -> Result<Vec<Value>> {
        let mut last = Vec::new();
        let found = wait::poll(TIMEOUT, Duration::from_millis(500), || {
            last = self.query(promql)?;
            Ok(done(&last).then(|| last.clone()))
        })?;
        found.with_context(|| format!("{promql} did not come true within {TIMEOUT:?}: {last:?}"))
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn value(sample: &Value) -> f64 {
    sample["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

#[test]
fn prometheus_scrapes_the_kills_by_oom_domain() -> Result<()> {
    let _serial = setup();
    let port = free_port()?;
    let target: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let tracer = Tracer::start(&["--metrics", &port.to_string()])?;
    let ready = tracer.stderr_lines.last().cloned().unwrap_or_default();
    assert!(
        ready.contains(&format!("metrics on http://{target}/metrics")),
        "{ready}"
    );
    let (status, _) = http::get(target, "/ready")?;
    assert_eq!(status, 200, "/ready");
    // Without a host it listens on localhost only: the kernel's socket
    // table has its listening socket bound to 127.0.0.1.
    let listening = std::fs::read_to_string("/proc/net/tcp")?
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(3) == Some(&"0A")).then(|| f[1].to_string())
        })
        .filter(|local| local.ends_with(&format!(":{port:04X}")))
        .collect::<Vec<_>>();
    assert_eq!(listening, vec![format!("0100007F:{port:04X}")], "bound to");
    let prometheus = Prometheus::start(target)?;
    prometheus.wait_for("up{job=\"oomtrace\"}", |r| {
        r.len() == 1 && value(&r[0]) == 1.0
    })?;

    let cgroup = TestCgroup::new("metrics", 64 * MIB)?;
    let mut pids = Vec::new();
    for _ in 0..2 {
        pids.push(oom_kill(&cgroup.dir, None, &HogOptions::default())?);
    }
    let mut tracer = tracer;
    let records = tracer.records_for(&pids, TIMEOUT);
    assert_eq!(
        records.iter().filter(|r| r["type"] == "oom_kill").count(),
        2
    );

    let query = format!(
        "oomtrace_oom_kills_total{{oom_memcg=\"{0}\",victim_memcg=\"{0}\"}}",
        cgroup.path()
    );
    let kills = prometheus.wait_for(&query, |r| r.len() == 1 && value(&r[0]) == 2.0)?;
    assert_eq!(kills[0]["metric"]["constraint"], "memcg");
    assert_eq!(kills[0]["metric"]["overflow"], Value::Null, "empty label");

    let info = prometheus.query("oomtrace_build_info")?;
    let capture = oomtrace_tests::kernel::expected_capture_path();
    assert_eq!(info.len(), 1, "{info:?}");
    assert_eq!(info[0]["metric"]["capture"], capture);
    assert_eq!(info[0]["metric"]["version"], env!("CARGO_PKG_VERSION"));
    let lost = prometheus.query("sum(oomtrace_lost_records_total)")?;
    assert_eq!(lost.len(), 1);
    assert_eq!(value(&lost[0]), 0.0, "nothing lost");
    drop(prometheus);
    let (status, _, stderr) = tracer.stop()?;
    assert!(status.success(), "{stderr:?}");
    Ok(())
}

#[test]
fn a_port_in_use_is_a_clear_error() -> Result<()> {
    let _serial = setup();
    let busy = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = busy.local_addr()?.port().to_string();
    let out = Command::new(oomtrace_tests::system::oomtrace_bin())
        .args(["--metrics", &port, "--oom-score-adj", "keep"])
        .stdin(Stdio::null())
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot serve metrics on 127.0.0.1:{port}"))
            && stderr.contains("pick a free port"),
        "{stderr}"
    );
    Ok(())
}
