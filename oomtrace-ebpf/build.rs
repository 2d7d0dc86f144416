//! The eBPF object is linked by `bpf-linker`, which cargo does not know
//! about: rebuild when the linker binary changes, and say what to install
//! when it is missing.
fn main() {
    match which::which("bpf-linker") {
        Ok(path) => println!("cargo:rerun-if-changed={}", path.display()),
        Err(_) => println!(
            "cargo:warning=bpf-linker not found on PATH: run `cargo xtask setup` to install it"
        ),
    }
    // Global BPF functions stay global only if the linker exports them
    // (it makes everything else static); see cgroup::oomtrace_memcg_path
    // and reclaim::oomtrace_reclaim_account.
    println!("cargo:rustc-link-arg-bins=--export=oomtrace_memcg_path,oomtrace_reclaim_account");
}
