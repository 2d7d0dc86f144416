//! The guest's initramfs: busybox, static oomtrace, the hog and the guest
//! driver, and an /init that runs them and powers off.

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};

use super::{CAPTURES, arch::Arch};
use crate::sh::{Cmd, pipeline, workspace_root};

const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin OOMTRACE_BIN=/bin/oomtrace OOMTRACE_READY_SECS=@READY_SECS@
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts
mount -t devpts devpts /dev/pts
mount -t tmpfs tmp /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t tracefs tracefs /sys/kernel/tracing
echo +memory > /sys/fs/cgroup/cgroup.subtree_control
hostname oomtrace-vm
echo "oomtrace-vm: $(uname -r)"
oomtrace check
oomtrace-vm-guest /dev/EVIDENCE CAPTURES
echo "oomtrace-vm: done"
poweroff -f
"#;

/// The initramfs for `arch`'s guests (`initrd.gz` for x86_64,
/// `initrd-ARCH.gz` for the others).
pub fn build(work: &Path, arch: Arch) -> Result<PathBuf> {
    let suffix = if arch.is_host() {
        String::new()
    } else {
        format!("-{}", arch.name())
    };
    let root = work.join(format!("initramfs{suffix}"));
    if root.exists() {
        fs::remove_dir_all(&root)?;
    }
    for dir in ["bin", "proc", "sys", "dev", "tmp"] {
        fs::create_dir_all(root.join(dir))?;
    }
    let busybox = if arch.is_host() {
        "/bin/busybox".into()
    } else {
        super::arch::package_file(arch, "busybox-static", "/bin/busybox", &work.join("cache"))?
    };
    fs::copy(&busybox, root.join("bin/busybox")).context("busybox-static")?;
    // Extracted from a .deb with tar -O, the cached copy lost its mode.
    fs::set_permissions(root.join("bin/busybox"), fs::Permissions::from_mode(0o755))?;
    let release = workspace_root()
        .join("target")
        .join(arch.musl_target())
        .join("release");
    fs::copy(
        crate::dist::binary_path_for(arch),
        root.join("bin/oomtrace"),
    )
    .context("copy oomtrace")?;
    for bin in ["oomtrace-test-hog", "oomtrace-vm-guest"] {
        fs::copy(release.join(bin), root.join("bin").join(bin))
            .with_context(|| format!("copy {bin}"))?;
    }
    // The C peer of the `oomkill` scenario, with its libraries from
    // Debian's archive (glibc among them, which earlyoom then uses too),
    // and the userspace OOM killer of the `earlyoom` scenario (from the
    // host's apt): x86_64 guests only.
    if arch.is_host() {
        super::oomkill::install(&root, work)?;
        super::earlyoom::install(&root, work)?;
    }
    // The guest driver provokes a global OOM only where this exists.
    fs::write(root.join("oomtrace-vm"), "")?;
    let init = root.join("init");
    let init_text = INIT
        .replace("CAPTURES", &arch.captures(&CAPTURES).join(" "))
        .replace("EVIDENCE", arch.ttys().1)
        .replace("@READY_SECS@", &arch.ready_secs().to_string());
    fs::write(&init, init_text)?;
    Cmd::new("chmod").args(["+x"]).arg(&init).run()?;
    let initrd = work.join(format!("initrd{suffix}.gz"));
    let script = format!(
        "cd '{}' && find . | cpio -o -H newc --quiet | gzip -1 > '{}'",
        root.display(),
        initrd.display()
    );
    pipeline(&script)?;
    Ok(initrd)
}
