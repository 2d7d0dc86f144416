//! tracefs: where it is, mounting it when needed, and event format files.

use std::{
    ffi::CString,
    fs, io,
    path::{Path, PathBuf},
};

/// Where tracefs is usually found.
const MOUNT_POINTS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// The tracefs directory, if one is mounted.
pub fn find() -> Option<PathBuf> {
    MOUNT_POINTS
        .iter()
        .map(PathBuf::from)
        .find(|dir| dir.join("events").is_dir())
}

/// The tracefs directory, mounting tracefs at /sys/kernel/tracing if none is
/// mounted (as the kernel documentation recommends).
pub fn find_or_mount() -> io::Result<PathBuf> {
    if let Some(dir) = find() {
        return Ok(dir);
    }
    let target = PathBuf::from(MOUNT_POINTS[0]);
    mount_tracefs(&target)?;
    if target.join("events").is_dir() {
        Ok(target)
    } else {
        Err(io::Error::other(format!(
            "mounted tracefs at {} but it has no events directory",
            target.display()
        )))
    }
}

fn mount_tracefs(target: &Path) -> io::Result<()> {
    let source = CString::new("nodev").map_err(io::Error::other)?;
    let fstype = CString::new("tracefs").map_err(io::Error::other)?;
    let target = CString::new(target.as_os_str().as_encoded_bytes()).map_err(io::Error::other)?;
    // SAFETY: valid NUL-terminated strings, no data argument.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reads `events/<category>/<event>/format`.
pub fn read_format(tracefs: &Path, category: &str, event: &str) -> io::Result<EventFormat> {
    let path = tracefs
        .join("events")
        .join(category)
        .join(event)
        .join("format");
    let text = fs::read_to_string(&path)?;
    EventFormat::parse(&text).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} has no field lines", path.display()),
        )
    })
}

/// One `field:` line of a format file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// C declaration without the name, e.g. `unsigned long`, `__data_loc char[]`.
    pub c_type: String,
    pub name: String,
    pub offset: u32,
    pub size: u32,
    pub signed: bool,
}

impl Field {
    pub fn is_data_loc(&self) -> bool {
        self.c_type.starts_with("__data_loc")
    }
}

/// The fields of a trace event, as its format file lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFormat {
    pub id: Option<u32>,
    pub fields: Vec<Field>,
}

impl EventFormat {
    /// Parses a format file. Returns `None` when no field line parses.
    pub fn parse(text: &str) -> Option<EventFormat> {
        let mut id = None;
        let mut fields = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if let Some(value) = line.strip_prefix("ID:") {
                id = value.trim().parse().ok();
            } else if line.starts_with("field:")
                && let Some(field) = parse_field(line)
            {
                fields.push(field);
            }
        }
        if fields.is_empty() {
            None
        } else {
            Some(EventFormat { id, fields })
        }
    }

    /// The field called `name`, skipping the `common_*` header.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|field| field.name == name)
    }
}

/// `field:unsigned long total_vm;\toffset:16;\tsize:8;\tsigned:0;`
fn parse_field(line: &str) -> Option<Field> {
    let mut declaration = None;
    let (mut offset, mut size, mut signed) = (None, None, None);
    for part in line.split(';') {
        let part = part.trim();
        if let Some(value) = part.strip_prefix("field:") {
            declaration = Some(value.trim());
        } else if let Some(value) = part.strip_prefix("offset:") {
            offset = value.trim().parse().ok();
        } else if let Some(value) = part.strip_prefix("size:") {
            size = value.trim().parse().ok();
        } else if let Some(value) = part.strip_prefix("signed:") {
            signed = value.trim().parse::<u8>().ok().map(|v| v != 0);
        }
    }
    let declaration = declaration?;
    // The name is the last identifier; arrays put `[N]` after it
    // (`char comm[16]`), __data_loc puts `[]` on the type (`char[] comm`).
    let without_array = match declaration.rfind('[') {
        Some(open) if declaration.ends_with(']') => &declaration[..open],
        _ => declaration,
    };
    // Past the whole character: one byte past a multi-byte one's start
    // would slice inside it.
    let name_start = without_array
        .char_indices()
        .rev()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '_'))
        .map_or(0, |(i, c)| i + c.len_utf8());
    let name = &without_array[name_start..];
    if name.is_empty() {
        return None;
    }
    let c_type = without_array[..name_start].trim().to_string();
    Some(Field {
        c_type,
        name: name.to_string(),
        offset: offset?,
        size: size?,
        signed: signed.unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `events/oom/mark_victim/format` of Linux 6.18 (also 6.9+ and the
    /// 2025 stable backports).
    const MARK_VICTIM_EXTENDED: &str = "name: mark_victim
ID: 609
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int pid;\toffset:8;\tsize:4;\tsigned:1;
\tfield:__data_loc char[] comm;\toffset:12;\tsize:4;\tsigned:0;
\tfield:unsigned long total_vm;\toffset:16;\tsize:8;\tsigned:0;
\tfield:unsigned long anon_rss;\toffset:24;\tsize:8;\tsigned:0;
\tfield:unsigned long file_rss;\toffset:32;\tsize:8;\tsigned:0;
\tfield:unsigned long shmem_rss;\toffset:40;\tsize:8;\tsigned:0;
\tfield:uid_t uid;\toffset:48;\tsize:4;\tsigned:0;
\tfield:unsigned long pgtables;\toffset:56;\tsize:8;\tsigned:0;
\tfield:short oom_score_adj;\toffset:64;\tsize:2;\tsigned:1;

print fmt: \"pid=%d comm=%s total-vm=%lukB anon-rss=%lukB file-rss:%lukB shmem-rss:%lukB uid=%u pgtables=%lukB oom_score_adj=%hd\", REC->pid, __get_str(comm), REC->total_vm, REC->anon_rss, REC->file_rss, REC->shmem_rss, REC->uid, REC->pgtables, REC->oom_score_adj
";

    /// The layout before "mm: update mark_victim tracepoints fields" (v6.9).
    const MARK_VICTIM_PID_ONLY: &str = "name: mark_victim
ID: 502
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int pid;\toffset:8;\tsize:4;\tsigned:1;

print fmt: \"pid=%d\", REC->pid
";

    #[test]
    fn parses_the_extended_mark_victim_layout() {
        let format = EventFormat::parse(MARK_VICTIM_EXTENDED).expect("parses");
        assert_eq!(format.id, Some(609));
        assert_eq!(format.fields.len(), 13);
        let comm = format.field("comm").expect("comm");
        assert!(comm.is_data_loc());
        assert_eq!((comm.offset, comm.size), (12, 4));
        let adj = format.field("oom_score_adj").expect("oom_score_adj");
        assert_eq!(
            (adj.c_type.as_str(), adj.offset, adj.size, adj.signed),
            ("short", 64, 2, true)
        );
        let uid = format.field("uid").expect("uid");
        assert_eq!(
            (uid.c_type.as_str(), uid.offset, uid.size),
            ("uid_t", 48, 4)
        );
        assert_eq!(format.field("total_vm").map(|f| f.offset), Some(16));
    }

    #[test]
    fn parses_the_pid_only_mark_victim_layout() {
        let format = EventFormat::parse(MARK_VICTIM_PID_ONLY).expect("parses");
        assert_eq!(format.field("pid").map(|f| f.offset), Some(8));
        assert!(format.field("comm").is_none());
        assert!(format.field("oom_score_adj").is_none());
    }

    #[test]
    fn parses_fixed_arrays_with_the_size_after_the_name() {
        let field =
            parse_field("field:char comm[16];\toffset:12;\tsize:16;\tsigned:0;").expect("field");
        assert_eq!(
            (
                field.c_type.as_str(),
                field.name.as_str(),
                field.offset,
                field.size
            ),
            ("char", "comm", 12, 16)
        );
    }

    #[test]
    fn a_multibyte_character_before_the_name_is_not_split() {
        // The name starts after the last non-identifier character, which
        // here is two bytes long: slicing one byte past its start panicked.
        let field =
            parse_field("field:int \u{e9}pid;\toffset:8;\tsize:4;\tsigned:1;").expect("field");
        assert_eq!(
            (field.c_type.as_str(), field.name.as_str()),
            ("int \u{e9}", "pid")
        );
        assert!(parse_field("field:int \u{e9};\toffset:8;\tsize:4;").is_none());
    }

    #[test]
    fn rejects_text_without_fields() {
        assert_eq!(EventFormat::parse("name: x\nID: 1\nformat:\n"), None);
        assert_eq!(EventFormat::parse(""), None);
        assert!(parse_field("field:int pid;\toffset:x;\tsize:4;").is_none());
        assert!(parse_field("field:;\toffset:8;\tsize:4;").is_none());
    }

    proptest::proptest! {
        #[test]
        fn any_text_parses_or_is_refused_without_panicking(text in ".*") {
            let _ = EventFormat::parse(&text);
        }

        #[test]
        fn a_field_line_gives_back_what_it_says(
            c_type in "(unsigned )?(char|short|int|long|pid_t|u64)",
            name in "[a-z_][a-z0-9_]{0,20}",
            offset in 0u32..4096,
            size in 1u32..64,
            signed in proptest::bool::ANY,
            array in proptest::option::of(1u32..64),
        ) {
            let declaration = match array {
                Some(n) => format!("{c_type} {name}[{n}]"),
                None => format!("{c_type} {name}"),
            };
            let line = format!(
                "\tfield:{declaration};\toffset:{offset};\tsize:{size};\tsigned:{};",
                u8::from(signed)
            );
            let format = EventFormat::parse(&line);
            let field = format.as_ref().and_then(|f| f.fields.first());
            proptest::prop_assert_eq!(
                field,
                Some(&Field { c_type: c_type.clone(), name: name.clone(), offset, size, signed })
            );
        }
    }
}
