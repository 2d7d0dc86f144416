//! The records oomtrace emits: the JSON contract, schema version 1.
//!
//! docs/schema.md and docs/oomtrace.schema.json describe the same thing;
//! change them together. Fields may be added; removing or changing one is a
//! new schema version. Every field is always present; unknown is `null`.

mod events;
mod kill;
mod vocab;

use serde::{Deserialize, Serialize};

pub use self::{events::*, kill::*, vocab::*};

/// Version of the record contract.
pub const SCHEMA: u32 = 1;

/// What every record starts with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Envelope {
    #[serde(rename = "type")]
    pub kind: RecordType,
    pub schema: u32,
    /// Wall-clock time of the event, RFC 3339 UTC with microseconds (for an
    /// outcome: the victim's exit).
    pub time: String,
    /// `CLOCK_BOOTTIME` nanoseconds of the event (the kernel's clock).
    /// `lost` records carry it (and `host`) since the typed envelope;
    /// older ones lack both, read back as 0 and "".
    #[serde(default)]
    pub boot_ns: u64,
    #[serde(default)]
    pub host: String,
}

impl Envelope {
    pub fn new(kind: RecordType, time: String, boot_ns: u64, host: String) -> Envelope {
        Envelope {
            kind,
            schema: SCHEMA,
            time,
            boot_ns,
            host,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MemcgReport {
    /// kernfs id: the inode number of the cgroup's directory.
    pub id: u64,
    /// Relative to the memory controller's hierarchy, as the kernel log
    /// writes `task_memcg=`; `null` when it could not be determined (e.g.
    /// the cgroup was removed before a truncated path could be resolved).
    pub path: Option<String>,
    /// Direct reclaim stalls of tasks in this cgroup's subtree; `null`
    /// when not tracked on this kernel.
    pub reclaim: Option<ReclaimReport>,
    /// The Kubernetes pod and container the path names, if it does.
    pub k8s: Option<K8s>,
    /// A systemd unit or a container outside Kubernetes the path names.
    pub service: Option<Service>,
}

/// Charge-path direct reclaim of a memcg's subtree before a kill.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReclaimReport {
    /// In the ten seconds up to the kill (one-second granularity).
    pub last_10s: ReclaimWindow,
    /// Since this cgroup's previous kill seen by this oomtrace; `null`
    /// for the first.
    pub since_previous_kill: Option<ReclaimWindow>,
    /// Since oomtrace started watching this cgroup.
    pub total: ReclaimTotals,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReclaimWindow {
    /// Reclaim passes (each one a stall of the charging task).
    pub stalls: u64,
    /// Time spent in them, summed.
    pub stall_ns: u64,
    pub reclaimed_bytes: u64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReclaimTotals {
    pub stalls: u64,
    pub stall_ns: u64,
    pub max_stall_ns: u64,
    pub reclaimed_bytes: u64,
}

/// Text from kernel bytes (comm, cgroup names), without losing any byte:
/// valid UTF-8 is kept as is (JSON escapes quotes and control characters);
/// each byte of an invalid sequence becomes `\xNN`, as /dev/kmsg writes
/// non-printable bytes.
pub fn kernel_text(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        text.push_str(chunk.valid());
        for byte in chunk.invalid() {
            text.push_str(&format!("\\x{byte:02x}"));
        }
    }
    text
}

/// Kubernetes identity of a cgroup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct K8s {
    /// `node` (kubepods), `qos` (a QoS class slice), `pod` or `container`.
    pub level: K8sLevel,
    /// `guaranteed`, `burstable` or `besteffort`; `null` at node level.
    pub qos: Option<Qos>,
    pub pod_uid: Option<String>,
    pub container_id: Option<String>,
    /// `containerd`, `cri-o` or `docker`, when the name says.
    pub runtime: Option<ContainerRuntime>,
    /// The kubelet's cgroup driver: `systemd` or `cgroupfs`.
    pub cgroup_driver: CgroupDriver,
    /// From the kubelet's log directories on this node; `null` when they
    /// do not name the pod (or the container).
    pub namespace: Option<String>,
    pub pod_name: Option<String>,
    pub container_name: Option<String>,
}

/// A non-Kubernetes owner whose name the path shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// `systemd_service`, `systemd_scope`, `docker_container`,
    /// `podman_container`, `podman_conmon` (the monitor of container
    /// `name`) or `containerd_container`.
    pub kind: ServiceKind,
    /// The unit name or the container id.
    pub name: String,
    /// A container's name as its runtime knows it (`docker ps` NAMES,
    /// without Docker's leading `/`), from the runtime's API or state;
    /// `null` for units, and when the runtime could not say in time.
    #[serde(default)]
    pub container_name: Option<String>,
    /// The image the container was created from, as the runtime records it
    /// (`docker inspect` `.Config.Image`); `null` like `container_name`.
    #[serde(default)]
    pub image: Option<String>,
    /// The container's compose (`com.docker.compose.project`, `.service`)
    /// and Kubernetes (`io.kubernetes.*`) labels; `{}` when it has none of
    /// them, `null` when the runtime could not say.
    #[serde(default)]
    pub labels: Option<std::collections::BTreeMap<String, String>>,
}

impl Service {
    /// An owner the path names, before any runtime was asked about it.
    pub fn from_path(kind: ServiceKind, name: String) -> Service {
        Service {
            kind,
            name,
            container_name: None,
            image: None,
            labels: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_text_keeps_utf8_and_escapes_invalid_bytes() {
        assert_eq!(kernel_text(b"python3"), "python3");
        assert_eq!(kernel_text("caf\u{e9}".as_bytes()), "caf\u{e9}");
        assert_eq!(kernel_text(b"a\xffb\xc3"), "a\\xffb\\xc3");
        assert_eq!(kernel_text(b""), "");
    }

    #[test]
    fn any_comm_bytes_give_one_line_of_valid_json() {
        let nasty: &[u8] = b"\"q\\\n\r\t\x00\x1b[31m\xff\xfe";
        let json = serde_json::to_string(&kernel_text(nasty)).expect("serializes");
        assert!(!json.contains('\n'));
        let back: String = serde_json::from_str(&json).expect("valid JSON");
        assert_eq!(back, kernel_text(nasty));
        assert!(back.starts_with("\"q\\\n\r\t\u{0}\u{1b}[31m"));
        assert!(back.ends_with("\\xff\\xfe"));
    }

    /// Lines written by oomtrace before the typed reports (see the
    /// fixture's README): real kills, plus what the host cannot produce.
    const RECORDED: &str = include_str!("../../tests/fixtures/records-schema1.jsonl");

    /// Reads a recorded line into the record type its `type` names and
    /// writes it again.
    fn round_trip(line: &str) -> Result<(serde_json::Value, serde_json::Value), String> {
        let recorded: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
        fn again<T: serde::de::DeserializeOwned + Serialize>(
            v: &serde_json::Value,
        ) -> Result<serde_json::Value, String> {
            let typed: T = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
            serde_json::to_value(&typed).map_err(|e| e.to_string())
        }
        let written = match recorded["type"].as_str() {
            Some("oom_kill") => again::<KillReport>(&recorded),
            Some("oom_outcome" | "sigkill_outcome") => again::<OutcomeReport>(&recorded),
            Some("sigkill") => again::<SigkillReport>(&recorded),
            Some("memcg_pressure") => again::<PressureReport>(&recorded),
            Some("lost") => again::<LostReport>(&recorded),
            other => Err(format!("unknown type {other:?}")),
        }?;
        Ok((recorded, written))
    }

    /// Every field of `old` is in `new`, at the same place, with the same
    /// value; `new` may have more. `null` in `old` must stay `null`.
    fn subset(old: &serde_json::Value, new: &serde_json::Value, at: &str) -> Vec<String> {
        match (old, new) {
            (serde_json::Value::Object(o), serde_json::Value::Object(n)) => o
                .iter()
                .flat_map(|(key, value)| match n.get(key) {
                    Some(other) => subset(value, other, &format!("{at}.{key}")),
                    None => vec![format!("{at}.{key} is gone")],
                })
                .collect(),
            (serde_json::Value::Array(o), serde_json::Value::Array(n)) if o.len() == n.len() => o
                .iter()
                .zip(n)
                .enumerate()
                .flat_map(|(i, (a, b))| subset(a, b, &format!("{at}[{i}]")))
                .collect(),
            (a, b) if a == b => Vec::new(),
            (a, b) => vec![format!("{at}: {a} became {b}")],
        }
    }

    #[test]
    fn every_recorded_field_keeps_its_name_place_and_value() {
        let mut types = std::collections::BTreeSet::new();
        for (n, line) in RECORDED.lines().enumerate() {
            let (recorded, written) =
                round_trip(line).unwrap_or_else(|e| panic!("line {}: {e}", n + 1));
            let changed = subset(&recorded, &written, "");
            assert!(changed.is_empty(), "line {}: {changed:?}", n + 1);
            types.insert(recorded["type"].as_str().unwrap_or_default().to_string());
        }
        assert_eq!(
            types.into_iter().collect::<Vec<_>>(),
            [
                "lost",
                "memcg_pressure",
                "oom_kill",
                "oom_outcome",
                "sigkill",
                "sigkill_outcome"
            ],
            "the fixture covers every record type"
        );
    }

    #[test]
    fn records_read_back_into_the_same_types() {
        for line in RECORDED.lines() {
            let Ok((_, written)) = round_trip(line) else {
                panic!("{line}");
            };
            // A second trip changes nothing: the types hold all they write.
            let again = round_trip(&written.to_string()).map(|(_, w)| w);
            assert_eq!(again.as_ref(), Ok(&written));
        }
    }

    #[test]
    fn the_subset_check_catches_a_renamed_or_changed_field() {
        let old = serde_json::json!({"a": {"b": 1, "c": null}, "d": [1]});
        assert!(
            subset(
                &old,
                &serde_json::json!({"a": {"b": 1, "c": null, "e": 2}, "d": [1]}),
                ""
            )
            .is_empty()
        );
        assert_eq!(
            subset(
                &old,
                &serde_json::json!({"a": {"b": 2, "c": null}, "d": [1]}),
                ""
            )
            .len(),
            1
        );
        assert_eq!(
            subset(
                &old,
                &serde_json::json!({"a": {"x": 1, "c": null}, "d": [1]}),
                ""
            )
            .len(),
            1
        );
        assert_eq!(
            subset(
                &old,
                &serde_json::json!({"a": {"b": 1, "c": 0}, "d": []}),
                ""
            )
            .len(),
            2
        );
    }

    #[test]
    fn lost_records_have_the_contract_fields() {
        let lost = LostReport {
            envelope: Envelope::new(RecordType::Lost, "t".into(), 5, "h".into()),
            count: 3,
            stage: LostStage::RingBuffer,
        };
        assert_eq!(
            serde_json::to_value(lost).ok(),
            Some(
                serde_json::json!({"type": "lost", "schema": 1, "time": "t", "boot_ns": 5, "host": "h", "count": 3, "stage": "ring_buffer"})
            )
        );
    }

    use proptest::strategy::Strategy as _;

    proptest::proptest! {
        #[test]
        // Reversible as long as valid text holds no `\xNN` of its own
        // (systemd's escaped unit names do; they are kept verbatim so
        // paths match the directory names).
        fn any_kernel_bytes_are_json_and_reversible(
            bytes in proptest::collection::vec(proptest::num::u8::ANY.prop_filter("no backslash", |b| *b != b'\\'), 0..64)
        ) {
            let text = kernel_text(&bytes);
            let json = serde_json::to_string(&text).expect("serializes");
            let back: String = serde_json::from_str(&json).expect("valid JSON");
            proptest::prop_assert_eq!(&back, &text);
            // \xNN escapes of non-UTF-8 bytes undo to the same bytes.
            let mut undone = Vec::new();
            let mut rest = back.as_str();
            while !rest.is_empty() {
                if let Some(hex) = rest.strip_prefix("\\x").and_then(|r| r.get(..2))
                    && let Ok(b) = u8::from_str_radix(hex, 16)
                {
                    undone.push(b);
                    rest = &rest[4..];
                } else if let Some(c) = rest.chars().next() {
                    let mut buf = [0u8; 4];
                    undone.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    rest = &rest[c.len_utf8()..];
                }
            }
            proptest::prop_assert_eq!(undone, bytes);
        }
    }
}
