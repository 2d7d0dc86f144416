//! Zeroing and copying records word by word.
//!
//! A struct literal, `[0; N]` or `*a = *b` of more than a few words becomes
//! a call to compiler-builtins' `memset`/`memcpy`, a byte loop the verifier
//! walks byte by byte at every call site on every path (a third of
//! `mark_victim_btf`'s verification). Volatile word accesses stay what they
//! are: a handful of stores the verifier checks once.

/// Words in a `T` that can be zeroed or copied a word at a time.
#[inline(always)]
const fn words<T>() -> usize {
    assert!(core::mem::size_of::<T>().is_multiple_of(8) && core::mem::align_of::<T>() >= 8);
    core::mem::size_of::<T>() / 8
}

/// Zeroes `*dst` (a plain-data record: every bit pattern valid).
#[inline(always)]
pub fn zero<T>(dst: &mut T) {
    let dst = (dst as *mut T).cast::<u64>();
    for i in 0..const { words::<T>() } {
        // SAFETY: `i` is below the word count of an 8-aligned `T`.
        unsafe { core::ptr::write_volatile(dst.add(i), 0) };
    }
}

/// `*dst = *src`.
#[inline(always)]
pub fn copy<T: Copy>(dst: &mut T, src: &T) {
    let (dst, src) = (
        (dst as *mut T).cast::<u64>(),
        (src as *const T).cast::<u64>(),
    );
    for i in 0..const { words::<T>() } {
        // SAFETY: both are 8-aligned `T`s; `i` is below their word count.
        unsafe { core::ptr::write_volatile(dst.add(i), core::ptr::read_volatile(src.add(i))) };
    }
}

/// Zeroes a task's 16-byte comm, which sits 8-aligned in its record.
#[inline(always)]
pub fn zero_comm(comm: &mut [u8; oomtrace_common::TASK_COMM_LEN]) {
    const _: () = assert!(oomtrace_common::TASK_COMM_LEN == 16);
    let dst = comm.as_mut_ptr().cast::<u64>();
    // SAFETY: 16 bytes; TaskRef keeps `comm` at an 8-aligned offset (its
    // layout is asserted in oomtrace-common).
    unsafe {
        core::ptr::write_volatile(dst, 0);
        core::ptr::write_volatile(dst.add(1), 0);
    }
}

const _: () = assert!(core::mem::offset_of!(oomtrace_common::TaskRef, comm).is_multiple_of(8));
