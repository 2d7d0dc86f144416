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
    )
}
