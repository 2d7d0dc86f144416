//! What a start takes from the kernel's BTF, kept between starts.
//!
//! Parsing the kernel's BTF (several MiB, ~150,000 types) is most of a
//! cold start; what a start needs from it is small: the struct layout, two
//! yes/no answers and the type ids of the hooks' attach points. Those are
//! written to [`DEFAULT_DIR`] after a start that parsed, keyed by the BTF's
//! identity (its size and a hash of all of its bytes, the kernel release)
//! and by this binary's (version, size and mtime of the executable, hash
//! of the eBPF object). The BTF is named by the kernel image's GNU build
//! id (`/sys/kernel/notes`, a hash of the linked image, BTF included) and
//! the BTF's size, which a start learns without reading the BTF; where a
//! kernel has no build id, by a hash of all of the BTF's bytes. The entry
//! is used only if every part of the key is equal: a new kernel, a
//! rebuilt binary or a changed BTF parses again. A missing, unreadable or
//! malformed entry is the same as none.
//!
//! aya still wants a `Btf` to look up attach ids: from the cache it gets a
//! small synthetic one holding only those types, each at its id in the
//! kernel's BTF (placeholders fill the ids between), so the ids it hands
//! the kernel are the kernel's own.

use std::{
    collections::BTreeMap,
    fs, io,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use oomtrace_common::KernelLayout;
use serde::{Deserialize, Serialize};

/// Where the cache lives unless OOMTRACE_CACHE says otherwise.
pub const DEFAULT_DIR: &str = "/var/cache/oomtrace";
const FILE: &str = "btf-facts.json";
/// Bumped when the entry's meaning changes.
const FORMAT: u32 = 3;
/// Where the running kernel's ELF notes are, its build id among them.
const KERNEL_NOTES: &str = "/sys/kernel/notes";

/// OOMTRACE_CACHE: a directory, or `none` for no cache.
pub fn dir() -> Option<PathBuf> {
    match std::env::var_os("OOMTRACE_CACHE") {
        Some(v) if v == "none" => None,
        Some(v) if !v.is_empty() => Some(PathBuf::from(v)),
        _ => Some(PathBuf::from(DEFAULT_DIR)),
    }
}

/// What the BTF is and which binary resolved it: an entry is used only
/// when all of it is equal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Key {
    format: u32,
    oomtrace: String,
    /// Size and mtime (ns) of the running executable.
    exe: (u64, i64),
    /// Hash of the embedded eBPF object.
    object: u64,
    release: String,
    btf_size: u64,
    /// The kernel image's build id (hex); empty when it has none, and then
    /// `btf_hash` names the BTF.
    build_id: String,
    btf_hash: u64,
}

impl Key {
    /// The key of the running kernel's BTF at `btf_path` without reading
    /// it: its build id and size. `None` when the kernel has no build id.
    pub fn of_running_kernel(btf_path: &Path, object: &[u8]) -> Option<Key> {
        let build_id = build_id(&fs::read(KERNEL_NOTES).ok()?)?;
        let btf_size = fs::metadata(btf_path).ok()?.len();
        Some(Key {
            btf_size,
            build_id,
            btf_hash: 0,
            ..Key::of_binary(object)
        })
    }

    /// The key of `btf`'s bytes (a kernel without a build id).
    pub fn new(btf: &[u8], object: &[u8]) -> Key {
        Key {
            btf_size: btf.len() as u64,
            btf_hash: hash(btf),
            ..Key::of_binary(object)
        }
    }

    /// This binary and kernel release, the BTF part left empty.
    fn of_binary(object: &[u8]) -> Key {
        let exe = fs::metadata("/proc/self/exe")
            .map(|m| (m.size(), m.mtime() * 1_000_000_000 + m.mtime_nsec()))
            .unwrap_or((0, 0));
        Key {
            format: FORMAT,
            oomtrace: env!("CARGO_PKG_VERSION").to_string(),
            exe,
            object: hash(object),
            release: fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
            btf_size: 0,
            build_id: String::new(),
            btf_hash: 0,
        }
    }
}

/// NT_GNU_BUILD_ID.
const NT_GNU_BUILD_ID: u32 = 3;

/// The GNU build id in a kernel's ELF notes (native-endian records of
/// name size, descriptor size, type, then the name and the descriptor,
/// each padded to 4 bytes), as hex.
fn build_id(notes: &[u8]) -> Option<String> {
    let word = |at: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(notes.get(at..at + 4)?.try_into().ok()?))
    };
    let padded = |n: u32| (n as usize).div_ceil(4) * 4;
    let mut at = 0;
    while at + 12 <= notes.len() {
        let (name_size, desc_size, kind) = (word(at)?, word(at + 4)?, word(at + 8)?);
        let name = notes.get(at + 12..at + 12 + name_size as usize)?;
        let desc_at = at + 12 + padded(name_size);
        let desc = notes.get(desc_at..desc_at + desc_size as usize)?;
        if kind == NT_GNU_BUILD_ID && name == b"GNU\0" && !desc.is_empty() {
            return Some(desc.iter().map(|b| format!("{b:02x}")).collect());
        }
        at = desc_at + padded(desc_size);
    }
    None
}

/// What a start resolved from the BTF.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facts {
    /// Every [`KernelLayout`] field BTF gave, by name.
    layout: BTreeMap<String, u32>,
    pub mark_victim_passes_task: bool,
    pub fentry_target: bool,
    /// Where a cgroup v2 memcg's failcnt is read on kernels that stopped
    /// counting it (see `plan::failcnt_v2_offset`); applied at each start,
    /// since whether memory is on v2 is the boot's, not the BTF's.
    pub failcnt_v2: Option<u32>,
    /// BPF helpers the kernel's BTF lacks (features needing them are not tried).
    pub absent_helpers: Vec<String>,
    /// Type ids of the attach points (`btf_trace_<event>` typedefs,
    /// functions), by name; absent when the kernel has none.
    typedefs: BTreeMap<String, u32>,
    functions: BTreeMap<String, u32>,
}

impl Facts {
    pub fn new(
        layout: &KernelLayout,
        mark_victim_passes_task: bool,
        fentry_target: bool,
        failcnt_v2: Option<u32>,
        absent_helpers: Vec<String>,
        typedefs: BTreeMap<String, u32>,
        functions: BTreeMap<String, u32>,
    ) -> Facts {
        let layout = KernelLayout::FIELDS
            .iter()
            .map(|field| (field.name.to_string(), (field.get)(layout)))
            .collect();
        Facts {
            layout,
            mark_victim_passes_task,
            fentry_target,
            failcnt_v2,
            absent_helpers,
            typedefs,
            functions,
        }
    }

    /// The layout; `None` if a field is missing (an entry of another
    /// layout: never half-used).
    pub fn layout(&self) -> Option<KernelLayout> {
        let mut layout = KernelLayout::UNKNOWN;
        for field in KernelLayout::FIELDS {
            (field.set)(&mut layout, *self.layout.get(field.name)?);
        }
        (self.layout.len() == KernelLayout::FIELDS.len()).then_some(layout)
    }

    /// A BTF for aya with only the attach points, at their kernel ids.
    ///
    /// Typedefs (tracepoints) can only be made by aya's parser, which
    /// takes ~80 ns a type; they sit low (ids below 16,000 here), while a
    /// function like oom_kill_process sits near 100,000. So the raw BTF
    /// parsed stops at the last typedef, and the functions above it, with
    /// the placeholders before each, are appended as built types (~10 ns
    /// each): 2 ms where parsing everything took 8-12.
    pub fn loader_btf(&self) -> Option<aya::Btf> {
        use aya_obj::btf::{BtfType, Func, FuncLinkage, Ptr};
        let last_typedef = self.typedefs.values().copied().max().unwrap_or(0);
        let (below, above): (BTreeMap<_, _>, BTreeMap<_, _>) = self
            .functions
            .iter()
            .map(|(name, id)| (name.clone(), *id))
            .partition(|(_, id)| *id <= last_typedef);
        let mut btf = aya::Btf::parse(
            &synthetic_btf(&self.typedefs, &below),
            aya::Endianness::default(),
        )
        .ok()?;
        let mut by_id: Vec<(u32, String)> = above.into_iter().map(|(n, id)| (id, n)).collect();
        by_id.sort_unstable();
        let mut next = last_typedef + 1;
        for (id, name) in by_id {
            while next < id {
                next = btf.add_type(BtfType::Ptr(Ptr::new(0, 0))) + 1;
            }
            let name = btf.add_string(&name);
            let added = btf.add_type(BtfType::Func(Func::new(name, 0, FuncLinkage::Global)));
            // Each id is the one the kernel gave: anything else is a bug.
            (added == id).then_some(())?;
            next = added + 1;
        }
        Some(btf)
    }
}

#[derive(Serialize, Deserialize)]
struct Entry {
    key: Key,
    facts: Facts,
}

/// The entry for `key` in `dir`, if there is one for exactly that key.
pub fn load(dir: &Path, key: &Key) -> Option<Facts> {
    let text = fs::read(dir.join(FILE)).ok()?;
    let entry: Entry = serde_json::from_slice(&text).ok()?;
    (entry.key == *key && entry.facts.layout().is_some()).then_some(entry.facts)
}

/// Writes the entry (replacing any), atomically: a reader sees the old
/// file or the new one.
pub fn store(dir: &Path, key: &Key, facts: &Facts) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let entry = Entry {
        key: key.clone(),
        facts: facts.clone(),
    };
    let text = serde_json::to_vec(&entry).map_err(io::Error::other)?;
    let tmp = dir.join(format!("{FILE}.{}", std::process::id()));
    fs::write(&tmp, text)?;
    fs::rename(&tmp, dir.join(FILE)).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// A 64-bit hash of every byte, a word at a time (FNV-1a's constants with
/// a rotate for mixing): the whole BTF in about a millisecond. Not
/// cryptographic; the key also holds the size and the release.
pub fn hash(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut words = data.chunks_exact(8);
    for word in &mut words {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        h = (h ^ u64::from_le_bytes(w))
            .wrapping_mul(0x0000_0100_0000_01b3)
            .rotate_left(29);
    }
    for &byte in words.remainder() {
        h = (h ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^ data.len() as u64
}

const KIND_PTR: u32 = 2;
const KIND_TYPEDEF: u32 = 8;
const KIND_FUNC: u32 = 12;

/// Raw BTF with `typedefs` and `functions` at their ids and an anonymous
/// `void *` at every other id below the largest.
fn synthetic_btf(typedefs: &BTreeMap<String, u32>, functions: &BTreeMap<String, u32>) -> Vec<u8> {
    let mut strings = vec![0u8];
    let mut at: BTreeMap<u32, (u32, u32)> = BTreeMap::new();
    for (names, kind) in [(typedefs, KIND_TYPEDEF), (functions, KIND_FUNC)] {
        for (name, id) in names {
            let offset = strings.len() as u32;
            strings.extend_from_slice(name.as_bytes());
            strings.push(0);
            at.insert(*id, (kind, offset));
        }
    }
    let last = at.keys().next_back().copied().unwrap_or(0);
    let mut types = Vec::with_capacity(last as usize * 12);
    for id in 1..=last {
        let (kind, name) = at.get(&id).copied().unwrap_or((KIND_PTR, 0));
        for word in [name, kind << 24, 0] {
            types.extend_from_slice(&word.to_le_bytes());
        }
    }
    let mut btf = Vec::with_capacity(24 + types.len() + strings.len());
    btf.extend_from_slice(&0xeb9fu16.to_le_bytes());
    btf.extend_from_slice(&[1, 0]);
    for word in [
        24,
        0,
        types.len() as u32,
        types.len() as u32,
        strings.len() as u32,
    ] {
        btf.extend_from_slice(&word.to_le_bytes());
    }
    btf.extend_from_slice(&types);
    btf.extend_from_slice(&strings);
    btf
}

#[cfg(test)]
mod tests {
    use super::*;
    use aya_obj::btf::BtfKind;

    fn names(list: &[(&str, u32)]) -> BTreeMap<String, u32> {
        list.iter().map(|(n, id)| (n.to_string(), *id)).collect()
    }

    #[test]
    fn the_synthetic_btf_gives_aya_the_kernel_ids() {
        let facts = Facts::new(
            &KernelLayout::UNKNOWN,
            true,
            true,
            Some(640),
            vec!["bpf_loop".into()],
            names(&[("btf_trace_mark_victim", 4242), ("btf_trace_x", 7)]),
            // Functions above the last typedef are appended, one below is
            // parsed with the typedefs.
            names(&[
                ("oom_kill_process", 100_000),
                ("below", 50),
                ("between", 99_000),
            ]),
        );
        let btf = facts.loader_btf().expect("parses");
        for (name, id) in [("below", 50), ("between", 99_000)] {
            assert_eq!(btf.id_by_type_name_kind(name, BtfKind::Func).ok(), Some(id));
        }
        assert_eq!(
            btf.id_by_type_name_kind("btf_trace_mark_victim", BtfKind::Typedef)
                .ok(),
            Some(4242)
        );
        assert_eq!(
            btf.id_by_type_name_kind("btf_trace_x", BtfKind::Typedef)
                .ok(),
            Some(7)
        );
        assert_eq!(
            btf.id_by_type_name_kind("oom_kill_process", BtfKind::Func)
                .ok(),
            Some(100_000)
        );
        assert!(
            btf.id_by_type_name_kind("btf_trace_missing", BtfKind::Typedef)
                .is_err()
        );
    }

    #[test]
    fn an_entry_is_used_only_for_its_own_key() {
        let dir = std::env::temp_dir().join(format!("oomtrace-cache-test-{}", std::process::id()));
        let mut layout = KernelLayout::UNKNOWN;
        layout.task_pid = 1234;
        let facts = Facts::new(
            &layout,
            true,
            false,
            None,
            Vec::new(),
            names(&[]),
            names(&[]),
        );
        let key = Key::new(b"some btf", b"object");
        store(&dir, &key, &facts).expect("stored");
        let loaded = load(&dir, &key).expect("same key");
        assert_eq!(loaded.layout().map(|l| l.task_pid), Some(1234));
        assert!(load(&dir, &Key::new(b"some btg", b"object")).is_none());
        assert!(load(&dir, &Key::new(b"some btf", b"other object")).is_none());
        fs::write(dir.join(FILE), b"{not json").expect("write");
        assert!(load(&dir, &key).is_none());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_build_id_is_found_among_the_kernels_notes() {
        let note = |name: &[u8], kind: u32, desc: &[u8]| {
            let mut out = Vec::new();
            for word in [name.len() as u32, desc.len() as u32, kind] {
                out.extend_from_slice(&word.to_ne_bytes());
            }
            for part in [name, desc] {
                out.extend_from_slice(part);
                out.resize(out.len().div_ceil(4) * 4, 0);
            }
            out
        };
        // Xen's and Linux's own notes around it, as the kernel has them.
        let mut notes = note(b"Xen\0", 6, &[1, 2, 3]);
        notes.extend(note(
            b"GNU\0",
            NT_GNU_BUILD_ID,
            &[0x4a, 0x5a, 0x9b, 0x0a, 0xff],
        ));
        notes.extend(note(b"Linux\0", 6, &[0; 4]));
        assert_eq!(build_id(&notes).as_deref(), Some("4a5a9b0aff"));
        assert_eq!(build_id(&note(b"Linux\0", 6, &[0; 4])), None);
        assert_eq!(build_id(&notes[..20]), None);
        assert_eq!(build_id(&[]), None);
    }

    #[test]
    fn the_hash_sees_every_byte() {
        let a = vec![7u8; 1003];
        for i in [0, 500, 1001, 1002] {
            let mut b = a.clone();
            b[i] ^= 1;
            assert_ne!(hash(&a), hash(&b), "byte {i}");
        }
        assert_ne!(hash(&a[..1002]), hash(&a));
    }
}
