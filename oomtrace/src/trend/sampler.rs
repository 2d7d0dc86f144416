//! Every `--trend-interval`: walk the memory hierarchy and sample each
//! cgroup that has a limit of its own. One wakeup per interval; a cgroup
//! whose usage barely moved costs two small reads and writes nothing.

use std::{collections::HashMap, fs, path::Path};

use super::sample::{self, Sample};
use crate::enrich::cgroup::MemoryHierarchy;

/// A sample is kept when usage moved by at least this share of the limit
/// since the last one kept...
const MOVED_SHARE: u64 = 100;
/// ... or this long after it, so a flat line still has points.
const HEARTBEAT_MS: i64 = 10 * 60 * 1000;
/// Deepest cgroup walked (kubepods.slice/.../container is 4-5 deep).
const MAX_DEPTH: usize = 16;
/// Most cgroups sampled per tick: a bound on a node with a cgroup leak.
const MAX_CGROUPS: usize = 10_000;

/// The last sample kept for a cgroup, to tell whether it changed.
#[derive(Debug, Clone, Copy)]
struct Kept {
    usage: u64,
    time_ms: i64,
    tick: u64,
}

pub struct Sampler {
    hierarchy: MemoryHierarchy,
    kept: HashMap<String, Kept>,
    tick: u64,
}

impl Sampler {
    pub fn new(hierarchy: MemoryHierarchy) -> Sampler {
        Sampler {
            hierarchy,
            kept: HashMap::new(),
            tick: 0,
        }
    }

    /// Samples that changed since the last kept ones, by cgroup path
    /// (relative to the hierarchy, as records write it). Cgroups that are
    /// gone are forgotten.
    pub fn tick(&mut self, now_ms: i64) -> Vec<(String, Sample)> {
        self.tick += 1;
        let mut out = Vec::new();
        let mut stack = vec![(self.hierarchy.mount.clone(), 0usize)];
        let mut visited = 0;
        while let Some((dir, depth)) = stack.pop() {
            visited += 1;
            if visited > MAX_CGROUPS {
                break;
            }
            // The root's "limit" is the machine: a host OOM is global.
            if depth > 0
                && let Some(path) = relative(&self.hierarchy.mount, &dir)
                && let Some(sample) = self.sample(&dir, &path, now_ms)
            {
                out.push((path, sample));
            }
            if depth >= MAX_DEPTH {
                continue;
            }
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push((entry.path(), depth + 1));
                }
            }
        }
        let tick = self.tick;
        self.kept.retain(|_, kept| kept.tick == tick);
        out
    }

    fn sample(&mut self, dir: &Path, path: &str, now_ms: i64) -> Option<Sample> {
        let version = self.hierarchy.version;
        let limit = sample::limit(dir, version).ok().flatten()?;
        let usage = sample::usage(dir, version).ok()?;
        let tick = self.tick;
        if let Some(kept) = self.kept.get_mut(path) {
            kept.tick = tick;
            let moved = usage.abs_diff(kept.usage) >= limit / MOVED_SHARE;
            if !moved && now_ms - kept.time_ms < HEARTBEAT_MS {
                return None;
            }
        }
        let (anon, file) = sample::split(dir, version);
        self.kept.insert(
            path.to_string(),
            Kept {
                usage,
                time_ms: now_ms,
                tick,
            },
        );
        Some(Sample {
            time_ms: now_ms,
            usage,
            anon,
            file,
            limit,
        })
    }
}

fn relative(mount: &Path, dir: &Path) -> Option<String> {
    let rest = dir.strip_prefix(mount).ok()?;
    Some(format!("/{}", rest.to_str()?))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::enrich::cgroup::CgroupVersion;

    /// A fake v2 hierarchy in a temp dir: the reading logic, not the kernel.
    struct Tree(PathBuf);

    impl Tree {
        fn new(name: &str) -> Tree {
            let dir = std::env::temp_dir()
                .join(format!("oomtrace-sampler-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).expect("temp dir");
            Tree(dir)
        }

        fn cgroup(&self, path: &str, max: &str, current: u64, anon: u64) {
            let dir = self.0.join(path);
            fs::create_dir_all(&dir).expect("cgroup dir");
            fs::write(dir.join("memory.max"), format!("{max}\n")).expect("max");
            fs::write(dir.join("memory.current"), format!("{current}\n")).expect("current");
            fs::write(
                dir.join("memory.stat"),
                format!("anon {anon}\nfile {}\n", current - anon),
            )
            .expect("stat");
        }

        fn sampler(&self) -> Sampler {
            Sampler::new(MemoryHierarchy {
                mount: self.0.clone(),
                version: CgroupVersion::V2,
            })
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn only_limited_cgroups_are_sampled_and_only_when_they_move() {
        let tree = Tree::new("moves");
        tree.cgroup("pod", "104857600", 50 << 20, 40 << 20);
        tree.cgroup("pod/app", "max", 30 << 20, 25 << 20);
        tree.cgroup("free", "max", 1 << 20, 1 << 20);
        let mut sampler = tree.sampler();
        let first = sampler.tick(1_000);
        assert_eq!(first.len(), 1, "{first:?}");
        assert_eq!(first[0].0, "/pod");
        assert_eq!(
            first[0].1,
            Sample {
                time_ms: 1_000,
                usage: 50 << 20,
                anon: Some(40 << 20),
                file: Some(10 << 20),
                limit: 100 << 20,
            }
        );
        // Moved by less than 1% of the limit: nothing new.
        tree.cgroup("pod", "104857600", (50 << 20) + 4096, 40 << 20);
        assert!(sampler.tick(31_000).is_empty());
        // Moved by 2 MiB: a sample.
        tree.cgroup("pod", "104857600", 52 << 20, 42 << 20);
        assert_eq!(sampler.tick(61_000).len(), 1);
        // A flat line still gets a point every heartbeat.
        assert_eq!(sampler.tick(61_000 + HEARTBEAT_MS).len(), 1);
    }

    #[test]
    fn a_removed_cgroup_is_forgotten() {
        let tree = Tree::new("gone");
        tree.cgroup("c", "1048576", 4096, 4096);
        let mut sampler = tree.sampler();
        assert_eq!(sampler.tick(0).len(), 1);
        fs::remove_dir_all(tree.0.join("c")).expect("remove");
        assert!(sampler.tick(1).is_empty());
        assert!(sampler.kept.is_empty());
        // Back again (a restart with the same name): sampled at once.
        tree.cgroup("c", "1048576", 4096, 4096);
        assert_eq!(sampler.tick(2).len(), 1);
    }
}
