//! oomtrace's kernel tests, one binary: real OOM kills in test cgroups
//! (`oomtrace-test-*`, limits <= 256 MiB), each record checked against what
//! the kernel itself reported and what the test set up. Run them with
//! `cargo xtask test [FILTER]` (root; it builds oomtrace and points
//! `OOMTRACE_BIN` at it). Every test that loads BPF or kills holds
//! `common::setup()`'s lock, so counts never see another test's kills.

// What every test shares: limits, the standard kill, the kernel's report.
mod common;

// The kill record itself.
mod bystander; // a victim that is not the allocator; the trigger named
mod kill_records; // every figure of a memcg kill against the kernel's log
mod oom_domain; // parent limits: whose limit was hit
mod tracepoint; // the classic tracepoint path, nothing guessed

// What oomtrace adds around a kill.
mod candidates; // who else was in the OOM domain, vs the kernel's task dump
mod docker; // containers named by a real dockerd's API, docker stop; a podman cgroupfs path
mod history; // the victim's age, its workload's kill history
mod k8s; // pod, container and service names from the cgroup path
mod outcomes; // the victim's exit and what the reaper did
mod reclaim; // reclaim stalls and --pressure, vs the kernel's vmscan trace
mod runtime; // JVM / Go heap caps read from the victim's memory
mod sigkill; // --sigkill: SIGKILLs that are not the OOM killer's
mod store; // --store and `oomtrace list`: the history, crashes, a full disk
mod trend; // --trend-interval: a leak vs a victim killed at start

// Many kills, and choosing among them.
mod filters; // --cgroup, --comm, --pod
mod storm; // ring-buffer loss, storms across cgroups, a soak

// The program as a user and an operator meet it.
mod cli; // errors, check, signals, limits, output destinations
mod deploy; // manifests, the systemd unit, least capabilities
mod dist; // cargo xtask dist: static binary, .deb via dpkg, image in a real dockerd
mod metrics; // --metrics scraped by a real Prometheus
