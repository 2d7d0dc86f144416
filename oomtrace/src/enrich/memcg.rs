//! A report's memory cgroups: paths (from the kernel, or looked up by id),
//! their owners, and the counters of the one whose limit was hit.

use std::collections::HashMap;

use super::{Enricher, cgroup::CgroupVersion, workload};
use crate::{
    decode::{Memcg, OomMemcg},
    report::{K8s, MemcgReport, OomMemcgReport, ReclaimReport, Service, kernel_text},
};

impl Enricher {
    /// The limit's memcg. Its path is the victim's cut to its depth when it
    /// contains the victim (as the kernel checked), else looked up by id.
    pub(super) fn oom_memcg(
        &self,
        memcg: &OomMemcg,
        victim: Option<&MemcgReport>,
        reclaim: &HashMap<u64, ReclaimReport>,
    ) -> OomMemcgReport {
        let from_victim = victim
            .and_then(|v| v.path.as_deref())
            .filter(|_| memcg.contains_victim)
            .and_then(|path| path_prefix(path, memcg.level));
        let path = from_victim.or_else(|| self.memory.as_ref().and_then(|m| m.path_of(memcg.id)));
        let bytes = |pages: u64| pages.saturating_mul(self.page_size);
        let counters = memcg.counters;
        let watermark = counters.map(|c| bytes(c.watermark_pages));
        let v2 = self
            .memory
            .as_ref()
            .is_some_and(|m| m.version == CgroupVersion::V2);
        // Most often the victim's own cgroup: its owners are known already.
        let (k8s, service) = match victim.filter(|v| v.path.is_some() && v.path == path) {
            Some(v) => (v.k8s.clone(), v.service.clone()),
            None => self.workload(path.as_deref()),
        };
        OomMemcgReport {
            id: memcg.id,
            path,
            reclaim: reclaim.get(&memcg.id).copied(),
            k8s,
            service,
            limit_bytes: counters.map(|c| bytes(c.limit_pages)),
            usage_bytes: counters.map(|c| bytes(c.usage_pages)),
            max_usage_bytes: if v2 { None } else { watermark },
            peak_bytes: if v2 { watermark } else { None },
            failcnt: counters.map(|c| c.failcnt),
            oom_kills: counters.map(|c| c.oom_kills),
        }
    }

    /// Who owns a cgroup: from its path, then names from the kubelet's logs
    /// or the container runtime.
    pub(super) fn workload(&self, path: Option<&str>) -> (Option<K8s>, Option<Service>) {
        let Some(path) = path else {
            return (None, None);
        };
        let (mut k8s, mut service) = workload::identify(path);
        if k8s.is_none() && service.is_none() {
            service = self.names.containerd(path);
        }
        if let Some(service) = service.as_mut() {
            self.names.fill(service);
        }
        if let Some(k) = k8s.as_mut()
            && let Some(uid) = &k.pod_uid
        {
            let names = self.pod_logs.names(uid, k.container_id.as_deref());
            k.namespace = names.namespace;
            k.pod_name = names.pod_name;
            k.container_name = names.container_name;
        }
        (k8s, service)
    }

    pub(super) fn memcg(
        &self,
        memcg: &Memcg,
        reclaim: &HashMap<u64, ReclaimReport>,
    ) -> MemcgReport {
        let path = match &memcg.path {
            Some(path) => Some(kernel_text(path)),
            None => self.memory.as_ref().and_then(|m| m.path_of(memcg.id)),
        };
        let (k8s, service) = self.workload(path.as_deref());
        MemcgReport {
            id: memcg.id,
            path,
            reclaim: reclaim.get(&memcg.id).copied(),
            k8s,
            service,
        }
    }
}

/// The first `level` components of `path` (`/a/b/c`, 2 -> `/a/b`).
pub(super) fn path_prefix(path: &str, level: u32) -> Option<String> {
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let level = usize::try_from(level).ok()?;
    if level > components.len() {
        return None;
    }
    Some(format!("/{}", components[..level].join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oom_memcg_path_is_the_victims_cut_to_its_depth() {
        assert_eq!(path_prefix("/a/b/c", 2).as_deref(), Some("/a/b"));
        assert_eq!(path_prefix("/a/b/c", 3).as_deref(), Some("/a/b/c"));
        assert_eq!(path_prefix("/a/b/c", 0).as_deref(), Some("/"));
        assert_eq!(path_prefix("/a", 2), None);
    }
}
