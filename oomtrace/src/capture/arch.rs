//! What the running kernel's architecture decides and BTF does not record:
//! the kernel stack size (for the OOM-control stack search) and which bits
//! of a kernel pointer say it is one (arm64's top byte may be a tag).
//!
//! The architecture is the running kernel's (`uname -m`), never the one
//! oomtrace was built for; the page size is the kernel's (sysconf), and the
//! config options that change the stack size are read from BTF.

use oomtrace_common::KernelLayout;

/// A kernel architecture the loader knows the stack rules of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Machine {
    X86_64,
    Aarch64,
}

impl Machine {
    /// From `uname -m`'s machine; `None` for an architecture whose kernel
    /// stack rules the loader does not know.
    pub fn from_uname(machine: &str) -> Option<Machine> {
        match machine {
            "x86_64" => Some(Machine::X86_64),
            "aarch64" | "arm64" => Some(Machine::Aarch64),
            _ => None,
        }
    }

    /// The running kernel's.
    pub fn running() -> Option<Machine> {
        Machine::from_uname(&uname_machine()?)
    }
}

/// `uname(2)`'s machine field.
fn uname_machine() -> Option<String> {
    // SAFETY: uname fills the struct it is given; zeroed is a valid value.
    let mut name: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a utsname.
    if unsafe { libc::uname(&mut name) } != 0 {
        return None;
    }
    let bytes: Vec<u8> = name
        .machine
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8(bytes).ok()
}

/// Config options that change THREAD_SIZE, as the kernel's BTF shows them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StackConfig {
    /// CONFIG_KASAN in a mode that doubles the stack (generic or software
    /// tags; hardware tags do not).
    pub kasan_doubles: bool,
    /// CONFIG_VMAP_STACK: stacks are vmalloc'ed, so at least a page.
    pub vmap_stack: bool,
}

/// THREAD_SIZE in bytes, or 0 where the rules are not known (the stack
/// search is then not tried).
/// - x86-64: `PAGE_SIZE << (2 + KASAN)`; pages are always 4 KiB.
/// - arm64: `1 << (14 + KASAN)`, but at least a page with VMAP_STACK (16
///   KiB with 4K and 16K pages, 64 KiB with 64K pages).
pub fn thread_size(machine: Option<Machine>, page_size: u64, config: StackConfig) -> u32 {
    let kasan = u32::from(config.kasan_doubles);
    let size: u64 = match machine {
        Some(Machine::X86_64) => page_size << (2 + kasan),
        Some(Machine::Aarch64) => {
            let min = 1u64 << (14 + kasan);
            if config.vmap_stack && min < page_size {
                page_size
            } else {
                min
            }
        }
        None => 0,
    };
    u32::try_from(size).unwrap_or(0)
}

/// What makes a value on the stack read as a kernel pointer, and which of
/// its bits are the address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PointerBits {
    /// Bits `[shift, shift + ones)` of a kernel pointer are all set.
    pub kernel_ones_shift: u32,
    pub kernel_ones: u32,
    /// The low bits that name the address; above them a tag may sit.
    pub address_bits: u32,
}

/// - x86-64: the kernel half starts at 0xffff8... (4-level paging) or
///   0xff... (5-level): the top byte is all ones; no tags.
/// - arm64: bit 55 selects the kernel's translation table, and bits 52-55
///   are set for every VA size (39 to 52 bits); the top byte is ignored by
///   the MMU (TBI) and carries a tag with KASAN's tag modes, so it is
///   neither tested nor compared.
/// - unknown: as x86-64 (the strictest test, no masking).
pub fn pointer_bits(machine: Option<Machine>) -> PointerBits {
    match machine {
        Some(Machine::Aarch64) => PointerBits {
            kernel_ones_shift: 52,
            kernel_ones: 4,
            address_bits: 56,
        },
        Some(Machine::X86_64) | None => PointerBits {
            kernel_ones_shift: 56,
            kernel_ones: 8,
            address_bits: 64,
        },
    }
}

/// Sets the layout's architecture-dependent fields.
pub fn apply(
    layout: &mut KernelLayout,
    machine: Option<Machine>,
    page_size: u64,
    config: StackConfig,
) {
    layout.thread_size = thread_size(machine, page_size, config);
    let bits = pointer_bits(machine);
    layout.kernel_ptr_ones_shift = bits.kernel_ones_shift;
    layout.kernel_ptr_ones = bits.kernel_ones;
    layout.ptr_address_bits = bits.address_bits;
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: StackConfig = StackConfig {
        kasan_doubles: false,
        vmap_stack: true,
    };

    #[test]
    fn x86_stacks_are_four_pages_doubled_by_kasan() {
        let x86 = Some(Machine::X86_64);
        assert_eq!(thread_size(x86, 4096, PLAIN), 16 << 10);
        let kasan = StackConfig {
            kasan_doubles: true,
            ..PLAIN
        };
        assert_eq!(thread_size(x86, 4096, kasan), 32 << 10);
    }

    #[test]
    fn arm64_stacks_are_16k_or_a_page_with_vmap_stack() {
        let arm = Some(Machine::Aarch64);
        assert_eq!(thread_size(arm, 4 << 10, PLAIN), 16 << 10);
        assert_eq!(thread_size(arm, 16 << 10, PLAIN), 16 << 10);
        assert_eq!(thread_size(arm, 64 << 10, PLAIN), 64 << 10);
        let no_vmap = StackConfig {
            vmap_stack: false,
            ..PLAIN
        };
        assert_eq!(thread_size(arm, 64 << 10, no_vmap), 16 << 10);
        let kasan = StackConfig {
            kasan_doubles: true,
            ..PLAIN
        };
        assert_eq!(thread_size(arm, 4 << 10, kasan), 32 << 10);
        assert_eq!(thread_size(arm, 64 << 10, kasan), 64 << 10);
    }

    #[test]
    fn unknown_architectures_get_no_stack_search() {
        assert_eq!(Machine::from_uname("riscv64"), None);
        assert_eq!(thread_size(None, 4096, PLAIN), 0);
        assert_eq!(Machine::from_uname("aarch64"), Some(Machine::Aarch64));
    }

    #[test]
    fn this_machine_is_known() {
        // The host tests run on x86-64 or arm64; uname must say which.
        let running = Machine::running();
        let expected = if cfg!(target_arch = "aarch64") {
            Machine::Aarch64
        } else {
            Machine::X86_64
        };
        assert_eq!(running, Some(expected));
    }

    /// The eBPF side's tests (shared code), on the loader's numbers.
    fn reads_as_kernel(bits: PointerBits, value: u64) -> bool {
        oomtrace_common::kernel_pointer_miss(value, bits.kernel_ones_shift, bits.kernel_ones) == 0
    }

    fn same_address(bits: PointerBits, a: u64, b: u64) -> bool {
        (a ^ b) & oomtrace_common::address_mask(bits.address_bits) == 0
    }

    #[test]
    fn kernel_pointers_of_each_architecture() {
        let x86 = pointer_bits(Some(Machine::X86_64));
        assert!(reads_as_kernel(x86, 0xffff_8880_0123_4000), "4-level");
        assert!(reads_as_kernel(x86, 0xff11_0000_0123_4000), "5-level");
        assert!(!reads_as_kernel(x86, 0x0000_7fff_0123_4000), "user");
        assert!(!same_address(
            x86,
            0xffff_8880_0123_4000,
            0x0fff_8880_0123_4000
        ));

        let arm = pointer_bits(Some(Machine::Aarch64));
        assert!(reads_as_kernel(arm, 0xffff_0000_c123_4000), "48-bit VA");
        assert!(reads_as_kernel(arm, 0xfff0_0000_c123_4000), "52-bit VA");
        assert!(reads_as_kernel(arm, 0xffff_ff80_0123_4000), "39-bit VA");
        // A KASAN tag in the top byte (hardware tags: 0xf0-0xfe).
        assert!(reads_as_kernel(arm, 0xf4ff_0000_c123_4000), "tagged");
        assert!(!reads_as_kernel(arm, 0x0000_ffff_8123_4000), "user");
        assert!(same_address(
            arm,
            0xf4ff_0000_c123_4000,
            0xffff_0000_c123_4000
        ));
        assert!(!same_address(
            arm,
            0xffff_0000_c123_4000,
            0xffff_0000_c123_4008
        ));
    }
}
