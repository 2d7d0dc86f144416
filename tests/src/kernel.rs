//! What this kernel offers, found out by the tests themselves: the
//! independent oracle for oomtrace's own `check` and its choice of capture
//! path. Reads the kernel's BTF and asks the kernel to load and attach a
//! two-instruction program, without any of oomtrace's code.

use std::{fs, os::fd::FromRawFd as _, os::fd::OwnedFd};

use anyhow::{Context as _, Result, bail};

const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// BTF kinds (include/uapi/linux/btf.h) this module looks for.
pub const BTF_KIND_TYPEDEF: u32 = 8;
pub const BTF_KIND_FUNC: u32 = 12;

/// The capture path oomtrace's `auto` must pick here, from the kernel's
/// own answers: fentry where the kernel attaches an FENTRY program to
/// oom_kill_process(), else tp_btf where BTF describes the mark_victim
/// tracepoint, else the classic tracepoint.
pub fn expected_capture_path() -> &'static str {
    if fentry_attaches("oom_kill_process") {
        "fentry"
    } else if btf_type_id("btf_trace_mark_victim", BTF_KIND_TYPEDEF)
        .ok()
        .flatten()
        .is_some()
    {
        "tp_btf"
    } else {
        "tracepoint"
    }
}

/// Whether the kernel loads an FENTRY program (`r0 = 0; exit`) for
/// `function` and attaches it. Any refusal (no BTF, no trampolines, a
/// sandbox's EPERM) is `false`.
pub fn fentry_attaches(function: &str) -> bool {
    let Ok(Some(btf_id)) = btf_type_id(function, BTF_KIND_FUNC) else {
        return false;
    };
    load_and_attach_fentry(btf_id).is_ok()
}

/// The id of the type named `name` of `kind` in the kernel's BTF, `None`
/// if it has none.
pub fn btf_type_id(name: &str, kind: u32) -> Result<Option<u32>> {
    let btf = fs::read(VMLINUX_BTF).with_context(|| format!("read {VMLINUX_BTF}"))?;
    find_type(&btf, name, kind)
}

/// Walks BTF's type section (ids from 1, in order) for `name` of `kind`.
fn find_type(btf: &[u8], name: &str, kind: u32) -> Result<Option<u32>> {
    let u32_at = |at: usize| -> Result<u32> {
        let bytes = btf.get(at..at + 4).context("BTF ends early")?;
        Ok(u32::from_le_bytes(bytes.try_into()?))
    };
    if btf.get(0..2) != Some(&[0x9f, 0xeb]) {
        bail!("not little-endian BTF");
    }
    let header_len = u32_at(4)? as usize;
    let (type_off, type_len) = (u32_at(8)? as usize, u32_at(12)? as usize);
    let str_off = u32_at(16)? as usize;
    let types = header_len + type_off;
    let strings = header_len + str_off;
    let mut at = types;
    let mut id = 1;
    while at < types + type_len {
        let (name_off, info) = (u32_at(at)? as usize, u32_at(at + 4)?);
        let this_kind = (info >> 24) & 0x1f;
        let vlen = (info & 0xffff) as usize;
        if this_kind == kind {
            let start = strings + name_off;
            let rest = btf.get(start..).context("name outside BTF")?;
            let end = rest
                .iter()
                .position(|b| *b == 0)
                .context("unterminated name")?;
            if &rest[..end] == name.as_bytes() {
                return Ok(Some(id));
            }
        }
        // Bytes after the 12-byte common part, by kind.
        let extra = match this_kind {
            1 | 14 | 17 => 4,              // int, var, decl_tag
            3 => 12,                       // array
            4 | 5 | 15 | 19 => vlen * 12,  // struct, union, datasec, enum64
            6 | 13 => vlen * 8,            // enum, func_proto
            0 | 2 | 7..=12 | 16 | 18 => 0, // the rest carry nothing more
            other => bail!("unknown BTF kind {other} at type {id}"),
        };
        at += 12 + extra;
        id += 1;
    }
    Ok(None)
}

fn load_and_attach_fentry(btf_id: u32) -> std::io::Result<()> {
    const BPF_PROG_LOAD: libc::c_long = 5;
    const BPF_RAW_TRACEPOINT_OPEN: libc::c_long = 17;
    const BPF_PROG_TYPE_TRACING: u32 = 26;
    const BPF_TRACE_FENTRY: u32 = 24;
    // mov64 r0, 0; exit
    let insns: [u64; 2] = [u64::from_le_bytes([0xb7, 0, 0, 0, 0, 0, 0, 0]), 0x95];
    let license = c"GPL";
    // union bpf_attr for BPF_PROG_LOAD, as bytes (offsets from the uapi).
    let mut attr = [0u8; 128];
    let mut put = |at: usize, bytes: &[u8]| attr[at..at + bytes.len()].copy_from_slice(bytes);
    put(0, &BPF_PROG_TYPE_TRACING.to_ne_bytes());
    put(4, &(insns.len() as u32).to_ne_bytes());
    put(8, &(insns.as_ptr() as u64).to_ne_bytes());
    put(16, &(license.as_ptr() as u64).to_ne_bytes());
    put(68, &BPF_TRACE_FENTRY.to_ne_bytes());
    put(108, &btf_id.to_ne_bytes());
    // SAFETY: bpf(2) reads `attr` (ours, 128 bytes) and the instructions
    // and license it points to, which live until the call returns.
    let prog = unsafe { libc::syscall(libc::SYS_bpf, BPF_PROG_LOAD, attr.as_ptr(), attr.len()) };
    if prog < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a descriptor bpf(2) just gave us, owned from here on.
    let prog = unsafe { OwnedFd::from_raw_fd(prog as i32) };
    // BPF_RAW_TRACEPOINT_OPEN: name (u64, none for tracing programs), prog_fd.
    let mut open = [0u8; 16];
    open[8..12].copy_from_slice(&(std::os::fd::AsRawFd::as_raw_fd(&prog) as u32).to_ne_bytes());
    // SAFETY: bpf(2) reads 16 bytes of `open`, which live on our stack.
    let link = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_RAW_TRACEPOINT_OPEN,
            open.as_ptr(),
            open.len(),
        )
    };
    if link < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above; dropping it detaches the program again.
    drop(unsafe { OwnedFd::from_raw_fd(link as i32) });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny BTF blob: header, then int "int" (id 1), func "f" (id 2).
    fn blob() -> Vec<u8> {
        let strings = b"\0int\0f\0";
        let mut types = Vec::new();
        for word in [1u32, 1 << 24, 4, 32] {
            types.extend(word.to_le_bytes()); // int: name, kind 1, size, bits
        }
        for word in [5u32, 12 << 24, 0] {
            types.extend(word.to_le_bytes()); // func "f"
        }
        let mut btf = vec![0x9f, 0xeb, 1, 0];
        for word in [
            24u32,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ] {
            btf.extend(word.to_le_bytes());
        }
        btf.extend(types);
        btf.extend(strings);
        btf
    }

    #[test]
    fn finds_a_type_by_name_and_kind_after_types_of_other_sizes() -> Result<()> {
        assert_eq!(find_type(&blob(), "f", BTF_KIND_FUNC)?, Some(2));
        assert_eq!(
            find_type(&blob(), "int", BTF_KIND_FUNC)?,
            None,
            "wrong kind"
        );
        assert_eq!(find_type(&blob(), "g", BTF_KIND_FUNC)?, None);
        assert!(
            find_type(&blob()[..30], "f", BTF_KIND_FUNC).is_err(),
            "cut short"
        );
        Ok(())
    }
}
