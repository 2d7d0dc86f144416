//! Pod and container names without the API server. The kubelet keeps every
//! pod's logs on the node, in directories named after the pod:
//! `<dir>/pods/<namespace>_<pod>_<uid>/` and the symlinks
//! `<dir>/containers/<pod>_<namespace>_<container>-<container id>.log`.
//! Kubernetes names never contain `_`, so the split is unambiguous.

use std::{cell::RefCell, collections::HashMap, fs, path::PathBuf};

/// Names kept per pod and per container before the caches start over: a
/// node runs at most a few hundred pods.
const CACHED: usize = 1024;

/// The kubelet's log root (`/var/log` on a node; wherever a DaemonSet
/// mounts it).
pub struct PodLogs {
    dir: PathBuf,
    /// Names found, kept: a pod UID's namespace and name, and a container
    /// id's name, never change, so a later kill in the same pod or
    /// container lists no directory (a node's `pods/` and `containers/`
    /// hold an entry per pod and per container). What was not found is
    /// looked for again next time (its logs may appear).
    found: RefCell<Found>,
}

#[derive(Default)]
struct Found {
    /// pod UID -> (namespace, pod name)
    pods: HashMap<String, (String, String)>,
    /// (pod UID, container id) -> container name
    containers: HashMap<(String, String), String>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Names {
    pub namespace: Option<String>,
    pub pod_name: Option<String>,
    pub container_name: Option<String>,
}

impl PodLogs {
    pub fn new(dir: PathBuf) -> PodLogs {
        PodLogs {
            dir,
            found: RefCell::default(),
        }
    }

    /// Names for a pod UID and, when given, one of its container ids.
    /// Whatever the directories do not show (not a Kubernetes node, a
    /// container whose logs are gone) stays `None`.
    pub fn names(&self, pod_uid: &str, container_id: Option<&str>) -> Names {
        let cached = self.found.borrow().pods.get(pod_uid).cloned();
        let Some((namespace, pod_name)) = cached.or_else(|| {
            let found = self.pod(pod_uid)?;
            let pods = &mut self.found.borrow_mut().pods;
            if pods.len() >= CACHED {
                pods.clear();
            }
            pods.insert(pod_uid.to_string(), found.clone());
            Some(found)
        }) else {
            return Names::default();
        };
        let container_name = container_id.and_then(|id| {
            let key = (pod_uid.to_string(), id.to_string());
            if let Some(name) = self.found.borrow().containers.get(&key) {
                return Some(name.clone());
            }
            let name = self.container(&namespace, &pod_name, id)?;
            let containers = &mut self.found.borrow_mut().containers;
            if containers.len() >= CACHED {
                containers.clear();
            }
            containers.insert(key, name.clone());
            Some(name)
        });
        Names {
            namespace: Some(namespace),
            pod_name: Some(pod_name),
            container_name,
        }
    }

    fn pod(&self, uid: &str) -> Option<(String, String)> {
        let entries = fs::read_dir(self.dir.join("pods")).ok()?;
        entries.flatten().find_map(|entry| {
            let name = entry.file_name();
            pod_dir(name.to_str()?, uid)
        })
    }

    fn container(&self, namespace: &str, pod: &str, id: &str) -> Option<String> {
        let entries = fs::read_dir(self.dir.join("containers")).ok()?;
        // Only this pod's links: `<pod>_<namespace>_`.
        let prefix = format!("{pod}_{namespace}_");
        entries.flatten().find_map(|entry| {
            let name = entry.file_name();
            let rest = name.to_str()?.strip_prefix(&prefix)?;
            container_log(rest, id)
        })
    }
}

/// `<namespace>_<pod>_<uid>` -> (namespace, pod) when the uid is `uid`.
fn pod_dir(name: &str, uid: &str) -> Option<(String, String)> {
    let rest = name.strip_suffix(uid)?.strip_suffix('_')?;
    let (namespace, pod) = rest.split_once('_')?;
    if namespace.is_empty() || pod.is_empty() || pod.contains('_') {
        return None;
    }
    Some((namespace.to_string(), pod.to_string()))
}

/// `<container>-<id>.log` -> container when the id is `id`.
fn container_log(name: &str, id: &str) -> Option<String> {
    let container = name
        .strip_suffix(".log")?
        .strip_suffix(id)?
        .strip_suffix('-')?;
    if container.is_empty() || container.contains('_') {
        return None;
    }
    Some(container.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "0f0e7c1a-3b2d-4c5e-8f9a-0123456789ab";
    const ID: &str = "4f3b7d8ce2a9c1b0d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8";

    #[test]
    fn pod_directories() {
        assert_eq!(
            pod_dir(&format!("kube-system_coredns-5d78c9869d-x2v7q_{UID}"), UID),
            Some(("kube-system".into(), "coredns-5d78c9869d-x2v7q".into()))
        );
        // Dots are allowed in pod names (DNS subdomains).
        assert_eq!(
            pod_dir(&format!("prod_web.v2-0_{UID}"), UID),
            Some(("prod".into(), "web.v2-0".into()))
        );
        let other = "11111111-2222-3333-4444-555555555555";
        assert_eq!(pod_dir(&format!("prod_web_{other}"), UID), None);
        assert_eq!(pod_dir(&format!("_web_{UID}"), UID), None);
        assert_eq!(pod_dir(&format!("prod__{UID}"), UID), None);
        assert_eq!(pod_dir(&format!("prod_a_b_{UID}"), UID), None);
        assert_eq!(pod_dir(UID, UID), None);
    }

    #[test]
    fn container_links() {
        assert_eq!(
            container_log(&format!("istio-proxy-{ID}.log"), ID),
            Some("istio-proxy".into())
        );
        assert_eq!(container_log(&format!("app-{ID}"), ID), None);
        assert_eq!(container_log(&format!("-{ID}.log"), ID), None);
        assert_eq!(container_log(&format!("app{ID}.log"), ID), None);
        assert_eq!(container_log(&format!("app-{}.log", &ID[1..]), ID), None);
    }

    #[test]
    fn names_from_a_kubelet_log_tree() {
        let root = std::env::temp_dir().join(format!("oomtrace-pods-{}", std::process::id()));
        let pods = root.join("pods").join(format!("shop_cart-7f9c_{UID}/api"));
        let containers = root.join("containers");
        fs::create_dir_all(&pods).expect("mkdir");
        fs::create_dir_all(&containers).expect("mkdir");
        // A same-named container of another pod must not be taken.
        for link in [
            format!("cart-7f9c_shop_api-{ID}.log"),
            format!("cart-7f9c_other_api-{}.log", "0".repeat(64)),
        ] {
            fs::write(containers.join(link), "").expect("write");
        }
        let logs = PodLogs::new(root.clone());
        assert_eq!(
            logs.names(UID, Some(ID)),
            Names {
                namespace: Some("shop".into()),
                pod_name: Some("cart-7f9c".into()),
                container_name: Some("api".into()),
            }
        );
        assert_eq!(
            logs.names(UID, Some(&"0".repeat(64))).container_name,
            None,
            "another namespace's container"
        );
        assert_eq!(
            logs.names("11111111-2222-3333-4444-555555555555", Some(ID)),
            Names::default()
        );
        assert_eq!(
            PodLogs::new(root.join("missing")).names(UID, None),
            Names::default()
        );
        // Found names are kept (no directory listed again); what was not
        // found is looked for again, and found once its logs appear.
        let late = "0".repeat(63) + "1";
        assert_eq!(logs.names(UID, Some(&late)).container_name, None);
        fs::write(
            containers.join(format!("cart-7f9c_shop_sidecar-{late}.log")),
            "",
        )
        .expect("write");
        let _ = fs::remove_dir_all(root.join("pods"));
        assert_eq!(
            logs.names(UID, Some(&late)).container_name.as_deref(),
            Some("sidecar"),
            "the pod's names from the cache, the new container's from its link"
        );
        let _ = fs::remove_dir_all(&containers);
        assert_eq!(
            logs.names(UID, Some(ID)),
            Names {
                namespace: Some("shop".into()),
                pod_name: Some("cart-7f9c".into()),
                container_name: Some("api".into()),
            },
            "from the cache, with the logs gone"
        );
        let _ = fs::remove_dir_all(&root);
    }

    proptest::proptest! {
        #[test]
        fn kubernetes_names_split_back(
            namespace in "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?",
            pod in "[a-z0-9]([a-z0-9.-]{0,40}[a-z0-9])?",
            container in "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?",
        ) {
            proptest::prop_assert_eq!(
                pod_dir(&format!("{namespace}_{pod}_{UID}"), UID),
                Some((namespace.clone(), pod.clone()))
            );
            proptest::prop_assert_eq!(
                container_log(&format!("{container}-{ID}.log"), ID),
                Some(container.clone())
            );
        }

        #[test]
        fn any_directory_name_is_safe(name in ".*") {
            let _ = pod_dir(&name, UID);
            let _ = container_log(&name, ID);
        }
    }
}
