//! `--cgroup`, `--comm`, `--pod`: which records a run writes.
//!
//! Applied in userspace, after enrichment: OOM kills are rare, so the
//! kernel side sends them all (a filter there would save nothing), and the
//! pod a cgroup belongs to is known only once its path is.

use crate::report::{KillReport, MemcgReport, PressureReport, SigkillReport};

#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// A cgroup path as the records write it (`/kubepods.slice/...`):
    /// records of that subtree.
    pub cgroup: Option<String>,
    /// The victim's (target's) task name, exactly.
    pub comm: Option<String>,
    /// A pod UID, dashes or underscores.
    pub pod: Option<String>,
}

impl Filter {
    pub fn new(cgroup: Option<String>, comm: Option<String>, pod: Option<String>) -> Filter {
        Filter {
            cgroup: cgroup.as_deref().map(subtree),
            comm,
            pod: pod.map(|p| p.replace('_', "-").to_ascii_lowercase()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.cgroup.is_none() && self.comm.is_none() && self.pod.is_none()
    }

    /// A kill of a victim in the subtree (or whose OOM domain is in it),
    /// with that name, in that pod.
    pub fn kill(&self, r: &KillReport) -> bool {
        let victim = r.victim.memcg.as_ref();
        let cgroup = self.cgroup.as_deref().is_none_or(|c| {
            under(path_of(victim), c)
                || under(r.oom_memcg.as_ref().and_then(|m| m.path.as_deref()), c)
        });
        cgroup && self.comm_is(r.victim.comm.as_deref()) && self.pod_is(victim)
    }

    pub fn sigkill(&self, r: &SigkillReport) -> bool {
        let target = r.target.memcg.as_ref();
        self.cgroup
            .as_deref()
            .is_none_or(|c| under(path_of(target), c))
            && self.comm_is(r.target.comm.as_deref())
            && self.pod_is(target)
    }

    /// Pressure names a cgroup, not a task: `--comm` does not select it.
    pub fn pressure(&self, r: &PressureReport) -> bool {
        self.cgroup
            .as_deref()
            .is_none_or(|c| under(r.memcg.path.as_deref(), c))
            && self.comm.is_none()
            && self.pod_is(Some(&r.memcg))
    }

    fn comm_is(&self, comm: Option<&str>) -> bool {
        self.comm.as_deref().is_none_or(|want| comm == Some(want))
    }

    fn pod_is(&self, memcg: Option<&MemcgReport>) -> bool {
        self.pod.as_deref().is_none_or(|want| {
            memcg
                .and_then(|m| m.k8s.as_ref())
                .and_then(|k| k.pod_uid.as_deref())
                .is_some_and(|uid| uid.eq_ignore_ascii_case(want))
        })
    }
}

/// A cgroup path as given by a user, as records write it: `/a/b`.
pub fn subtree(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    if trimmed.starts_with('/') {
        trimmed.to_string()
    } else {
        format!("/{trimmed}")
    }
}

fn path_of(memcg: Option<&MemcgReport>) -> Option<&str> {
    memcg.and_then(|m| m.path.as_deref())
}

/// `path` is `subtree` or below it.
pub fn under(path: Option<&str>, subtree: &str) -> bool {
    let Some(path) = path else {
        return false;
    };
    subtree == "/"
        || path == subtree
        || path
            .strip_prefix(subtree)
            .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subtree_is_the_cgroup_and_what_is_below_it_not_its_namesakes() {
        assert!(under(Some("/a/b"), "/a"));
        assert!(under(Some("/a"), "/a"));
        assert!(!under(Some("/ab"), "/a"), "a prefix is not a parent");
        assert!(under(Some("/anything"), "/"));
        assert!(!under(None, "/"), "unknown is not in any subtree");
        let f = Filter::new(Some("a/b/".into()), None, Some("AB_CD".into()));
        assert_eq!(f.cgroup.as_deref(), Some("/a/b"));
        assert_eq!(f.pod.as_deref(), Some("ab-cd"));
    }
}
