//! Retention: `--store-keep` and `--store-max`, enforced by the time index
//! and rowid ranges, so the cost is the rows removed, not the rows kept.

use std::time::Duration;

use super::Store;

/// Rows deleted per step when the database is over its size: small steps
/// keep each transaction short, and the oldest go first.
const TRIM_ROWS: u64 = 500;

/// `--store-keep` and `--store-max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub keep: Duration,
    pub max_bytes: u64,
}

impl Default for Retention {
    /// A month of kills fits in a few MiB; 64 MiB leaves room for storms.
    fn default() -> Retention {
        Retention {
            keep: Duration::from_secs(30 * 86400),
            max_bytes: 64 << 20,
        }
    }
}

impl Store {
    /// Bytes the database file takes: pages in use and free ones, from the
    /// header (no scan).
    pub fn size_bytes(&self) -> rusqlite::Result<u64> {
        let pages: i64 = self
            .conn
            .pragma_query_value(None, "page_count", |row| row.get(0))?;
        let page: i64 = self
            .conn
            .pragma_query_value(None, "page_size", |row| row.get(0))?;
        Ok(u64::try_from(pages.saturating_mul(page)).unwrap_or(0))
    }

    /// Removes what is older than `keep` before `now_ns`, then the oldest
    /// rows until the file fits `max_bytes`. Uses the time index and rowid
    /// ranges only: the cost is the rows removed, not the rows kept.
    /// Returns how many rows went.
    pub fn enforce(&mut self, retention: Retention, now_ns: i64) -> rusqlite::Result<u64> {
        let keep = i64::try_from(retention.keep.as_nanos()).unwrap_or(i64::MAX);
        let cutoff = now_ns.saturating_sub(keep);
        let mut removed =
            self.conn
                .execute("DELETE FROM records WHERE time_ns < ?1", [cutoff])? as u64;
        removed += self.expire_samples(cutoff / 1_000_000)? as u64;
        self.give_back()?;
        loop {
            let size = self.size_bytes()?;
            if size <= retention.max_bytes {
                break;
            }
            // Rowids grow with insertion, so the lowest are the oldest;
            // min and max come from the rowid b-tree's ends, not a scan.
            let (first, last): (Option<i64>, Option<i64>) =
                self.conn
                    .query_row("SELECT min(id), max(id) FROM records", [], |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })?;
            let (Some(first), Some(last)) = (first, last) else {
                // No records left: only samples fill the file.
                let gone = self.trim_samples(TRIM_ROWS)?;
                if gone == 0 {
                    break;
                }
                removed += gone as u64;
                self.give_back()?;
                continue;
            };
            // As many rows as the excess holds, judged by the average row.
            let rows = u64::try_from(last - first + 1).unwrap_or(1).max(1);
            let per_row = (size / rows).max(1);
            let step = ((size - retention.max_bytes) / per_row + 1).min(TRIM_ROWS);
            let gone = self.conn.execute(
                "DELETE FROM records WHERE id < ?1",
                [first.saturating_add(i64::try_from(step).unwrap_or(1))],
            )?;
            // Samples are most of the rows on a node with many cgroups and
            // few kills: the oldest of them go too, in the same steps.
            removed += (gone + self.trim_samples(TRIM_ROWS)?) as u64;
            self.give_back()?;
        }
        if removed > 0 {
            // The freed pages leave the file only when the WAL is written
            // back: do it now, so the disk sees the limit, not just SQLite.
            self.conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        }
        Ok(removed)
    }

    /// Returns free pages to the file system.
    fn give_back(&self) -> rusqlite::Result<()> {
        // Each step it frees a page; the statement must be stepped to done.
        let mut vacuum = self.conn.prepare("PRAGMA incremental_vacuum")?;
        let mut rows = vacuum.query([])?;
        while rows.next()?.is_some() {}
        Ok(())
    }
}
