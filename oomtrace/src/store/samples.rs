//! The `samples` table: each limited memory cgroup's usage over time
//! (`trend::sampler` writes it, a kill's `trend` reads it back).
//!
//! Bounded per cgroup: full resolution for [`FULL_RESOLUTION_MS`], then one
//! sample per [`COARSE_MS`]; gone with the records past `--store-keep`, and
//! the oldest first when the file is over `--store-max`.

use rusqlite::params;

use super::Store;
use crate::trend::sample::Sample;

/// Samples younger than this are all kept.
pub const FULL_RESOLUTION_MS: i64 = 24 * 3600 * 1000;
/// Older ones: the last of each such bucket per cgroup.
pub const COARSE_MS: i64 = 10 * 60 * 1000;
/// Most samples one trend query returns (6 h at 30 s is 720).
pub const MAX_QUERY: usize = 2000;

impl Store {
    /// Keeps samples of many cgroups in one transaction.
    pub fn insert_samples(&mut self, samples: &[(String, Sample)]) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare(
                "INSERT INTO samples (memcg_path, time_ms, usage, anon, file, limit_bytes)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for (path, s) in samples {
                insert.execute(params![
                    path,
                    s.time_ms,
                    to_sql(s.usage),
                    s.anon.map(to_sql),
                    s.file.map(to_sql),
                    to_sql(s.limit),
                ])?;
            }
        }
        tx.commit()
    }

    /// The samples of `path` with `from_ms <= time_ms <= to_ms`, oldest
    /// first, at most [`MAX_QUERY`] (the latest ones).
    pub fn samples(&self, path: &str, from_ms: i64, to_ms: i64) -> rusqlite::Result<Vec<Sample>> {
        let mut query = self.conn.prepare(
            "SELECT time_ms, usage, anon, file, limit_bytes FROM samples
             WHERE memcg_path = ?1 AND time_ms >= ?2 AND time_ms <= ?3
             ORDER BY time_ms DESC LIMIT ?4",
        )?;
        let rows = query.query_map(params![path, from_ms, to_ms, MAX_QUERY as i64], |row| {
            Ok(Sample {
                time_ms: row.get(0)?,
                usage: from_sql(row.get(1)?),
                anon: row.get::<_, Option<i64>>(2)?.map(from_sql),
                file: row.get::<_, Option<i64>>(3)?.map(from_sql),
                limit: from_sql(row.get(4)?),
            })
        })?;
        let mut samples = rows.collect::<rusqlite::Result<Vec<Sample>>>()?;
        samples.reverse();
        Ok(samples)
    }

    /// Thins the samples between `since_ms` and `now_ms - FULL_RESOLUTION_MS`
    /// to one per [`COARSE_MS`] per cgroup. The writer passes 0 once per
    /// run (whatever aged while oomtrace was down), then only the hour that
    /// just aged: the range, not the table.
    pub fn downsample(&mut self, since_ms: i64, now_ms: i64) -> rusqlite::Result<usize> {
        let until = now_ms - FULL_RESOLUTION_MS;
        if until <= since_ms {
            return Ok(0);
        }
        // Whole buckets only, so a bucket is thinned once.
        let (from, until) = (
            since_ms - since_ms.rem_euclid(COARSE_MS),
            until - until.rem_euclid(COARSE_MS),
        );
        self.conn.execute(
            "DELETE FROM samples WHERE time_ms >= ?1 AND time_ms < ?2 AND rowid NOT IN (
                 SELECT max(rowid) FROM samples WHERE time_ms >= ?1 AND time_ms < ?2
                 GROUP BY memcg_path, time_ms / ?3)",
            params![from, until, COARSE_MS],
        )
    }

    /// Samples older than `cutoff_ms` go (with the records of that age).
    pub(super) fn expire_samples(&self, cutoff_ms: i64) -> rusqlite::Result<usize> {
        self.conn
            .execute("DELETE FROM samples WHERE time_ms < ?1", [cutoff_ms])
    }

    /// The oldest `rows` samples go, when the file is over its size.
    pub(super) fn trim_samples(&self, rows: u64) -> rusqlite::Result<usize> {
        self.conn.execute(
            "DELETE FROM samples WHERE rowid IN (SELECT rowid FROM samples ORDER BY time_ms LIMIT ?1)",
            [i64::try_from(rows).unwrap_or(i64::MAX)],
        )
    }
}

/// SQLite integers are signed; byte counts above 2^63 do not occur.
fn to_sql(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

fn from_sql(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_store(name: &str) -> (Store, std::path::PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("oomtrace-samples-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("t.db");
        (Store::open(&path).expect("opens"), dir)
    }

    fn sample(time_ms: i64, usage: u64) -> Sample {
        Sample {
            time_ms,
            usage,
            anon: Some(usage / 2),
            file: None,
            limit: 1 << 30,
        }
    }

    #[test]
    fn samples_come_back_per_cgroup_in_time_order() {
        let (mut store, dir) = temp_store("order");
        let rows: Vec<(String, Sample)> = (0..10)
            .flat_map(|i| {
                [
                    ("/a".to_string(), sample(i * 1000, i as u64)),
                    ("/b".to_string(), sample(i * 1000, 100 + i as u64)),
                ]
            })
            .collect();
        store.insert_samples(&rows).expect("inserts");
        let a = store.samples("/a", 2000, 5000).expect("reads");
        assert_eq!(
            a.iter().map(|s| s.usage).collect::<Vec<_>>(),
            vec![2, 3, 4, 5]
        );
        assert_eq!(a[0], sample(2000, 2));
        assert!(store.samples("/c", 0, i64::MAX).expect("reads").is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn old_samples_thin_to_one_per_bucket_and_recent_ones_stay() {
        let (mut store, dir) = temp_store("thin");
        let now = 10 * FULL_RESOLUTION_MS;
        let old_start = now - FULL_RESOLUTION_MS - 3 * COARSE_MS;
        // Every 30 s for 3 old buckets and 3 recent ones.
        let rows: Vec<(String, Sample)> = (0..(6 * COARSE_MS / 30_000))
            .map(|i| ("/a".to_string(), sample(old_start + i * 30_000, i as u64)))
            .collect();
        store.insert_samples(&rows).expect("inserts");
        store.downsample(0, now).expect("thins");
        let old = store
            .samples("/a", 0, now - FULL_RESOLUTION_MS - 1)
            .expect("reads");
        assert_eq!(old.len(), 3, "one per old bucket: {old:?}");
        let per_bucket = (COARSE_MS / 30_000) as u64;
        assert_eq!(
            old.iter().map(|s| s.usage).collect::<Vec<_>>(),
            vec![per_bucket - 1, 2 * per_bucket - 1, 3 * per_bucket - 1],
            "the last of each bucket"
        );
        let recent = store
            .samples("/a", now - FULL_RESOLUTION_MS, now)
            .expect("reads");
        assert_eq!(recent.len() as u64, 3 * per_bucket);
        // Thinning again changes nothing.
        assert_eq!(store.downsample(0, now).expect("thins"), 0);
        let _ = std::fs::remove_dir_all(dir);
    }
}
