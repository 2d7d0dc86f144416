//! What the running kernel offers, and the capture path and layout a run
//! uses on it.

use std::{io, path::Path, path::PathBuf};

use oomtrace_common::{KernelLayout, MAX_CPUS, OFFSET_UNKNOWN};

use super::{
    CapturePath, Preference,
    btf::{self, BtfError, KernelTypes},
    cache,
    features::{self, AFTER_MAIN, FEATURES, FENTRY_TARGET},
    timing,
    tracefs::{self, EventFormat},
};

/// What the running kernel offers for tracing OOM kills.
pub struct Facilities {
    /// The kernel's types, for struct offsets ([`BtfError::Cached`] when
    /// the cache made parsing them needless).
    pub btf: Result<KernelTypes, BtfError>,
    /// What a start needs from this BTF, from the cache.
    cache: Option<Cache>,
    /// The same BTF parsed by aya, which needs it to load tp_btf programs:
    /// from a cache hit, the small synthetic one, made when first asked
    /// for (see [`Self::loader_btf`]).
    loader_btf: std::sync::OnceLock<Option<aya::Btf>>,
    /// The synthetic one being made, from the cache hit on.
    synthetic: std::sync::Mutex<Option<std::thread::JoinHandle<Option<aya::Btf>>>>,
    pub tracefs: Result<PathBuf, io::Error>,
    pub mark_victim_format: Option<Result<EventFormat, io::Error>>,
}

impl Facilities {
    /// Looks at the kernel, parsing its BTF; mounts nothing.
    pub fn probe() -> Facilities {
        Self::probe_cached(None)
    }

    /// Like [`Self::probe`], but takes what a start needs from the BTF from
    /// the cache in `cache_dir` when it holds this BTF's, and fills it
    /// when it did not.
    pub fn probe_cached(cache_dir: Option<&Path>) -> Facilities {
        let (btf, cache, loader_btf) = btf_facts(cache_dir);
        // Made beside the rest of the start: it is the longest part of one
        // from the cache (~8 ms for a kernel's 150,000 type ids).
        let synthetic = match &cache {
            Some(Cache::Hit(facts)) => {
                let facts = facts.clone();
                std::thread::Builder::new()
                    .name("synthetic-btf".into())
                    .spawn(move || {
                        timing::phase("synthetic BTF for aya (from the cache)", || {
                            facts.loader_btf()
                        })
                    })
                    .ok()
            }
            _ => None,
        };
        let tracefs = tracefs::find().ok_or_else(|| io::Error::from(io::ErrorKind::NotFound));
        let mut facilities = Facilities {
            btf,
            cache,
            loader_btf: loader_btf.map(|btf| Some(btf).into()).unwrap_or_default(),
            synthetic: synthetic.into(),
            tracefs,
            mark_victim_format: None,
        };
        facilities.read_mark_victim_format();
        facilities
    }

    /// Whether the BTF facts came from the cache.
    pub fn from_cache(&self) -> bool {
        matches!(self.cache, Some(Cache::Hit(_)))
    }

    /// After a start that parsed the BTF: keeps what it needed in the
    /// cache for the next start. Slow (it resolves the layout again):
    /// call it once ready. Failing to write only costs the next start.
    pub fn fill_cache(&self) {
        let (Some(Cache::Miss(dir, key)), Ok(types), Some(Some(loader))) =
            (&self.cache, &self.btf, self.loader_btf.get())
        else {
            return;
        };
        if let Err(e) = cache::store(dir, key, &facts_of(types, loader)) {
            eprintln!(
                "oomtrace: warning: cannot cache what start-up read from the kernel BTF in {} \
                 ({e}): the next start parses it again (OOMTRACE_CACHE=none turns the cache off)",
                dir.display()
            );
        }
    }

    /// Mounts tracefs if it is not mounted (needs CAP_SYS_ADMIN), for the
    /// tracepoint path, keeping the BTF already parsed.
    pub fn mount_tracefs(&mut self) {
        if self.tracefs.is_err() {
            self.tracefs = tracefs::find_or_mount();
            self.read_mark_victim_format();
        }
    }

    fn read_mark_victim_format(&mut self) {
        self.mark_victim_format = self
            .tracefs
            .as_ref()
            .ok()
            .map(|dir| tracefs::read_format(dir, "oom", "mark_victim"));
    }

    /// The kernel BTF as the loader needs it: from a cache hit, the
    /// synthetic one its thread makes (waited for here, or made here if no
    /// thread started).
    pub fn loader_btf(&self) -> Option<&aya::Btf> {
        self.loader_btf
            .get_or_init(|| {
                let thread = self.synthetic.lock().ok().and_then(|mut slot| slot.take());
                match (thread, &self.cache) {
                    (Some(thread), _) => thread
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                    (None, Some(Cache::Hit(facts))) => facts.loader_btf(),
                    (None, _) => None,
                }
            })
            .as_ref()
    }

    /// Picks the richest capture path allowed by `preference` and
    /// resolves its layout.
    pub fn plan(&self, preference: Preference) -> Result<Plan, NoCapturePath> {
        timing::phase("plan (layout from BTF)", || self.plan_untimed(preference))
    }

    fn plan_untimed(&self, preference: Preference) -> Result<Plan, NoCapturePath> {
        let mut reasons = Vec::new();
        let facts = match (&self.cache, &self.btf) {
            (Some(Cache::Hit(cached)), _) => cached.layout().map(|layout| BtfFacts {
                layout,
                passes_task: cached.mark_victim_passes_task,
                fentry_target: cached.fentry_target,
                failcnt_v2: cached.failcnt_v2,
                absent_helpers: known_helpers(&cached.absent_helpers),
            }),
            (_, Ok(types)) => Some(BtfFacts::of(types)),
            (_, Err(e)) => {
                reasons.push(format!("no kernel BTF ({e})"));
                None
            }
        };
        let mut layout = facts.as_ref().map_or(KernelLayout::UNKNOWN, |f| f.layout);
        if let Some(offset) = facts.as_ref().and_then(|f| f.failcnt_v2)
            && memory_on_v2()
        {
            layout.memcg_failcnt = offset;
        }
        layout.page_shift = page_shift();
        layout.nr_cpus = possible_cpus();
        if layout.nr_cpus == 0 || layout.nr_cpus > MAX_CPUS {
            // Exact RSS sums need every CPU's delta; without them, report
            // only what the kernel's own counters say.
            layout.bpf_array_pptrs = OFFSET_UNKNOWN;
        }

        if preference == Preference::Tracepoint {
            reasons.push("tp_btf: not used (--capture tracepoint)".to_string());
        } else if let Some(BtfFacts {
            passes_task,
            fentry_target,
            absent_helpers,
            ..
        }) = facts
        {
            let missing = btf::missing_for_task_reads(&layout);
            if !passes_task {
                reasons.push(
                    "tp_btf: this kernel's mark_victim tracepoint does not pass the victim's task"
                        .to_string(),
                );
            } else if layout.task_pid == OFFSET_UNKNOWN {
                reasons.push("tp_btf: task_struct.pid is not in the kernel BTF".to_string());
            } else {
                let fentry = match preference {
                    Preference::Fentry => Fentry::Require,
                    Preference::Auto if fentry_target => Fentry::Try,
                    _ => Fentry::Off,
                };
                return Ok(Plan {
                    path: CapturePath::TpBtf,
                    layout,
                    unresolved: missing,
                    fentry,
                    absent_helpers,
                });
            }
        }

        if matches!(preference, Preference::Btf | Preference::Fentry) {
            return Err(NoCapturePath { reasons });
        }
        match &self.mark_victim_format {
            Some(Ok(format)) => match tracepoint_layout(format, &mut layout) {
                Ok(()) => {
                    let unresolved = btf::missing_for_task_reads(&layout);
                    Ok(Plan {
                        path: CapturePath::Tracepoint,
                        layout,
                        unresolved,
                        fentry: Fentry::Off,
                        absent_helpers: Vec::new(),
                    })
                }
                Err(reason) => {
                    reasons.push(reason);
                    Err(NoCapturePath { reasons })
                }
            },
            Some(Err(e)) => {
                reasons.push(format!(
                    "tracepoint: cannot read oom/mark_victim/format ({e})"
                ));
                Err(NoCapturePath { reasons })
            }
            None => {
                reasons.push(match &self.tracefs {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        format!("tracepoint: tracefs is not mounted and mounting it failed ({e})")
                    }
                    _ => "tracepoint: tracefs is not mounted".to_string(),
                });
                Err(NoCapturePath { reasons })
            }
        }
    }
}

/// Newer kernels (7.x) count a page counter's failures only on cgroup v1
/// (`page_counter.track_failcnt`, false on the default hierarchy); on v2
/// their OOM report prints the memcg's `memory.events` `max` count as its
/// failcnt instead, so where memory is on v2 the record's failcnt is read
/// from there (`OFFSET_UNKNOWN` if that counter cannot be found). `None`:
/// the kernel still counts failcnt.
fn failcnt_v2_offset(types: &KernelTypes) -> Option<u32> {
    types.offset("page_counter", &["track_failcnt"])?;
    let max = types
        .enum_value("MEMCG_MAX")
        .and_then(|index| types.offset("mem_cgroup", &[&format!("memory_events[{index}]")]));
    Some(max.unwrap_or(OFFSET_UNKNOWN))
}

/// Whether the memory controller is on cgroup v2 (the default hierarchy):
/// a cgroup2 mount whose root lists `memory` in cgroup.controllers.
fn memory_on_v2() -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts.lines().any(|line| {
        let mut fields = line.split_whitespace();
        let (Some(_), Some(dir), Some("cgroup2")) = (fields.next(), fields.next(), fields.next())
        else {
            return false;
        };
        std::fs::read_to_string(Path::new(dir).join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|name| name == "memory"))
    })
}

/// The kernel's BTF as parsed types (or [`BtfError::Cached`]), the facts
/// from the cache if it holds this BTF's, and aya's BTF (the kernel's, or
/// the cache's synthetic one).
fn btf_facts(
    cache_dir: Option<&Path>,
) -> (
    Result<KernelTypes, BtfError>,
    Option<Cache>,
    Option<aya::Btf>,
) {
    let path = Path::new(btf::VMLINUX_BTF);
    // Named by the kernel's build id, a cached entry is found without
    // reading the BTF (5 ms in 4 KiB reads).
    let named = cache_dir.and_then(|_| cache::Key::of_running_kernel(path, super::EBPF_OBJECT));
    let look_up =
        |dir: &Path, key: &cache::Key| timing::phase("cache read", || cache::load(dir, key));
    if let (Some(dir), Some(key)) = (cache_dir, &named)
        && let Some(facts) = look_up(dir, key)
    {
        return (Err(BtfError::Cached), Some(Cache::Hit(facts)), None);
    }
    let data = match timing::phase("BTF read", || btf::read(path)) {
        Ok(data) => data,
        Err(e) => return (Err(e), None, None),
    };
    let Some(dir) = cache_dir else {
        let (types, loader) = parse_btf_twice(data, path);
        return (types, None, loader);
    };
    let key = match named {
        Some(key) => key,
        None => {
            let key = timing::phase("BTF hash", || cache::Key::new(&data, super::EBPF_OBJECT));
            if let Some(facts) = look_up(dir, &key) {
                return (Err(BtfError::Cached), Some(Cache::Hit(facts)), None);
            }
            key
        }
    };
    let (types, loader) = parse_btf_twice(data, path);
    (types, Some(Cache::Miss(dir.to_path_buf(), key)), loader)
}

/// What [`cache::Facts`] keeps, from the parsed BTF (attach ids as aya
/// finds them: the ids it would hand the kernel).
fn facts_of(types: &KernelTypes, loader: &aya::Btf) -> cache::Facts {
    use aya_obj::btf::BtfKind;
    let (typedefs, functions) = features::attach_points();
    let ids = |names: Vec<String>, kind: BtfKind| {
        names
            .into_iter()
            .filter_map(|name| Some((name.clone(), loader.id_by_type_name_kind(&name, kind).ok()?)))
            .collect()
    };
    let facts = BtfFacts::of(types);
    cache::Facts::new(
        &facts.layout,
        facts.passes_task,
        facts.fentry_target,
        facts.failcnt_v2,
        facts.absent_helpers.iter().map(|h| h.to_string()).collect(),
        ids(typedefs, BtfKind::Typedef),
        ids(
            functions.into_iter().map(String::from).collect(),
            BtfKind::Func,
        ),
    )
}

/// Parses the kernel's BTF for us and for aya at the same time: each parse
/// takes a good part of a cold start on its own.
fn parse_btf_twice(
    data: Vec<u8>,
    path: &Path,
) -> (Result<KernelTypes, BtfError>, Option<aya::Btf>) {
    std::thread::scope(|scope| {
        let loader = scope.spawn(|| {
            timing::phase("BTF parse (aya)", || {
                aya::Btf::parse(&data, aya::Endianness::default()).ok()
            })
        });
        let types = timing::phase("BTF parse (offsets)", || {
            KernelTypes::from_bytes(data.clone(), path)
        });
        (types, loader.join().ok().flatten())
    })
}

/// The cache's part in a start.
enum Cache {
    /// It held this BTF's facts: nothing was parsed.
    Hit(cache::Facts),
    /// It did not: fill it there, under that key.
    Miss(PathBuf, cache::Key),
}

/// Why no capture path works on this kernel, one reason per path.
#[derive(Debug)]
pub struct NoCapturePath {
    pub reasons: Vec<String>,
}

/// The chosen capture path and the layout handed to the kernel side.
#[derive(Debug, Clone)]
pub struct Plan {
    pub path: CapturePath,
    pub layout: KernelLayout,
    /// Kernel struct members not found: their record fields will be null.
    pub unresolved: Vec<&'static str>,
    /// Whether to read the OOM killer's context with fentry (tp_btf only).
    pub fentry: Fentry,
    /// BPF helpers some feature calls that the kernel's BTF lacks.
    pub absent_helpers: Vec<&'static str>,
}

/// What a plan takes from the kernel's BTF, parsed or cached.
struct BtfFacts {
    layout: KernelLayout,
    /// mark_victim's tp_btf passes the victim's task.
    passes_task: bool,
    fentry_target: bool,
    /// See [`failcnt_v2_offset`].
    failcnt_v2: Option<u32>,
    absent_helpers: Vec<&'static str>,
}

impl BtfFacts {
    fn of(types: &KernelTypes) -> BtfFacts {
        BtfFacts {
            layout: types.layout(),
            passes_task: types.mark_victim_passes_task(),
            fentry_target: types.has_function(FENTRY_TARGET),
            failcnt_v2: failcnt_v2_offset(types),
            absent_helpers: absent_helpers(types),
        }
    }
}

/// The cache's names of absent helpers, as the features table spells them.
fn known_helpers(names: &[String]) -> Vec<&'static str> {
    let mut known: Vec<&'static str> = FEATURES
        .iter()
        .chain(AFTER_MAIN)
        .flat_map(|feature| feature.helpers)
        .map(|helper| helper.function)
        .filter(|function| names.iter().any(|n| n == function))
        .collect();
    known.dedup();
    known
}

/// The helpers of [`FEATURES`] and [`AFTER_MAIN`] the kernel does not have, probed in its
/// BTF (a helper is a kernel function of its name), not by version.
fn absent_helpers(types: &KernelTypes) -> Vec<&'static str> {
    let mut absent: Vec<&'static str> = FEATURES
        .iter()
        .chain(AFTER_MAIN)
        .flat_map(|feature| feature.helpers)
        .map(|helper| helper.function)
        .filter(|function| !types.has_function(function))
        .collect();
    absent.dedup();
    absent
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fentry {
    Off,
    /// Use it if the kernel lets us; else search the stack.
    Try,
    /// `--capture fentry`: use it or fail.
    Require,
}

/// Fills the `tp_*` offsets from the event's format file.
fn tracepoint_layout(format: &EventFormat, layout: &mut KernelLayout) -> Result<(), String> {
    let Some(pid) = format.field("pid").filter(|f| f.size == 4) else {
        return Err("tracepoint: oom/mark_victim has no 4-byte pid field".to_string());
    };
    layout.tp_pid = pid.offset;
    let eight_bytes = |name: &str| format.field(name).filter(|f| f.size == 8).map(|f| f.offset);
    layout.tp_comm = format
        .field("comm")
        .filter(|f| f.is_data_loc() && f.size == 4)
        .map_or(OFFSET_UNKNOWN, |f| f.offset);
    layout.tp_total_vm = eight_bytes("total_vm").unwrap_or(OFFSET_UNKNOWN);
    layout.tp_anon_rss = eight_bytes("anon_rss").unwrap_or(OFFSET_UNKNOWN);
    layout.tp_file_rss = eight_bytes("file_rss").unwrap_or(OFFSET_UNKNOWN);
    layout.tp_shmem_rss = eight_bytes("shmem_rss").unwrap_or(OFFSET_UNKNOWN);
    layout.tp_pgtables = eight_bytes("pgtables").unwrap_or(OFFSET_UNKNOWN);
    layout.tp_uid = format
        .field("uid")
        .filter(|f| f.size == 4)
        .map_or(OFFSET_UNKNOWN, |f| f.offset);
    // `short` today, `int` in some older trees.
    match format
        .field("oom_score_adj")
        .filter(|f| f.size == 2 || f.size == 4)
    {
        Some(field) => {
            layout.tp_oom_score_adj = field.offset;
            layout.tp_oom_score_adj_size = field.size;
        }
        None => layout.tp_oom_score_adj = OFFSET_UNKNOWN,
    }
    Ok(())
}

pub(super) fn page_shift() -> u32 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 {
        (size as u64).trailing_zeros()
    } else {
        12
    }
}

fn possible_cpus() -> u32 {
    aya::util::nr_cpus().map_or(0, |n| u32::try_from(n).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXTENDED: &str = "name: mark_victim\nID: 609\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:int pid;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:__data_loc char[] comm;\toffset:12;\tsize:4;\tsigned:0;\n\tfield:unsigned long total_vm;\toffset:16;\tsize:8;\tsigned:0;\n\tfield:unsigned long anon_rss;\toffset:24;\tsize:8;\tsigned:0;\n\tfield:unsigned long file_rss;\toffset:32;\tsize:8;\tsigned:0;\n\tfield:unsigned long shmem_rss;\toffset:40;\tsize:8;\tsigned:0;\n\tfield:uid_t uid;\toffset:48;\tsize:4;\tsigned:0;\n\tfield:unsigned long pgtables;\toffset:56;\tsize:8;\tsigned:0;\n\tfield:short oom_score_adj;\toffset:64;\tsize:2;\tsigned:1;\n";
    const PID_ONLY: &str = "name: mark_victim\nID: 502\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:int pid;\toffset:8;\tsize:4;\tsigned:1;\n";

    fn without_btf(format: Option<Result<EventFormat, io::Error>>) -> Facilities {
        Facilities {
            btf: Err(BtfError::Read {
                path: btf::VMLINUX_BTF.to_string(),
                source: io::ErrorKind::NotFound.into(),
            }),
            cache: None,
            loader_btf: Default::default(),
            synthetic: Default::default(),
            tracefs: if format.is_some() {
                Ok("/sys/kernel/tracing".into())
            } else {
                Err(io::ErrorKind::NotFound.into())
            },
            mark_victim_format: format,
        }
    }

    #[test]
    fn without_btf_the_extended_tracepoint_gives_every_event_field() {
        let facilities = without_btf(Some(Ok(EventFormat::parse(EXTENDED).expect("format"))));
        let plan = facilities.plan(Preference::Auto).expect("tracepoint plan");
        assert_eq!(plan.path, CapturePath::Tracepoint);
        let l = plan.layout;
        assert_eq!(
            (l.tp_pid, l.tp_comm, l.tp_total_vm, l.tp_anon_rss),
            (8, 12, 16, 24)
        );
        assert_eq!(
            (l.tp_file_rss, l.tp_shmem_rss, l.tp_uid, l.tp_pgtables),
            (32, 40, 48, 56)
        );
        assert_eq!((l.tp_oom_score_adj, l.tp_oom_score_adj_size), (64, 2));
        // No BTF: the trigger's cgroup cannot be read; said, not hidden.
        assert!(plan.unresolved.contains(&"task_struct.cgroups"));
    }

    #[test]
    fn the_pid_only_layout_leaves_the_rest_unknown() {
        let facilities = without_btf(Some(Ok(EventFormat::parse(PID_ONLY).expect("format"))));
        let l = facilities.plan(Preference::Auto).expect("plan").layout;
        assert_eq!(l.tp_pid, 8);
        for offset in [
            l.tp_comm,
            l.tp_total_vm,
            l.tp_anon_rss,
            l.tp_uid,
            l.tp_pgtables,
            l.tp_oom_score_adj,
        ] {
            assert_eq!(offset, OFFSET_UNKNOWN);
        }
    }

    #[test]
    fn no_btf_and_no_tracefs_is_no_capture_path_with_both_reasons() {
        let error = without_btf(None)
            .plan(Preference::Auto)
            .expect_err("no path");
        let reasons = error.reasons.join("; ");
        assert!(reasons.contains("no kernel BTF"), "{reasons}");
        assert!(reasons.contains("tracefs is not mounted"), "{reasons}");
    }

    fn with_btf(variant: &str) -> Facilities {
        Facilities {
            btf: Ok(btf::tests::fixture(variant)),
            ..without_btf(None)
        }
    }

    #[test]
    fn btf_with_the_task_prototype_plans_tp_btf_and_tries_fentry() {
        let plan = with_btf("new").plan(Preference::Auto).expect("plan");
        assert_eq!(plan.path, CapturePath::TpBtf);
        assert_eq!(plan.fentry, Fentry::Try);
        assert_eq!(plan.unresolved, Vec::<&str>::new());
        let plan = with_btf("new").plan(Preference::Btf).expect("plan");
        assert_eq!(plan.fentry, Fentry::Off);
    }

    #[test]
    fn btf_with_the_pid_prototype_falls_back_to_the_tracepoint() {
        let error = with_btf("old")
            .plan(Preference::Auto)
            .expect_err("no tracefs either");
        let reasons = error.reasons.join("; ");
        assert!(
            reasons.contains("does not pass the victim's task"),
            "{reasons}"
        );
        let facilities = Facilities {
            mark_victim_format: Some(Ok(EventFormat::parse(PID_ONLY).expect("format"))),
            tracefs: Ok("/sys/kernel/tracing".into()),
            ..with_btf("old")
        };
        let plan = facilities.plan(Preference::Auto).expect("tracepoint plan");
        assert_eq!(plan.path, CapturePath::Tracepoint);
        // The BTF still gives the trigger's task reads their offsets.
        assert_eq!(plan.layout.kn_parent, 8);
        assert_eq!(plan.unresolved, Vec::<&str>::new());
    }

    #[test]
    fn forcing_btf_without_btf_fails() {
        let facilities = without_btf(Some(Ok(EventFormat::parse(EXTENDED).expect("format"))));
        assert!(facilities.plan(Preference::Btf).is_err());
        assert!(facilities.plan(Preference::Tracepoint).is_ok());
    }
}
