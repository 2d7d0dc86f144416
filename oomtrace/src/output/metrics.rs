//! `--metrics ADDR`: Prometheus text exposition of what the stream wrote,
//! encoded by prometheus-client, served by hyper on the event loop.
//!
//! Label sets are bounded: a node sees few OOM domains, but a crash-looping
//! job in fresh cgroups must not grow the series without end. Past
//! [`MAX_SERIES`] label sets per family, new ones are counted under
//! `overflow="true"` with every other label empty.

use std::{
    collections::HashSet,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode, body::Bytes, server::conn::http1, service::service_fn,
};
use hyper_util::rt::TokioIo;
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, info::Info},
    registry::Registry,
};
use tokio::net::TcpListener;

use crate::report::{KillReport, KillerKind, LostReport, PressureReport, SigkillReport};

/// Label sets kept per family before new ones go to `overflow`.
pub const MAX_SERIES: usize = 500;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KillLabels {
    /// memcg, global, cpuset, mempolicy, or "" when unknown.
    constraint: String,
    /// The cgroup whose limit was hit ("" for other constraints).
    oom_memcg: String,
    /// The victim's own memory cgroup.
    victim_memcg: String,
    namespace: String,
    pod: String,
    container: String,
    overflow: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LostLabels {
    stage: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MemcgLabels {
    memcg: String,
    overflow: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SenderLabels {
    /// `kernel` or `process`.
    sent_by: String,
    /// `killer.kind`: `userspace_oom_killer`, `runtime_stop`, ...
    killer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InfoLabels {
    version: String,
    capture: String,
}

pub struct Metrics {
    registry: Registry,
    kills: Family<KillLabels, Counter>,
    kill_series: Mutex<HashSet<KillLabels>>,
    lost: Family<LostLabels, Counter>,
    stalls: Family<MemcgLabels, Counter>,
    stall_seconds: Family<MemcgLabels, Counter<f64>>,
    pressure_series: Mutex<HashSet<MemcgLabels>>,
    sigkills: Family<SenderLabels, Counter>,
}

impl Metrics {
    /// `capture`: the capture path in use, for `oomtrace_build_info`.
    pub fn new(capture: &str) -> Metrics {
        let mut registry = Registry::with_prefix("oomtrace");
        let kills = Family::<KillLabels, Counter>::default();
        registry.register(
            "oom_kills",
            "OOM kills, by OOM domain and victim cgroup (Kubernetes names when known)",
            kills.clone(),
        );
        let lost = Family::<LostLabels, Counter>::default();
        registry.register(
            "lost_records",
            "Records that could not be delivered, by stage (ring_buffer, output)",
            lost.clone(),
        );
        // Both stages exist from the start, so a rate() sees the first loss.
        for stage in ["ring_buffer", "output"] {
            lost.get_or_create(&LostLabels {
                stage: stage.to_string(),
            })
            .inc_by(0);
        }
        let stalls = Family::<MemcgLabels, Counter>::default();
        registry.register(
            "charge_stalls",
            "Direct reclaim stalls on the memcg charge path during the seconds that crossed the --pressure threshold",
            stalls.clone(),
        );
        let stall_seconds = Family::<MemcgLabels, Counter<f64>>::default();
        registry.register(
            "charge_stall_seconds",
            "Time stalled in memcg direct reclaim during the seconds that crossed the --pressure threshold",
            stall_seconds.clone(),
        );
        let sigkills = Family::<SenderLabels, Counter>::default();
        registry.register(
            "sigkills",
            "SIGKILLs that were not the OOM killer's (--sigkill), by sender and killer kind",
            sigkills.clone(),
        );
        registry.register(
            "build",
            "oomtrace's version and the capture path in use",
            Info::new(InfoLabels {
                version: env!("CARGO_PKG_VERSION").to_string(),
                capture: capture.to_string(),
            }),
        );
        Metrics {
            registry,
            kills,
            kill_series: Mutex::new(HashSet::new()),
            lost,
            stalls,
            stall_seconds,
            pressure_series: Mutex::new(HashSet::new()),
            sigkills,
        }
    }

    pub fn kill(&self, report: &KillReport) {
        let path = |m: Option<&str>| m.unwrap_or("").to_string();
        let victim = report.victim.memcg.as_ref();
        let k8s = victim.and_then(|m| m.k8s.as_ref());
        let labels = KillLabels {
            constraint: report.constraint.map_or("", |c| c.name()).to_string(),
            oom_memcg: path(report.oom_memcg.as_ref().and_then(|m| m.path.as_deref())),
            victim_memcg: path(victim.and_then(|m| m.path.as_deref())),
            namespace: path(k8s.and_then(|k| k.namespace.as_deref())),
            pod: path(k8s.and_then(|k| k.pod_name.as_deref().or(k.pod_uid.as_deref()))),
            container: path(k8s.and_then(|k| k.container_name.as_deref())),
            overflow: String::new(),
        };
        let labels = bounded(&self.kill_series, labels, |l| KillLabels {
            constraint: l.constraint.clone(),
            oom_memcg: String::new(),
            victim_memcg: String::new(),
            namespace: String::new(),
            pod: String::new(),
            container: String::new(),
            overflow: "true".to_string(),
        });
        self.kills.get_or_create(&labels).inc();
    }

    pub fn lost(&self, report: &LostReport) {
        self.lost
            .get_or_create(&LostLabels {
                stage: report.stage.name().to_string(),
            })
            .inc_by(report.count);
    }

    pub fn pressure(&self, report: &PressureReport) {
        let labels = MemcgLabels {
            memcg: report.memcg.path.clone().unwrap_or_default(),
            overflow: String::new(),
        };
        let labels = bounded(&self.pressure_series, labels, |_| MemcgLabels {
            memcg: String::new(),
            overflow: "true".to_string(),
        });
        self.stalls.get_or_create(&labels).inc_by(report.stalls);
        self.stall_seconds
            .get_or_create(&labels)
            .inc_by(report.stall_ns as f64 / 1e9);
    }

    pub fn sigkill(&self, report: &SigkillReport) {
        self.sigkills
            .get_or_create(&SenderLabels {
                sent_by: report.sent_by.name().to_string(),
                killer: report
                    .killer
                    .as_ref()
                    .map_or(KillerKind::Unknown, |k| k.kind)
                    .name()
                    .to_string(),
            })
            .inc();
    }

    /// The exposition text.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

/// `labels` if its family has room (or already has it), else `overflow`.
fn bounded<L: Clone + Eq + std::hash::Hash>(
    seen: &Mutex<HashSet<L>>,
    labels: L,
    overflow: impl FnOnce(&L) -> L,
) -> L {
    let mut seen = seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if seen.contains(&labels) || seen.len() < MAX_SERIES {
        seen.insert(labels.clone());
        labels
    } else {
        overflow(&labels)
    }
}

/// `--metrics` value: `PORT`, `:PORT` or `HOST:PORT`; without a host,
/// localhost only (metrics name pods and cgroups).
pub fn parse_addr(value: &str) -> Result<SocketAddr, String> {
    let port_only = value.strip_prefix(':').unwrap_or(value);
    if let Ok(port) = port_only.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    value
        .parse::<SocketAddr>()
        .map_err(|_| format!("`{value}` is not PORT, :PORT or HOST:PORT (e.g. 0.0.0.0:9977)"))
}

/// Serves `/metrics` and `/ready` (200 once tracing is attached, which is
/// when this runs) until the runtime stops.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors, say: retrying at once would spin the loop
            // that also drains the ring buffer.
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            continue;
        };
        let metrics = Arc::clone(&metrics);
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                let response = respond(&metrics, request.method(), request.uri().path());
                async move { Ok::<_, std::convert::Infallible>(response) }
            });
            // A client that goes away mid-request is its own problem.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn respond(metrics: &Metrics, method: &Method, path: &str) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (method, path) {
        (&Method::GET, "/metrics") => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.encode(),
        ),
        (&Method::GET, "/ready") => (StatusCode::OK, "text/plain", "ready\n".to_string()),
        (&Method::GET, _) => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "try /metrics or /ready\n".to_string(),
        ),
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n".to_string(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_without_a_host_stay_on_localhost() {
        assert_eq!(parse_addr("9977"), Ok("127.0.0.1:9977".parse().unwrap()));
        assert_eq!(parse_addr(":9977"), Ok("127.0.0.1:9977".parse().unwrap()));
        assert_eq!(
            parse_addr("0.0.0.0:9977"),
            Ok("0.0.0.0:9977".parse().unwrap())
        );
        assert_eq!(parse_addr("[::1]:80"), Ok("[::1]:80".parse().unwrap()));
        assert!(parse_addr("localhost").is_err());
        assert!(parse_addr("99999").is_err());
    }

    #[test]
    fn label_sets_past_the_bound_are_counted_as_overflow() {
        let seen = Mutex::new(HashSet::new());
        for i in 0..MAX_SERIES {
            assert_eq!(bounded(&seen, i, |_| usize::MAX), i);
        }
        assert_eq!(bounded(&seen, 7, |_| usize::MAX), 7, "known sets stay");
        assert_eq!(bounded(&seen, MAX_SERIES, |_| usize::MAX), usize::MAX);
    }

    #[test]
    fn a_fresh_exposition_has_both_loss_stages_and_build_info() {
        let metrics = Metrics::new("tp_btf");
        let text = metrics.encode();
        for needle in [
            "oomtrace_lost_records_total{stage=\"ring_buffer\"} 0",
            "oomtrace_lost_records_total{stage=\"output\"} 0",
            "oomtrace_build_info{version=\"",
            "capture=\"tp_btf\"} 1",
            "# EOF",
        ] {
            assert!(text.contains(needle), "{needle} in\n{text}");
        }
    }

    #[test]
    fn sigkills_are_counted_by_killer_kind() {
        let metrics = Metrics::new("tp_btf");
        let line = include_str!("../../tests/fixtures/records-schema1.jsonl")
            .lines()
            .find(|l| l.contains("\"type\":\"sigkill\""))
            .expect("a sigkill line");
        let mut report: SigkillReport = serde_json::from_str(line).expect("a sigkill");
        metrics.sigkill(&report);
        report.killer = Some(crate::report::KillerReport {
            kind: KillerKind::UserspaceOomKiller,
            name: Some("earlyoom".into()),
            program: None,
            basis: crate::report::KillerBasis::SenderProgram,
        });
        metrics.sigkill(&report);
        metrics.sigkill(&report);
        let text = metrics.encode();
        for needle in [
            "oomtrace_sigkills_total{sent_by=\"process\",killer=\"unknown\"} 1",
            "oomtrace_sigkills_total{sent_by=\"process\",killer=\"userspace_oom_killer\"} 2",
        ] {
            assert!(text.contains(needle), "{needle} in\n{text}");
        }
    }
}
