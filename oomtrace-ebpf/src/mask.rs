//! Tests as arithmetic: 0 or 1 (or all-zero / all-one masks) without a
//! branch. The verifier follows both sides of every branch, and a branch on
//! a value it tracks keeps every path before it a state of its own, so
//! code run on every path (the stack search's slots, a walk's steps, the
//! reclaim window's buckets) folds its tests into masks instead.

/// `x`, hidden from the optimizer. LLVM recognises the bit tricks below as
/// comparisons and, BPF having no set-on-condition instruction, turns them
/// back into branches; an empty asm block keeps them arithmetic.
#[inline(always)]
pub fn opaque(mut x: u64) -> u64 {
    // SAFETY: a register move onto itself. (An empty asm block leaves two
    // BTF line records on one instruction, which the kernel refuses.)
    unsafe { core::arch::asm!("{0} = {0}", inlateout(reg) x, options(pure, nomem, nostack)) };
    x
}

/// 1 if `x` is zero, else 0, without a branch.
#[inline(always)]
pub fn is_zero(x: u64) -> u64 {
    opaque(opaque(x | x.wrapping_neg()) >> 63) ^ 1
}

/// 1 if `a < b` for values below 2^62, else 0, without a branch.
#[inline(always)]
pub fn below(a: u64, b: u64) -> u64 {
    opaque(opaque(a.wrapping_sub(b)) >> 63)
}
