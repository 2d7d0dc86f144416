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
