//! One memory cgroup's usage, as its own counters say it: the figure a
//! trend is made of.

use std::{fs, io, path::Path};

use crate::enrich::cgroup::CgroupVersion;

/// A limit at or above this is no limit: v1 writes "unlimited" as
/// PAGE_COUNTER_MAX pages in bytes (9223372036854771712 with 4 KiB pages).
const NO_LIMIT: u64 = 1 << 62;

/// Usage of one cgroup at one moment, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Wall clock, milliseconds since the Unix epoch: samples outlive
    /// reboots, so the boot clock would not order them.
    pub time_ms: i64,
    /// `memory.current` (v2) or `memory.usage_in_bytes` (v1): what the
    /// limit is checked against.
    pub usage: u64,
    /// Anonymous memory (v2 `anon`, v1 `total_rss`): what a leak grows.
    pub anon: Option<u64>,
    /// Page cache (v2 `file`, v1 `total_cache`): reclaimable, so it can
    /// fill up to the limit without being a problem.
    pub file: Option<u64>,
    pub limit: u64,
}

/// The cgroup's own limit, `None` when it has none (a child of a limited
/// parent shares the parent's and is sampled there).
pub fn limit(dir: &Path, version: CgroupVersion) -> io::Result<Option<u64>> {
    let text = match version {
        CgroupVersion::V1 => fs::read_to_string(dir.join("memory.limit_in_bytes"))?,
        CgroupVersion::V2 => fs::read_to_string(dir.join("memory.max"))?,
    };
    Ok(parse_limit(&text))
}

/// `max` (v2) or a number; `None` for no limit.
pub fn parse_limit(text: &str) -> Option<u64> {
    let text = text.trim();
    if text == "max" {
        return None;
    }
    text.parse::<u64>().ok().filter(|n| *n < NO_LIMIT)
}

/// The usage counter alone: the one read per cgroup and interval that
/// tells whether anything changed.
pub fn usage(dir: &Path, version: CgroupVersion) -> io::Result<u64> {
    let file = match version {
        CgroupVersion::V1 => "memory.usage_in_bytes",
        CgroupVersion::V2 => "memory.current",
    };
    fs::read_to_string(dir.join(file))?
        .trim()
        .parse()
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{file} is not a number"),
            )
        })
}

/// Anonymous and file memory from `memory.stat`, counting the subtree.
pub fn split(dir: &Path, version: CgroupVersion) -> (Option<u64>, Option<u64>) {
    fs::read_to_string(dir.join("memory.stat"))
        .map(|text| parse_split(&text, version))
        .unwrap_or((None, None))
}

/// v2's `anon`/`file` are hierarchical already; v1's `rss`/`cache` are the
/// cgroup's own pages only, its `total_*` counts the children too.
pub fn parse_split(stat: &str, version: CgroupVersion) -> (Option<u64>, Option<u64>) {
    let (anon_key, file_key) = match version {
        CgroupVersion::V1 => ("total_rss", "total_cache"),
        CgroupVersion::V2 => ("anon", "file"),
    };
    let mut anon = None;
    let mut file = None;
    for line in stat.lines() {
        let mut words = line.split_whitespace();
        let (Some(key), Some(value)) = (words.next(), words.next()) else {
            continue;
        };
        let slot = match key {
            k if k == anon_key => &mut anon,
            k if k == file_key => &mut file,
            _ => continue,
        };
        *slot = value.parse().ok();
    }
    (anon, file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_is_none_on_both_versions() {
        assert_eq!(parse_limit("max\n"), None);
        assert_eq!(parse_limit("9223372036854771712\n"), None);
        assert_eq!(parse_limit("67108864\n"), Some(64 << 20));
        assert_eq!(parse_limit("garbage"), None);
    }

    #[test]
    fn the_split_counts_the_subtree() {
        let v1 = "cache 4096\nrss 8192\ntotal_cache 1048576\ntotal_rss 2097152\n";
        assert_eq!(
            parse_split(v1, CgroupVersion::V1),
            (Some(2 << 20), Some(1 << 20))
        );
        let v2 = "anon 3145728\nfile 524288\nkernel 4096\nanon_thp 0\nfile_mapped 0\n";
        assert_eq!(
            parse_split(v2, CgroupVersion::V2),
            (Some(3 << 20), Some(512 << 10))
        );
        assert_eq!(parse_split("", CgroupVersion::V2), (None, None));
        assert_eq!(
            parse_split("anon x\nfile\n", CgroupVersion::V2),
            (None, None)
        );
    }
}
