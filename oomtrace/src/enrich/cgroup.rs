//! Memory cgroup paths from ids, for the rare record whose path the kernel
//! side could not capture whole (deeper or longer than it keeps).

use std::{
    fs,
    os::unix::fs::{DirEntryExt as _, MetadataExt as _},
    path::{Path, PathBuf},
};

/// Where the memory controller is mounted, and which cgroup version it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryHierarchy {
    pub mount: PathBuf,
    pub version: CgroupVersion,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    V1,
    V2,
}

impl MemoryHierarchy {
    /// Finds the memory controller: a v1 `memory` mount, else a cgroup2
    /// mount whose root lists `memory` in `cgroup.controllers`.
    pub fn find() -> Option<MemoryHierarchy> {
        let mounts = fs::read_to_string("/proc/self/mounts").ok()?;
        find_in_mounts(&mounts, |dir| {
            fs::read_to_string(dir.join("cgroup.controllers"))
                .is_ok_and(|c| c.split_whitespace().any(|name| name == "memory"))
        })
    }

    /// The path (relative to the hierarchy root, `/a/b`) of the cgroup whose
    /// directory has inode `id`, or `None` when no such cgroup exists (any
    /// more). Walks the hierarchy breadth first.
    pub fn path_of(&self, id: u64) -> Option<String> {
        let root_ino = fs::metadata(&self.mount).ok()?.ino();
        if root_ino == id {
            return Some("/".to_string());
        }
        let mut queue = vec![self.mount.clone()];
        while let Some(dir) = queue.pop() {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                if !kind.is_dir() {
                    continue;
                }
                let path = entry.path();
                if entry.ino() == id {
                    return relative(&self.mount, &path);
                }
                queue.push(path);
            }
        }
        None
    }
}

fn relative(mount: &Path, dir: &Path) -> Option<String> {
    let rest = dir.strip_prefix(mount).ok()?;
    Some(format!("/{}", rest.to_str()?))
}

/// Parses /proc/self/mounts text. `has_memory_v2` tells whether a cgroup2
/// mount carries the memory controller.
pub fn find_in_mounts(
    mounts: &str,
    has_memory_v2: impl Fn(&Path) -> bool,
) -> Option<MemoryHierarchy> {
    let mut v2 = None;
    for line in mounts.lines() {
        // One space between fields: the kernel escapes only space, tab,
        // newline and backslash in a mount point, so other whitespace
        // (\v, \r, U+00A0) belongs to the path.
        let mut fields = line.split(' ');
        let (Some(_source), Some(target), Some(fstype), Some(options)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let target = PathBuf::from(unescape_mount_path(target));
        match fstype {
            "cgroup" if options.split(',').any(|o| o == "memory") => {
                return Some(MemoryHierarchy {
                    mount: target,
                    version: CgroupVersion::V1,
                });
            }
            "cgroup2" if v2.is_none() && has_memory_v2(&target) => v2 = Some(target),
            _ => {}
        }
    }
    v2.map(|mount| MemoryHierarchy {
        mount,
        version: CgroupVersion::V2,
    })
}

/// /proc/mounts writes space, tab, newline and backslash as octal escapes.
fn unescape_mount_path(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let value = bytes[i + 1..i + 4]
                .iter()
                .fold(0u32, |acc, digit| acc * 8 + u32::from(digit - b'0'));
            match u8::try_from(value) {
                Ok(byte) => out.push(byte),
                Err(_) => out.extend_from_slice(&bytes[i..i + 4]),
            }
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
";

    const UNIFIED: &str = "sysfs /sys sysfs rw 0 0
cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate 0 0
";

    #[test]
    fn v1_memory_mount_wins_on_hybrid_hosts() {
        let found = find_in_mounts(HYBRID, |_| false).expect("found");
        assert_eq!(found.mount, PathBuf::from("/sys/fs/cgroup/memory"));
        assert_eq!(found.version, CgroupVersion::V1);
    }

    #[test]
    fn cgroup2_counts_only_with_the_memory_controller() {
        assert_eq!(find_in_mounts(UNIFIED, |_| false), None);
        let found = find_in_mounts(UNIFIED, |p| p == Path::new("/sys/fs/cgroup")).expect("found");
        assert_eq!(found.version, CgroupVersion::V2);
        assert_eq!(found.mount, PathBuf::from("/sys/fs/cgroup"));
    }

    #[test]
    fn a_controller_list_with_memory_among_others_is_v1_memory() {
        let mounts = "cgroup /cg/mem+cpu cgroup rw,cpu,memory,nosuid 0 0\n";
        assert_eq!(
            find_in_mounts(mounts, |_| false).map(|h| h.mount),
            Some(PathBuf::from("/cg/mem+cpu"))
        );
        let not_memory = "cgroup /cg/x cgroup rw,memory_recursiveprot 0 0\n";
        assert_eq!(find_in_mounts(not_memory, |_| false), None);
    }

    #[test]
    fn whitespace_the_kernel_leaves_unescaped_stays_in_the_mount_point() {
        // Found by the proc_status fuzz target: a \v in the path split it.
        let mounts = "cgroup /cg/a\u{b}b\u{a0}c\\040d cgroup rw,memory 0 0\n";
        assert_eq!(
            find_in_mounts(mounts, |_| false).map(|h| h.mount),
            Some(PathBuf::from("/cg/a\u{b}b\u{a0}c d"))
        );
    }

    #[test]
    fn octal_escapes_in_mount_points_are_decoded() {
        assert_eq!(unescape_mount_path("/a\\040b"), "/a b");
        assert_eq!(unescape_mount_path("/plain"), "/plain");
        assert_eq!(unescape_mount_path("/end\\04"), "/end\\04");
        assert_eq!(unescape_mount_path("/big\\777"), "/big\\777");
    }

    #[test]
    fn paths_are_relative_to_the_mount() {
        let mount = Path::new("/sys/fs/cgroup/memory");
        assert_eq!(
            relative(mount, Path::new("/sys/fs/cgroup/memory/a/b")).as_deref(),
            Some("/a/b")
        );
        assert_eq!(relative(mount, Path::new("/elsewhere")), None);
    }
}
