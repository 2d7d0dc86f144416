//! The guest's initramfs: busybox, static oomtrace, the hog and the guest
//! driver, and an /init that runs them and powers off.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};

use super::{CAPTURES, MUSL};
use crate::sh::{Cmd, pipeline, workspace_root};

const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin OOMTRACE_BIN=/bin/oomtrace
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t tracefs tracefs /sys/kernel/tracing
echo +memory > /sys/fs/cgroup/cgroup.subtree_control
hostname oomtrace-vm
echo "oomtrace-vm: $(uname -r)"
oomtrace check
oomtrace-vm-guest /dev/ttyS1 CAPTURES
echo "oomtrace-vm: done"
poweroff -f
"#;

pub fn build(work: &Path) -> Result<PathBuf> {
    let root = work.join("initramfs");
    if root.exists() {
        fs::remove_dir_all(&root)?;
    }
    for dir in ["bin", "proc", "sys", "dev", "tmp"] {
        fs::create_dir_all(root.join(dir))?;
    }
    fs::copy("/bin/busybox", root.join("bin/busybox")).context("busybox-static")?;
    let release = workspace_root().join("target").join(MUSL).join("release");
    fs::copy(crate::dist::binary_path(), root.join("bin/oomtrace")).context("copy oomtrace")?;
    for bin in ["oomtrace-test-hog", "oomtrace-vm-guest"] {
        fs::copy(release.join(bin), root.join("bin").join(bin))
            .with_context(|| format!("copy {bin}"))?;
    }
    // The guest driver provokes a global OOM only where this exists.
    fs::write(root.join("oomtrace-vm"), "")?;
    let init = root.join("init");
    fs::write(&init, INIT.replace("CAPTURES", &CAPTURES.join(" ")))?;
    Cmd::new("chmod").args(["+x"]).arg(&init).run()?;
    let initrd = work.join("initrd.gz");
    let script = format!(
        "cd '{}' && find . | cpio -o -H newc --quiet | gzip -1 > '{}'",
        root.display(),
        initrd.display()
    );
    pipeline(&script)?;
    Ok(initrd)
}
