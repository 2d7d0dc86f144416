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

/// The `T` at `address` and whether it was read; `zero` when it was not
/// (the helper zeroes its buffer on a fault). Always a defined value: an
/// `Option` whose `None` payload LLVM leaves undefined may be spilled from
/// an uninitialized register, which the verifier refuses (`R4 !read_ok`),
/// and branch-free code needs a value on every path.
#[inline(always)]
fn read_or<T: Copy>(address: u64, zero: T) -> (bool, T) {
    let mut value: T = zero;
    // SAFETY: a fault-tolerant copy into our own stack slot.
    let ret = unsafe {
        aya_ebpf::helpers::generated::bpf_probe_read_kernel(
            core::ptr::addr_of_mut!(value).cast(),
            core::mem::size_of::<T>() as u32,
            address as *const core::ffi::c_void,
        )
    };
    (ret == 0, value)
}

/// The u64 at `address`, or 0 when the read faults (see [`read_or`]).
#[inline(always)]
pub fn u64_or_zero(address: u64) -> u64 {
    read_or(address, 0u64).1
}

/// The u32 at `address` widened, or 0 (see [`read_or`]).
#[inline(always)]
pub fn u32_or_zero(address: u64) -> u64 {
    read_or(address, 0u32).1.into()
}

/// The byte at `address` widened, or 0 (see [`read_or`]).
#[inline(always)]
pub fn u8_or_zero(address: u64) -> u64 {
    read_or(address, 0u8).1.into()
}

/// The u64 at `base + offset` and whether it was read (0 when unread),
/// for reads combined before one test: five `Option`s matched together
/// let LLVM spill a `None`'s undefined payload, which verifiers without
/// uninitialized-stack reads (5.10) refuse (`invalid read from stack`).
#[inline(always)]
pub fn u64_field(base: u64, offset: u32) -> (bool, u64) {
    let Some(offset) = known(offset) else {
        return (false, 0);
    };
    if base == 0 {
        return (false, 0);
    }
    read_or(base + offset as u64, 0u64)
}
