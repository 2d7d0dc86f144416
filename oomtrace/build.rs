//! Builds the eBPF programs (oomtrace-ebpf, nightly + bpf-linker) and leaves
//! the object in OUT_DIR, where src/capture/mod.rs embeds it: the release
//! binary is the only file a node needs. Without the `ebpf` feature (fuzz
//! builds) it builds nothing.

#[cfg(not(feature = "ebpf"))]
fn main() {}

#[cfg(feature = "ebpf")]
fn main() -> anyhow::Result<()> {
    use anyhow::{Context as _, anyhow};
    use aya_build::{Package, Toolchain};

    let metadata = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata failed")?;
    let ebpf = metadata
        .packages
        .iter()
        .find(|package| package.name.as_str() == "oomtrace-ebpf")
        .ok_or_else(|| anyhow!("oomtrace-ebpf is not in the workspace"))?;
    let root_dir = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("oomtrace-ebpf manifest has no parent directory"))?;
    aya_build::build_ebpf(
        [Package {
            name: ebpf.name.as_str(),
            root_dir: root_dir.as_str(),
            ..Default::default()
        }],
        Toolchain::Nightly,
    )?;
    strip_debug_info()
}

/// Drops the object's DWARF (its BTF was made from it at link time, and
/// the verifier's line info is in .BTF.ext): 1 MB becomes ~240 KB, and
/// aya no longer parses ~25,000 relocations of debug sections at every
/// start, which cost tens of ms in an emulated VM. Without llvm-objcopy
/// (LLVM 22 comes with `cargo xtask setup`) the object stays as it is.
#[cfg(feature = "ebpf")]
fn strip_debug_info() -> anyhow::Result<()> {
    use anyhow::Context as _;
    let out_dir = std::env::var_os("OUT_DIR").context("OUT_DIR is not set")?;
    let object = std::path::Path::new(&out_dir).join("oomtrace");
    let objcopy = [
        "llvm-objcopy-22",
        "/usr/lib/llvm-22/bin/llvm-objcopy",
        "llvm-objcopy",
    ]
    .into_iter()
    .find_map(|name| which::which(name).ok());
    let Some(objcopy) = objcopy else {
        println!(
            "cargo:warning=llvm-objcopy not found: the eBPF object keeps its debug info \
             (a slower start); `cargo xtask setup` installs LLVM 22"
        );
        return Ok(());
    };
    let status = std::process::Command::new(&objcopy)
        .arg("--strip-debug")
        .arg(&object)
        .status()
        .with_context(|| format!("cannot run {}", objcopy.display()))?;
    anyhow::ensure!(
        status.success(),
        "{} --strip-debug {} failed ({status})",
        objcopy.display(),
        object.display()
    );
    Ok(())
}
