//! The local history of every record (`--store`): a SQLite database that
//! `oomtrace list` answers from hours later, across restarts.
//!
//! Each record is kept as the exact JSON line the stream wrote, plus
//! indexed columns read from it ([`columns`]). The stream stays the first
//! and authoritative path: writes happen on a thread of their own
//! ([`writer`]) and a failing store never stops it.
//!
//! Crash safety: WAL with `synchronous=NORMAL`. A SIGKILL of oomtrace never
//! corrupts the file and loses only what was not yet committed (the
//! writer's queue, see [`writer`]); a power loss may also lose
//! the last committed transactions, never the file.

pub mod columns;
pub mod list;
pub mod retention;
pub mod samples;
pub mod show;
pub mod writer;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use rusqlite::{Connection, OpenFlags, params};

pub use self::retention::Retention;

use self::columns::Columns;

/// Where root keeps the history by default.
pub const DEFAULT_PATH: &str = "/var/lib/oomtrace/oomtrace.db";

/// Migrations, in order: `PRAGMA user_version` is how many have run.
/// Never edit one that shipped; add the next.
const MIGRATIONS: &[&str] = &[
    // 1: records as JSON with the columns `list` filters on.
    "CREATE TABLE records (
        id INTEGER PRIMARY KEY,
        time_ns INTEGER NOT NULL,
        boot_ns INTEGER,
        type TEXT NOT NULL,
        host TEXT,
        pid INTEGER,
        comm TEXT,
        memcg_path TEXT,
        oom_memcg_path TEXT,
        pod_uid TEXT,
        pod_name TEXT,
        container_id TEXT,
        container_name TEXT,
        oom_constraint TEXT,
        json TEXT NOT NULL
    );
    CREATE INDEX records_time ON records (time_ns);
    CREATE INDEX records_type_time ON records (type, time_ns);",
    // 2: the workload a kill's history is kept per, so it can be rebuilt
    // at start without reading every record's JSON.
    "ALTER TABLE records ADD COLUMN workload TEXT;
    UPDATE records SET workload = json_extract(json, '$.history.workload')
        WHERE type = 'oom_kill';
    CREATE INDEX records_workload_time ON records (workload, time_ns)
        WHERE workload IS NOT NULL;",
    // 3: `list` filters on the columns alone; with them in one index it
    // reads that, not the table, whose rows are mostly JSON (a page each:
    // 1.7 s instead of 0.1 s over 100,000 kills).
    "DROP INDEX records_type_time;
    CREATE INDEX records_list ON records (type, time_ns, boot_ns, host, pid, comm,
        memcg_path, oom_memcg_path, pod_uid, pod_name, container_id, container_name,
        oom_constraint, workload);",
    // 4: limited cgroups' usage over time, for the trend at each kill.
    "CREATE TABLE samples (
        memcg_path TEXT NOT NULL,
        time_ms INTEGER NOT NULL,
        usage INTEGER NOT NULL,
        anon INTEGER,
        file INTEGER,
        limit_bytes INTEGER NOT NULL
    );
    CREATE INDEX samples_path_time ON samples (memcg_path, time_ms);
    CREATE INDEX samples_time ON samples (time_ms);",
];

/// How long a writer waits for another process's lock (a `list` reading,
/// a second oomtrace) before the batch counts as failed.
const BUSY_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the store cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{path} was written by a newer oomtrace (schema {found}, this one knows {known})")]
    Newer {
        path: PathBuf,
        found: i64,
        known: usize,
    },
}

/// `path` for a `file:` URI: `%`, `?` and `#` escaped.
fn uri_path(path: &Path) -> String {
    let mut uri = String::new();
    for c in path.to_string_lossy().chars() {
        match c {
            '%' | '?' | '#' => uri.push_str(&format!("%{:02X}", c as u32)),
            c => uri.push(c),
        }
    }
    uri
}

/// Wall-clock ns since the epoch, as the `time_ns` column holds.
pub fn now_ns() -> i64 {
    let now = crate::enrich::clock::epoch_ns(std::time::SystemTime::now());
    i64::try_from(now).unwrap_or(i64::MAX)
}

/// A record's indexed columns, as stored.
#[derive(Debug, Clone)]
pub struct Stored {
    pub id: i64,
    pub columns: Columns,
}

/// A kill as the history needs it (see `enrich::history`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastKill {
    pub workload: String,
    /// Wall-clock ns since the epoch.
    pub time_ns: i64,
    pub boot_ns: Option<i64>,
    /// The host that wrote it: boot_ns compares only within one boot.
    pub host: Option<String>,
    pub age_ns: Option<u64>,
    pub stalls_last_10s: Option<u64>,
    pub stalls_total: Option<u64>,
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens (creating it and its directory) the database for writing,
    /// migrated to the current schema.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            // A failure here shows as the open's own error just below.
            let _ = std::fs::create_dir_all(dir);
        }
        let store = Store::with(path, Connection::open(path))?;
        store.setup().map_err(|e| store.error(e))?;
        Ok(store)
    }

    /// Opens an existing database without writing to it (`list`).
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        match Store::reader(path, false) {
            // A WAL reader needs the -shm file; with no writer running it
            // is gone, and a user who may only read cannot create it. With
            // no writer there is nothing to coordinate with: read the file
            // as it is.
            Err(_) if path.is_file() => Store::reader(path, true),
            other => other,
        }
    }

    fn reader(path: &Path, immutable: bool) -> Result<Store, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = if immutable {
            let uri = format!("file:{}?immutable=1", uri_path(path));
            Connection::open_with_flags(uri, flags | OpenFlags::SQLITE_OPEN_URI)
        } else {
            Connection::open_with_flags(path, flags)
        };
        let store = Store::with(path, conn)?;
        store
            .conn
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| store.error(e))?;
        // Reading also proves it is a database and not some other file.
        let version = store.version().map_err(|e| store.error(e))?;
        if version > MIGRATIONS.len() as i64 {
            return Err(StoreError::Newer {
                path: path.to_path_buf(),
                found: version,
                known: MIGRATIONS.len(),
            });
        }
        Ok(store)
    }

    fn with(path: &Path, conn: rusqlite::Result<Connection>) -> Result<Store, StoreError> {
        let conn = conn.map_err(|source| StoreError::Sqlite {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
        })
    }

    fn error(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn version(&self) -> rusqlite::Result<i64> {
        self.conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
    }

    fn setup(&self) -> rusqlite::Result<()> {
        self.conn.busy_timeout(BUSY_TIMEOUT)?;
        // Before the first table: auto_vacuum cannot be changed later
        // without a full VACUUM. INCREMENTAL lets retention give pages back
        // to the file system a few at a time.
        self.conn
            .pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
        // WAL: readers (`list`) never block the writer, and a crash leaves
        // at worst an uncommitted tail. NORMAL syncs at checkpoints only:
        // durable against process crashes, not against power loss of the
        // last transactions, and never corrupting.
        let mode: String =
            self.conn
                .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            // tmpfs and most file systems support WAL; if not, the
            // rollback journal is still crash-safe, only slower.
            eprintln!(
                "oomtrace: note: {}: journal mode {mode}, not WAL",
                self.path.display()
            );
        }
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        // The WAL file shrinks back to this after a checkpoint.
        self.conn
            .pragma_update(None, "journal_size_limit", 4 << 20)?;
        self.migrate()
    }

    fn migrate(&self) -> rusqlite::Result<()> {
        let version = self.version()?;
        if version > MIGRATIONS.len() as i64 {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_MISMATCH),
                Some(format!(
                    "schema {version} was written by a newer oomtrace (this one knows {})",
                    MIGRATIONS.len()
                )),
            ));
        }
        for (done, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
            let tx = self.conn.unchecked_transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", done as i64 + 1)?;
            tx.commit()?;
        }
        Ok(())
    }

    /// Stores JSON lines in one transaction; returns how many it kept
    /// (lines that are not records are skipped).
    pub fn insert(&mut self, lines: &[Vec<u8>]) -> rusqlite::Result<usize> {
        let tx = self.conn.transaction()?;
        let mut kept = 0;
        {
            let mut insert = tx.prepare(
                "INSERT INTO records (time_ns, boot_ns, type, host, pid, comm, memcg_path,
                    oom_memcg_path, pod_uid, pod_name, container_id, container_name,
                    oom_constraint, workload, json)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            )?;
            for line in lines {
                let Ok(line) = std::str::from_utf8(line) else {
                    continue;
                };
                let line = line.trim_end();
                let Ok((_, c)) = Columns::from_line(line) else {
                    continue;
                };
                insert.execute(params![
                    c.time_ns,
                    c.boot_ns,
                    c.kind,
                    c.host,
                    c.pid,
                    c.comm,
                    c.memcg_path,
                    c.oom_memcg_path,
                    c.pod_uid,
                    c.pod_name,
                    c.container_id,
                    c.container_name,
                    c.constraint,
                    c.workload,
                    line,
                ])?;
                kept += 1;
            }
        }
        tx.commit()?;
        Ok(kept)
    }

    /// Records of `kind` with `since_ns <= time_ns < until_ns`, oldest
    /// first. Only the indexed columns are read: the JSON, most of each
    /// row, is fetched by [`Store::json`] for the rows shown.
    pub fn select(
        &self,
        kind: &str,
        since_ns: i64,
        until_ns: i64,
    ) -> rusqlite::Result<Vec<Stored>> {
        let mut query = self.conn.prepare(
            "SELECT id, time_ns, boot_ns, type, host, pid, comm, memcg_path, oom_memcg_path,
                pod_uid, pod_name, container_id, container_name, oom_constraint, workload
             FROM records WHERE type = ?1 AND time_ns >= ?2 AND time_ns < ?3
             ORDER BY time_ns, id",
        )?;
        let rows = query.query_map(params![kind, since_ns, until_ns], |row| {
            Ok(Stored {
                id: row.get(0)?,
                columns: Columns {
                    time_ns: row.get(1)?,
                    boot_ns: row.get(2)?,
                    kind: row.get(3)?,
                    host: row.get(4)?,
                    pid: row.get(5)?,
                    comm: row.get(6)?,
                    memcg_path: row.get(7)?,
                    oom_memcg_path: row.get(8)?,
                    pod_uid: row.get(9)?,
                    pod_name: row.get(10)?,
                    container_id: row.get(11)?,
                    container_name: row.get(12)?,
                    constraint: row.get(13)?,
                    workload: row.get(14)?,
                },
            })
        })?;
        rows.collect()
    }

    /// The stored JSON lines of `ids`, in that order.
    pub fn json(&self, ids: &[i64]) -> rusqlite::Result<Vec<String>> {
        let mut query = self
            .conn
            .prepare("SELECT json FROM records WHERE id = ?1")?;
        ids.iter()
            .map(|id| query.query_row([id], |row| row.get(0)))
            .collect()
    }

    /// The kills since `since_ns` (wall clock) that have a workload, oldest
    /// first: what the kill history is rebuilt from at start.
    pub fn history_since(&self, since_ns: i64) -> rusqlite::Result<Vec<PastKill>> {
        let mut query = self.conn.prepare(
            "SELECT workload, time_ns, boot_ns, host,
                json_extract(json, '$.victim.age_ns'),
                json_extract(json, '$.oom_memcg.reclaim.last_10s.stalls'),
                json_extract(json, '$.oom_memcg.reclaim.total.stalls')
             FROM records
             WHERE type = 'oom_kill' AND workload IS NOT NULL AND time_ns >= ?1
             ORDER BY time_ns, id",
        )?;
        let unsigned = |n: Option<i64>| n.and_then(|n| u64::try_from(n).ok());
        let rows = query.query_map([since_ns], |row| {
            Ok(PastKill {
                workload: row.get(0)?,
                time_ns: row.get(1)?,
                boot_ns: row.get(2)?,
                host: row.get(3)?,
                age_ns: unsigned(row.get(4)?),
                stalls_last_10s: unsigned(row.get(5)?),
                stalls_total: unsigned(row.get(6)?),
            })
        })?;
        rows.collect()
    }

    /// Rows stored, all types.
    #[cfg(test)]
    pub fn count(&self) -> rusqlite::Result<i64> {
        self.conn
            .query_row("SELECT count(*) FROM records", [], |row| row.get(0))
    }
}

#[cfg(test)]
mod tests;
