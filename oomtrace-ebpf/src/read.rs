//! Bounded reads of kernel memory.

use aya_ebpf::helpers::bpf_probe_read_kernel;

use crate::layout::known;

/// Reads a `T` at `base + offset`, or `None` when the base is NULL, the
/// offset is unknown on this kernel, or the read faults.
#[inline(always)]
pub fn field<T>(base: u64, offset: u32) -> Option<T> {
    let offset = known(offset)?;
    if base == 0 {
        return None;
    }
    // SAFETY: bpf_probe_read_kernel copies with fault handling; a bad address
    // yields an error, not a crash.
    unsafe { bpf_probe_read_kernel((base as usize + offset) as *const T).ok() }
}

/// Reads a kernel pointer at `base + offset`; NULL counts as unreadable.
#[inline(always)]
pub fn pointer(base: u64, offset: u32) -> Option<u64> {
    field::<u64>(base, offset).filter(|p| *p != 0)
}

/// Turns a verifier-tracked pointer into a plain number. The verifier lets a
/// privileged program read its own stack through `bpf_probe_read_kernel`, and
/// what comes back is a scalar that can take part in address arithmetic
/// (pointer minus large scalar is otherwise refused).
#[inline(always)]
pub fn address_of<T>(pointer: *const T) -> Option<u64> {
    let slot: u64 = pointer as u64;
    // SAFETY: reads our own stack slot.
    unsafe { bpf_probe_read_kernel(core::ptr::addr_of!(slot)).ok() }
}

/// The u64 at `address`, or 0 when the read faults (the helper zeroes its
/// buffer then). Always a defined value: an `Option` whose `None` payload
/// LLVM leaves undefined may be spilled from an uninitialized register,
/// which the verifier refuses (`R4 !read_ok`).
#[inline(always)]
pub fn u64_or_zero(address: u64) -> u64 {
    let mut value: u64 = 0;
    // SAFETY: a fault-tolerant copy into our own stack slot.
    unsafe {
        aya_ebpf::helpers::generated::bpf_probe_read_kernel(
            core::ptr::addr_of_mut!(value).cast(),
            8,
            address as *const core::ffi::c_void,
        )
    };
    value
}

/// The `T` at `address` widened to u64, or 0 when the read faults: for
/// branch-free code (see [`u64_or_zero`]).
#[inline(always)]
fn or_zero<T: Copy + Into<u64>>(address: u64, zero: T) -> u64 {
    let mut value: T = zero;
    // SAFETY: a fault-tolerant copy into our own stack slot.
    unsafe {
        aya_ebpf::helpers::generated::bpf_probe_read_kernel(
            core::ptr::addr_of_mut!(value).cast(),
            core::mem::size_of::<T>() as u32,
            address as *const core::ffi::c_void,
        )
    };
    value.into()
}

/// The u32 at `address`, or 0 (see [`or_zero`]).
#[inline(always)]
pub fn u32_or_zero(address: u64) -> u64 {
    or_zero(address, 0u32)
}

/// The byte at `address`, or 0 (see [`or_zero`]).
#[inline(always)]
pub fn u8_or_zero(address: u64) -> u64 {
    or_zero(address, 0u8)
}

/// The u64 at `base + offset` and whether it was read: a defined value on
/// every path (0 when unread), for reads combined before one test. Five
/// `Option`s matched together let LLVM spill a `None`'s undefined payload,
/// which verifiers without uninitialized-stack reads (5.10) refuse
/// (`invalid read from stack`).
#[inline(always)]
pub fn u64_field(base: u64, offset: u32) -> (bool, u64) {
    let Some(offset) = known(offset) else {
        return (false, 0);
    };
    if base == 0 {
        return (false, 0);
    }
    let mut value: u64 = 0;
    // SAFETY: a fault-tolerant copy into our own stack slot.
    let ret = unsafe {
        aya_ebpf::helpers::generated::bpf_probe_read_kernel(
            core::ptr::addr_of_mut!(value).cast(),
            8,
            (base as usize + offset) as *const core::ffi::c_void,
        )
    };
    (ret == 0, value)
}
