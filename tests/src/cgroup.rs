//! Memory cgroups the tests create, and always remove.

use std::{
    fs,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};

use crate::wait;

/// Largest limit a test may set: tests never come near the host's memory.
pub const MAX_LIMIT: u64 = 256 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// The memory controller's hierarchy on this machine.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    pub root: PathBuf,
    pub version: Version,
}

impl Hierarchy {
    pub fn find() -> Result<Hierarchy> {
        let mounts = fs::read_to_string("/proc/self/mounts").context("read /proc/self/mounts")?;
        let mut v2 = None;
        for line in mounts.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 4 {
                continue;
            }
            if fields[2] == "cgroup" && fields[3].split(',').any(|o| o == "memory") {
                return Ok(Hierarchy {
                    root: fields[1].into(),
                    version: Version::V1,
                });
            }
            if fields[2] == "cgroup2"
                && fs::read_to_string(Path::new(fields[1]).join("cgroup.controllers"))
                    .is_ok_and(|c| c.split_whitespace().any(|n| n == "memory"))
            {
                v2 = Some(PathBuf::from(fields[1]));
            }
        }
        match v2 {
            Some(root) => Ok(Hierarchy {
                root,
                version: Version::V2,
            }),
            None => bail!("no memory cgroup controller is mounted"),
        }
    }
}

/// A memory cgroup created by a test. Dropping it kills whatever the test
/// left inside (only our own processes live there) and removes it, children
/// first, also when the test panics.
pub struct TestCgroup {
    pub dir: PathBuf,
    pub hierarchy: Hierarchy,
    children: Vec<TestCgroup>,
}

static SEQUENCE: AtomicU32 = AtomicU32::new(0);

impl TestCgroup {
    /// Creates `oomtrace-test-<pid>-<n>-<name>` at the hierarchy root with a
    /// memory limit of `limit` bytes (at most [`MAX_LIMIT`]).
    pub fn new(name: &str, limit: u64) -> Result<TestCgroup> {
        let hierarchy = Hierarchy::find()?;
        let unique = format!(
            "oomtrace-test-{}-{}-{name}",
            std::process::id(),
            SEQUENCE.fetch_add(1, Ordering::Relaxed)
        );
        let dir = hierarchy.root.join(unique);
        fs::create_dir(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
        let cgroup = TestCgroup {
            dir,
            hierarchy,
            children: Vec::new(),
        };
        // On v2 the controller is delegated to children only when a test
        // makes some ([`TestCgroup::child`]): a cgroup that delegates may
        // not hold processes itself.
        cgroup.set_limit(limit)?;
        Ok(cgroup)
    }

    /// A child cgroup without a limit of its own (the parent's applies).
    /// `name` may be a path (`a/b/c`): missing levels are created, each
    /// with the memory controller delegated to the next one.
    pub fn child(&mut self, name: &str) -> Result<PathBuf> {
        let mut dir = self.dir.clone();
        for part in Path::new(name).components() {
            if hierarchy_is_v2(self) {
                let _ = fs::write(dir.join("cgroup.subtree_control"), "+memory");
            }
            dir.push(part);
            if dir.is_dir() {
                continue;
            }
            fs::create_dir(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
            self.children.push(TestCgroup {
                dir: dir.clone(),
                hierarchy: self.hierarchy.clone(),
                children: Vec::new(),
            });
        }
        Ok(dir)
    }

    /// Sets a memory limit on a child created by [`TestCgroup::child`].
    pub fn set_child_limit(&self, dir: &Path, limit: u64) -> Result<&TestCgroup> {
        let child = self
            .children
            .iter()
            .find(|c| c.dir == dir)
            .with_context(|| format!("{} is not a child of this test cgroup", dir.display()))?;
        child.set_limit(limit)?;
        Ok(child)
    }

    pub fn set_limit(&self, limit: u64) -> Result<()> {
        assert!(
            limit <= MAX_LIMIT,
            "test cgroups are limited to {MAX_LIMIT} bytes"
        );
        let (file, value) = match self.hierarchy.version {
            Version::V1 => ("memory.limit_in_bytes", limit.to_string()),
            Version::V2 => ("memory.max", limit.to_string()),
        };
        fs::write(self.dir.join(file), value).with_context(|| format!("set {file}"))?;
        if self.hierarchy.version == Version::V2 {
            // No swap escape hatch: the limit must end in an OOM kill.
            let _ = fs::write(self.dir.join("memory.swap.max"), "0");
        }
        Ok(())
    }

    /// Path relative to the hierarchy root, as the kernel log writes it.
    pub fn path(&self) -> String {
        relative(&self.hierarchy.root, &self.dir)
    }

    pub fn relative(&self, dir: &Path) -> String {
        relative(&self.hierarchy.root, dir)
    }

    /// Inode of the cgroup directory: the kernfs id the kernel reports.
    pub fn id(&self) -> u64 {
        fs::metadata(&self.dir).map(|m| m.ino()).unwrap_or(0)
    }

    pub fn id_of(dir: &Path) -> u64 {
        fs::metadata(dir).map(|m| m.ino()).unwrap_or(0)
    }

    /// The cgroup's own OOM-kill counter (v1 memory.oom_control, v2
    /// memory.events).
    pub fn oom_kills(&self) -> Result<u64> {
        let file = match self.hierarchy.version {
            Version::V1 => "memory.oom_control",
            Version::V2 => "memory.events",
        };
        let text =
            fs::read_to_string(self.dir.join(file)).with_context(|| format!("read {file}"))?;
        text.lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .context("no oom_kill line")?
            .trim()
            .parse()
            .context("parse oom_kill")
    }

    /// The memory limit, from the cgroup's own file.
    pub fn limit(&self) -> Result<u64> {
        self.read_u64(match self.hierarchy.version {
            Version::V1 => "memory.limit_in_bytes",
            Version::V2 => "memory.max",
        })
    }

    /// What the limit is checked against: v1 `memory.usage_in_bytes`, v2
    /// `memory.current`.
    pub fn usage(&self) -> Result<u64> {
        self.read_u64(match self.hierarchy.version {
            Version::V1 => "memory.usage_in_bytes",
            Version::V2 => "memory.current",
        })
    }

    /// The high-water mark: v1 `memory.max_usage_in_bytes`, v2 `memory.peak`.
    pub fn max_usage(&self) -> Result<u64> {
        self.read_u64(match self.hierarchy.version {
            Version::V1 => "memory.max_usage_in_bytes",
            Version::V2 => "memory.peak",
        })
    }

    /// [`Self::max_usage`], or `None` where the kernel has no such file
    /// (v2 `memory.peak` arrived in 5.19).
    pub fn max_usage_if_any(&self) -> Result<Option<u64>> {
        if self.hierarchy.version == Version::V2 && !self.dir.join("memory.peak").exists() {
            return Ok(None);
        }
        self.max_usage().map(Some)
    }

    fn read_u64(&self, file: &str) -> Result<u64> {
        let text =
            fs::read_to_string(self.dir.join(file)).with_context(|| format!("read {file}"))?;
        text.trim()
            .parse()
            .with_context(|| format!("parse {file}: {text:?}"))
    }

    fn remove(&mut self) {
        // Deepest first: children are recorded parent before child.
        for child in self.children.iter_mut().rev() {
            child.remove();
        }
        // Killed processes leave the cgroup only once they are reaped.
        let mut last_error = None;
        let removed = wait::poll(Duration::from_secs(10), Duration::from_millis(20), || {
            let procs = fs::read_to_string(self.dir.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                // SAFETY: only processes this test placed in its own cgroup.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            Ok(match fs::remove_dir(&self.dir) {
                Ok(()) => Some(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(()),
                Err(e) => {
                    last_error = Some(e);
                    None
                }
            })
        });
        if !matches!(removed, Ok(Some(()))) {
            eprintln!(
                "warning: cannot remove {}: {last_error:?}",
                self.dir.display()
            );
        }
    }
}

fn hierarchy_is_v2(cgroup: &TestCgroup) -> bool {
    cgroup.hierarchy.version == Version::V2
}

fn relative(root: &Path, dir: &Path) -> String {
    format!("/{}", dir.strip_prefix(root).unwrap_or(dir).display())
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Removes `oomtrace-test-*` cgroups left by an earlier, killed run. Only
/// ever touches cgroups with our prefix at the hierarchy root.
pub fn remove_leftovers() -> Result<usize> {
    let hierarchy = Hierarchy::find()?;
    let mut removed = 0;
    for entry in fs::read_dir(&hierarchy.root)?.flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with("oomtrace-test-") && entry.path().is_dir() {
            let mut stale = TestCgroup {
                dir: entry.path(),
                hierarchy: hierarchy.clone(),
                children: list_children(&entry.path(), &hierarchy),
            };
            stale.remove();
            removed += 1;
        }
    }
    Ok(removed)
}

fn list_children(dir: &Path, hierarchy: &Hierarchy) -> Vec<TestCgroup> {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| TestCgroup {
                    dir: e.path(),
                    hierarchy: hierarchy.clone(),
                    children: list_children(&e.path(), hierarchy),
                })
                .collect()
        })
        .unwrap_or_default()
}
