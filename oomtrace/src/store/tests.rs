//! The store against real records (testdata/kills.jsonl: written by this
//! binary on real kills set up by testdata/kills.sh).

use std::time::{Duration, Instant};

use super::{
    columns::{Columns, parse_time_ns},
    list::{ListArgs, Selection, parse_when, select_from_lines, select_from_store},
    writer::Writer,
    *,
};

const KILLS: &str = include_str!("testdata/kills.jsonl");
/// What testdata/kills.sh set up.
const POD_UID: &str = "3f2a6c1e-8b7d-4e0a-9c5b-1d2e3f405060";
const CONTAINER_ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn lines() -> Vec<Vec<u8>> {
    KILLS.lines().map(|l| l.as_bytes().to_vec()).collect()
}

/// A scratch directory removed at the end, even on panic.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "oomtrace-store-{}-{name}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }
    fn db(&self) -> PathBuf {
        self.0.join("oomtrace.db")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn pragma(store: &Store, name: &str) -> String {
    store
        .conn
        .pragma_query_value(None, name, |row| {
            row.get::<_, rusqlite::types::Value>(0)
                .map(|v| format!("{v:?}"))
        })
        .expect("pragma")
}

#[test]
fn a_new_database_gets_every_migration_wal_and_incremental_vacuum() {
    let scratch = Scratch::new("new");
    let store = Store::open(&scratch.db().join("../sub/dir/x.db")).expect("opens, dirs created");
    assert_eq!(store.version().expect("version"), MIGRATIONS.len() as i64);
    assert_eq!(pragma(&store, "journal_mode"), "Text(\"wal\")");
    assert_eq!(pragma(&store, "auto_vacuum"), "Integer(2)", "incremental");
    assert_eq!(pragma(&store, "synchronous"), "Integer(1)", "normal");
    drop(store);
    // Opening again runs nothing twice.
    let store = Store::open(&scratch.db().join("../sub/dir/x.db")).expect("reopens");
    assert_eq!(store.count().expect("count"), 0);
}

#[test]
fn an_older_schema_is_migrated_with_its_records_kept() {
    let scratch = Scratch::new("old");
    {
        // What oomtrace with schema 1 left behind.
        let conn = Connection::open(scratch.db()).expect("creates");
        conn.execute_batch(MIGRATIONS[0]).expect("schema 1");
        conn.pragma_update(None, "user_version", 1)
            .expect("version");
        let first = KILLS.lines().next().expect("a kill");
        conn.execute(
            "INSERT INTO records (time_ns, type, pid, json) VALUES (1, 'oom_kill', 8688, ?1)",
            [first],
        )
        .expect("row");
    }
    let store = Store::open(&scratch.db()).expect("migrates");
    assert_eq!(store.version().expect("version"), MIGRATIONS.len() as i64);
    let workload: Option<String> = store
        .conn
        .query_row("SELECT workload FROM records", [], |r| r.get(0))
        .expect("row kept");
    assert_eq!(
        workload.as_deref(),
        Some(format!("k8s pod {POD_UID}").as_str()),
        "filled from the stored JSON"
    );
}

#[test]
fn a_newer_schema_is_refused_not_damaged() {
    let scratch = Scratch::new("newer");
    {
        let conn = Connection::open(scratch.db()).expect("creates");
        conn.pragma_update(None, "user_version", 99)
            .expect("version");
    }
    assert!(matches!(
        Store::open_read_only(&scratch.db()),
        Err(StoreError::Newer { found: 99, .. })
    ));
    assert!(Store::open(&scratch.db()).is_err());
    let conn = Connection::open(scratch.db()).expect("still there");
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("version");
    assert_eq!(version, 99);
}

#[test]
fn odd_file_names_survive_the_uri() {
    assert_eq!(uri_path(Path::new("/a b/x%?#.db")), "/a b/x%25%3F%23.db");
}

#[test]
fn a_file_that_is_not_a_database_is_an_error() {
    let scratch = Scratch::new("garbage");
    std::fs::write(scratch.db(), vec![0x5a; 8192]).expect("garbage");
    assert!(Store::open_read_only(&scratch.db()).is_err());
    assert!(Store::open(&scratch.db()).is_err());
}

#[test]
fn columns_come_from_real_records() {
    let records: Vec<Columns> = KILLS
        .lines()
        .map(|l| Columns::from_line(l).expect("a record").1)
        .collect();
    let kills: Vec<&Columns> = records.iter().filter(|c| c.kind == "oom_kill").collect();
    assert_eq!(kills.len(), 3, "kills.sh made three");
    let first = kills[0];
    assert_eq!(first.comm.as_deref(), Some("python3"));
    assert_eq!(first.constraint.as_deref(), Some("memcg"));
    assert_eq!(first.pod_uid.as_deref(), Some(POD_UID));
    assert_eq!(first.container_id.as_deref(), Some(CONTAINER_ID));
    let pod = format!("/oomtrace-test-fixture/kubepods/burstable/pod{POD_UID}");
    assert_eq!(first.oom_memcg_path.as_deref(), Some(pod.as_str()));
    assert_eq!(
        first.memcg_path.as_deref(),
        Some(format!("{pod}/{CONTAINER_ID}").as_str())
    );
    assert_eq!(
        first.time_ns,
        parse_time_ns("2026-12-01T14:34:40.488553Z").expect("time")
    );
    // The one outside a pod.
    assert_eq!(kills[2].pod_uid, None);
    assert_eq!(
        kills[2].oom_memcg_path.as_deref(),
        Some("/oomtrace-test-fixture")
    );
    // An exit names its victim's pid too.
    let outcome = records
        .iter()
        .find(|c| c.kind == "oom_outcome")
        .expect("an exit");
    assert_eq!(outcome.pid, first.pid);
    assert!(Columns::from_line("{\"time\": \"2026-12-01T00:00:00Z\"}").is_err());
    assert!(Columns::from_line("{\"type\": \"oom_kill\"}").is_err());
    assert!(Columns::from_line("not json").is_err());
}

fn args(extra: &[&str]) -> ListArgs {
    use clap::Parser as _;
    #[derive(clap::Parser)]
    struct Wrap {
        #[command(flatten)]
        list: ListArgs,
    }
    let mut argv = vec!["list"];
    argv.extend_from_slice(extra);
    // The fixture's day, unless the case sets its own.
    for (flag, day) in [("--since", "2026-12-01"), ("--until", "2026-12-02")] {
        if !extra.contains(&flag) {
            argv.extend([flag, day]);
        }
    }
    Wrap::try_parse_from(argv).expect("parses").list
}

fn pids(lines: &[String]) -> Vec<u64> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|r| r.pointer("/victim/pid").and_then(|p| p.as_u64()))
        .collect()
}

#[test]
fn filters_select_the_same_kills_from_the_database_and_from_lines() {
    let scratch = Scratch::new("filters");
    let mut store = Store::open(&scratch.db()).expect("opens");
    assert_eq!(store.insert(&lines()).expect("stores"), 6);
    let cases: &[(&[&str], &[u64])] = &[
        (&[], &[8688, 8789, 8855]),
        (&["--pid", "8789"], &[8789]),
        (&["--comm", "python3"], &[8688, 8789, 8855]),
        (&["--comm", "python"], &[]),
        (&["--pod", "3F2A6C1E"], &[8688, 8789]),
        (&["--container", "0123456789ab"], &[8688, 8789]),
        (&["--container", "123"], &[]),
        (&["--cgroup", "oomtrace-test-fixture/"], &[8688, 8789, 8855]),
        (
            &["--cgroup", "/oomtrace-test-fixture/kubepods"],
            &[8688, 8789],
        ),
        (&["--cgroup", "/oomtrace-test-fix"], &[]),
        (&["--constraint", "memcg"], &[8688, 8789, 8855]),
        (&["--constraint", "global"], &[]),
        (&["--since", "2026-12-01T14:34:41Z"], &[8789, 8855]),
        (&["--until", "2026-12-01 14:34:42"], &[8688]),
        (&["--since", "2026-12-02"], &[]),
    ];
    for (extra, want) in cases {
        let selection = Selection::new(&args(extra), 0);
        let from_db = select_from_store(&store, &selection, None).expect("reads");
        let from_lines = select_from_lines(KILLS.as_bytes(), &selection).expect("reads");
        assert_eq!(pids(&from_db), *want, "{extra:?} from the database");
        assert_eq!(from_db, from_lines, "{extra:?}: same lines either way");
    }
    let latest = select_from_store(&store, &Selection::new(&args(&[]), 0), Some(2));
    assert_eq!(
        pids(&latest.expect("reads")),
        [8789, 8855],
        "-n: the latest"
    );
    // The stored line is the streamed line, byte for byte.
    let all = select_from_store(&store, &Selection::new(&args(&[]), 0), None).expect("reads");
    let streamed: Vec<&str> = KILLS
        .lines()
        .filter(|l| l.contains("\"oom_kill\""))
        .collect();
    assert_eq!(all, streamed);
}

#[test]
fn times_read_like_coredumpctl_takes_them() {
    let now = parse_when("0s").expect("now");
    let two_hours = parse_when("2h").expect("ago");
    assert!((now - two_hours - 7200 * 1_000_000_000).abs() < 1_000_000_000);
    let minute = parse_when("2026-12-01 03:12").expect("minute");
    assert_eq!(Some(minute), parse_time_ns("2026-12-01T03:12:00Z"));
    assert_eq!(
        parse_when("2026-12-01").ok(),
        parse_time_ns("2026-12-01T00:00:00Z")
    );
    assert!(parse_when("last tuesday").is_err());
}

#[test]
fn retention_by_age_removes_only_what_is_older() {
    let scratch = Scratch::new("age");
    let mut store = Store::open(&scratch.db()).expect("opens");
    store.insert(&lines()).expect("stores");
    let second_kill = parse_time_ns("2026-12-01T14:34:42Z").expect("time");
    let keep = Retention {
        keep: Duration::from_secs(60),
        max_bytes: 1 << 30,
    };
    // 60 s after the second kill: the first (at :40) is older than that.
    let removed = store
        .enforce(keep, second_kill + 60_000_000_000)
        .expect("enforces");
    let left = select_from_store(&store, &Selection::new(&args(&[]), 0), None).expect("reads");
    assert_eq!(pids(&left), [8789, 8855]);
    assert_eq!(removed, 2, "the first kill and its exit");
}

/// `n` copies of the fixture's first kill, one second apart from `start`.
fn copies(n: usize, start_s: u64) -> Vec<Vec<u8>> {
    let first: serde_json::Value =
        serde_json::from_str(KILLS.lines().next().expect("a kill")).expect("json");
    (0..n)
        .map(|i| {
            let mut r = first.clone();
            let at = std::time::UNIX_EPOCH + Duration::from_secs(start_s + i as u64);
            r["time"] = crate::enrich::clock::rfc3339(at).into();
            r["victim"]["pid"] = (100_000 + i).into();
            serde_json::to_vec(&r).expect("serializes")
        })
        .collect()
}

#[test]
fn retention_by_size_drops_the_oldest_until_the_file_fits() {
    let scratch = Scratch::new("size");
    let mut store = Store::open(&scratch.db()).expect("opens");
    let start = 1_795_000_000;
    store.insert(&copies(2000, start)).expect("stores");
    let before = store.size_bytes().expect("size");
    let max = 512 << 10;
    assert!(before > 2 * max, "{before} bytes: enough to trim");
    let removed = store
        .enforce(
            Retention {
                keep: Duration::from_secs(365 * 86400),
                max_bytes: max,
            },
            i64::try_from(start).expect("fits") * 1_000_000_000,
        )
        .expect("enforces");
    let file = std::fs::metadata(scratch.db()).expect("file").len();
    assert!(store.size_bytes().expect("size") <= max);
    assert!(file <= max, "the file itself shrank: {file}");
    let left = store.count().expect("count");
    assert_eq!(left as u64 + removed, 2000);
    assert!(
        store.size_bytes().expect("size") > max / 2,
        "only about the excess went"
    );
    // The newest stayed: the ids left are the last ones.
    let oldest_left: i64 = store
        .conn
        .query_row("SELECT min(id) FROM records", [], |r| r.get(0))
        .expect("min");
    assert_eq!(oldest_left, 2000 - left + 1);
}

#[test]
fn the_history_is_rebuilt_from_stored_kills() {
    let scratch = Scratch::new("history");
    let mut store = Store::open(&scratch.db()).expect("opens");
    store.insert(&lines()).expect("stores");
    let kills = store.history_since(0).expect("reads");
    let pod = format!("k8s pod {POD_UID}");
    let workloads: Vec<&str> = kills.iter().map(|k| k.workload.as_str()).collect();
    assert_eq!(
        workloads,
        [pod.as_str(), pod.as_str(), "memcg /oomtrace-test-fixture"]
    );
    // The ages and times are the records' own.
    for (kill, line) in kills
        .iter()
        .zip(KILLS.lines().filter(|l| l.contains("\"oom_kill\"")))
    {
        let r: serde_json::Value = serde_json::from_str(line).expect("json");
        assert_eq!(kill.age_ns, r["victim"]["age_ns"].as_u64());
        assert_eq!(kill.boot_ns, r["boot_ns"].as_i64());
        assert_eq!(kill.host.as_deref(), r["host"].as_str());
    }
    assert!(store.history_since(i64::MAX).expect("reads").is_empty());
}

#[test]
fn the_writer_stores_everything_sent_before_finish() {
    let scratch = Scratch::new("writer");
    let mut writer = Writer::start(scratch.db(), Retention::default(), None).expect("starts");
    let records = copies(500, 4_000_000_000);
    for r in &records {
        writer.send(r.clone());
    }
    writer.finish(Duration::from_secs(10));
    assert_eq!(writer.take_lost(), 0);
    // Retention keeps 30 days before now: these are in the future.
    let store = Store::open_read_only(&scratch.db()).expect("opens");
    assert_eq!(store.count().expect("count"), 500);
}

#[test]
fn a_store_that_cannot_open_counts_every_record_as_lost() {
    let mut writer = Writer::start(
        "/proc/oomtrace/cannot.db".into(),
        Retention::default(),
        None,
    )
    .expect("starts");
    for r in copies(10, 4_000_000_000) {
        writer.send(r);
    }
    writer.finish(Duration::from_secs(10));
    assert_eq!(writer.take_lost(), 10);
    assert_eq!(writer.take_lost(), 0, "counted once");
}

/// Bench hook (`cargo test --release -p oomtrace store_cost -- --ignored
/// --nocapture`): write cost per record in batches as the writer commits
/// them, and `list` over 100,000 stored kills.
#[test]
#[ignore = "a measurement, run with --release"]
fn store_cost() {
    let scratch = Scratch::new("bench");
    let mut store = Store::open(&scratch.db()).expect("opens");
    let n = 100_000;
    let start_s = 1_795_000_000;
    let records = copies(n, start_s);
    let bytes: usize = records.iter().map(Vec::len).sum();
    let began = Instant::now();
    for batch in records.chunks(super::writer::BATCH) {
        store.insert(batch).expect("stores");
    }
    let write = began.elapsed();
    let began = Instant::now();
    for r in records.iter().take(200) {
        store.insert(std::slice::from_ref(r)).expect("stores");
    }
    let single = began.elapsed() / 200;
    let all = Selection {
        since_ns: 0,
        until_ns: i64::MAX,
        ..Selection::default()
    };
    let began = Instant::now();
    let columns = store.select("oom_kill", 0, i64::MAX).expect("reads");
    let columns_only = began.elapsed();
    assert_eq!(columns.len(), n + 200);
    let began = Instant::now();
    let listed = select_from_store(&store, &all, None).expect("reads");
    let list_all = began.elapsed();
    let mut out = Vec::new();
    let began = Instant::now();
    for line in &listed {
        if let Ok(r) = serde_json::from_str::<serde_json::Value>(line) {
            out.push(super::list::row(&r));
        }
    }
    let format_all = began.elapsed();
    let pid = Selection {
        pid: Some(150_000),
        ..all.clone()
    };
    let began = Instant::now();
    let one = select_from_store(&store, &pid, None).expect("reads");
    let list_pid = began.elapsed();
    assert_eq!(one.len(), 1);
    println!(
        "store: {n} records ({} B each): {:.1} us/record in batches of {}, {:.0} us for a \
         lone record's commit; file {} MiB",
        bytes / n,
        write.as_secs_f64() * 1e6 / n as f64,
        super::writer::BATCH,
        single.as_secs_f64() * 1e6,
        store.size_bytes().expect("size") >> 20
    );
    let began = Instant::now();
    let latest = select_from_store(&store, &all, Some(50)).expect("reads");
    let list_50 = began.elapsed();
    assert_eq!(latest.len(), 50);
    println!(
        "list over {} kills: columns {:?}, with every JSON line {:?}, formatting every line {:?}; --pid {:?}; -n 50 {:?}",
        listed.len(),
        columns_only,
        list_all,
        format_all,
        list_pid,
        list_50
    );
}
