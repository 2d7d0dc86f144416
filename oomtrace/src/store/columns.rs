//! The indexed columns of a stored record, read from its JSON line.
//!
//! Read by JSON pointer, not from the report structs: the store keeps
//! whatever the stream wrote, and a record from another machine's log
//! (`list --from`) goes through the same code.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::Value;

/// What queries select and sort on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Columns {
    /// Wall-clock ns since the epoch, from `time`.
    pub time_ns: i64,
    pub boot_ns: Option<i64>,
    pub kind: String,
    pub host: Option<String>,
    /// The victim's (a SIGKILL's target's) pid and name.
    pub pid: Option<i64>,
    pub comm: Option<String>,
    /// The victim's (target's, a pressure record's) memory cgroup.
    pub memcg_path: Option<String>,
    /// The cgroup whose limit was hit.
    pub oom_memcg_path: Option<String>,
    pub pod_uid: Option<String>,
    pub pod_name: Option<String>,
    pub container_id: Option<String>,
    pub container_name: Option<String>,
    pub constraint: Option<String>,
    /// `history.workload`: what the kill history is kept per.
    pub workload: Option<String>,
}

/// Why a line cannot be stored or listed.
#[derive(Debug, thiserror::Error)]
pub enum BadRecord {
    #[error("not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("no `type` field")]
    NoType,
    #[error("no RFC 3339 `time` field")]
    NoTime,
}

fn text(record: &Value, pointer: &str) -> Option<String> {
    record
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn number(record: &Value, pointer: &str) -> Option<i64> {
    record.pointer(pointer).and_then(Value::as_i64)
}

/// The first of `pointers` that is a string.
fn first_text(record: &Value, pointers: &[&str]) -> Option<String> {
    pointers.iter().find_map(|p| text(record, p))
}

/// RFC 3339 (as records write `time`) to ns since the epoch.
pub fn parse_time_ns(time: &str) -> Option<i64> {
    let at = humantime::parse_rfc3339_weak(time).ok()?;
    let since = at.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    i64::try_from(since.as_nanos()).ok()
}

impl Columns {
    pub fn from_json(record: &Value) -> Result<Columns, BadRecord> {
        let kind = text(record, "/type").ok_or(BadRecord::NoType)?;
        let time_ns = text(record, "/time")
            .as_deref()
            .and_then(parse_time_ns)
            .ok_or(BadRecord::NoTime)?;
        // The task a record is about: a kill's or an exit's victim, a
        // SIGKILL's target; a pressure record names only a cgroup.
        let task = match kind.as_str() {
            "sigkill" => "/target",
            _ => "/victim",
        };
        let memcg = if kind == "memcg_pressure" {
            "/memcg".to_string()
        } else {
            format!("{task}/memcg")
        };
        let k8s = |field: &str| {
            first_text(
                record,
                &[
                    &format!("{memcg}/k8s/{field}"),
                    &format!("/oom_memcg/k8s/{field}"),
                ],
            )
        };
        Ok(Columns {
            time_ns,
            boot_ns: number(record, "/boot_ns"),
            host: text(record, "/host"),
            pid: number(record, &format!("{task}/pid")),
            comm: text(record, &format!("{task}/comm")),
            memcg_path: text(record, &format!("{memcg}/path")),
            oom_memcg_path: text(record, "/oom_memcg/path"),
            pod_uid: k8s("pod_uid"),
            pod_name: k8s("pod_name"),
            container_id: text(record, &format!("{memcg}/k8s/container_id")),
            container_name: text(record, &format!("{memcg}/k8s/container_name")),
            constraint: text(record, "/constraint"),
            workload: text(record, "/history/workload"),
            kind,
        })
    }

    pub fn from_line(line: &str) -> Result<(Value, Columns), BadRecord> {
        let record: Value = serde_json::from_str(line)?;
        let columns = Columns::from_json(&record)?;
        Ok((record, columns))
    }
}
