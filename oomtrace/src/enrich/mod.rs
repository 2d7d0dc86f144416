//! Decoded kill -> report: wall-clock time, host, printable text, and
//! cgroup paths the kernel side could not capture.

pub mod cgroup;
pub mod clock;

use crate::{
    decode::{Memcg, OomKill},
    report::{KillReport, MemcgReport, SCHEMA, TriggerReport, VictimReport, kernel_text},
};

use self::cgroup::MemoryHierarchy;

pub struct Enricher {
    host: String,
    memory: Option<MemoryHierarchy>,
}

impl Enricher {
    pub fn new() -> Enricher {
        Enricher {
            host: hostname(),
            memory: MemoryHierarchy::find(),
        }
    }

    pub fn report(&self, kill: &OomKill) -> KillReport {
        let victim = &kill.victim;
        let time = clock::rfc3339(clock::wall_time(kill.boot_ns));
        KillReport {
            kind: "oom_kill",
            schema: SCHEMA,
            time,
            boot_ns: kill.boot_ns,
            host: self.host.clone(),
            capture: kill.capture.map(|c| c.name()),
            victim: VictimReport {
                pid: victim.pid,
                tgid: victim.tgid,
                comm: victim.comm.as_deref().map(kernel_text),
                uid: victim.uid,
                oom_score_adj: victim.oom_score_adj,
                total_vm_bytes: victim.total_vm_bytes,
                rss_anon_bytes: victim.rss.map(|r| r.anon),
                rss_file_bytes: victim.rss.map(|r| r.file),
                rss_shmem_bytes: victim.rss.map(|r| r.shmem),
                rss_anon_exact_bytes: victim.rss_exact.map(|r| r.anon),
                rss_file_exact_bytes: victim.rss_exact.map(|r| r.file),
                rss_shmem_exact_bytes: victim.rss_exact.map(|r| r.shmem),
                pgtables_bytes: victim.pgtables_bytes,
                memcg: victim.memcg.as_ref().map(|m| self.memcg(m)),
            },
            trigger: TriggerReport {
                pid: kill.trigger.pid,
                tgid: kill.trigger.tgid,
                comm: kill.trigger.comm.as_deref().map(kernel_text),
                memcg: kill.trigger.memcg.as_ref().map(|m| self.memcg(m)),
                is_victim: kill.trigger.is_victim,
            },
        }
    }

    fn memcg(&self, memcg: &Memcg) -> MemcgReport {
        let path = match &memcg.path {
            Some(path) => Some(kernel_text(path)),
            None => self.memory.as_ref().and_then(|m| m.path_of(memcg.id)),
        };
        MemcgReport { id: memcg.id, path }
    }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    kernel_text(&buf[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{Rss, Trigger, Victim};

    fn kill() -> OomKill {
        OomKill {
            boot_ns: clock::boot_ns_now(),
            capture: Some(crate::capture::CapturePath::TpBtf),
            victim: Victim {
                pid: Some(10),
                tgid: Some(9),
                comm: Some(b"db\xff".to_vec()),
                uid: Some(1000),
                oom_score_adj: Some(-5),
                total_vm_bytes: Some(1 << 30),
                rss: Some(Rss {
                    anon: 1,
                    file: 2,
                    shmem: 3,
                }),
                rss_exact: None,
                pgtables_bytes: None,
                memcg: Some(Memcg {
                    id: 77,
                    path: Some(b"/a/b".to_vec()),
                }),
            },
            trigger: Trigger {
                pid: 11,
                tgid: 11,
                comm: None,
                memcg: Some(Memcg { id: 78, path: None }),
                is_victim: false,
            },
        }
    }

    #[test]
    fn every_contract_field_is_present_and_unknowns_are_null() {
        let enricher = Enricher {
            host: "h".into(),
            memory: None,
        };
        let value = serde_json::to_value(enricher.report(&kill())).expect("serializes");
        assert_eq!(value["type"], "oom_kill");
        assert_eq!(value["schema"], 1);
        assert_eq!(value["capture"], "tp_btf");
        assert_eq!(value["host"], "h");
        let v = &value["victim"];
        assert_eq!((v["pid"].clone(), v["tgid"].clone()), (10.into(), 9.into()));
        assert_eq!(v["comm"], "db\\xff");
        assert_eq!(v["oom_score_adj"], -5);
        assert_eq!(
            (
                v["rss_anon_bytes"].clone(),
                v["rss_file_bytes"].clone(),
                v["rss_shmem_bytes"].clone()
            ),
            (1.into(), 2.into(), 3.into())
        );
        for unknown in [
            "rss_anon_exact_bytes",
            "rss_file_exact_bytes",
            "rss_shmem_exact_bytes",
            "pgtables_bytes",
        ] {
            assert!(
                v.get(unknown).is_some_and(serde_json::Value::is_null),
                "{unknown} is null, not absent"
            );
        }
        assert_eq!(v["memcg"], serde_json::json!({"id": 77, "path": "/a/b"}));
        // No hierarchy to search: a path the kernel could not capture is null.
        assert_eq!(
            value["trigger"]["memcg"],
            serde_json::json!({"id": 78, "path": null})
        );
        assert!(value["trigger"]["comm"].is_null());
        assert_eq!(value["trigger"]["is_victim"], false);
    }
}
