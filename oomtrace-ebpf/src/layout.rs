//! The running kernel's struct layout, written by the loader before load.

use oomtrace_common::{KernelLayout, OFFSET_UNKNOWN};

/// Lives in `.rodata`: the loader overrides it, the kernel freezes it, and
/// the verifier then treats every field as a known constant, so offsets and
/// loop bounds read from here verify like literals.
#[unsafe(no_mangle)]
pub(crate) static LAYOUT: KernelLayout = KernelLayout::UNKNOWN;

/// Reads one field of [`LAYOUT`]. Volatile so the compiler cannot fold the
/// build-time default in.
macro_rules! layout {
    ($field:ident) => {
        unsafe { core::ptr::read_volatile(&crate::layout::LAYOUT.$field) }
    };
}
pub(crate) use layout;

/// `Some(offset)` when the loader resolved it.
#[inline(always)]
pub fn known(offset: u32) -> Option<usize> {
    if offset == OFFSET_UNKNOWN {
        None
    } else {
        Some(offset as usize)
    }
}
