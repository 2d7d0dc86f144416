//! `aya::Pod` for every record the loader copies out of the kernel side, so
//! the one unsafe copy in the loader's decoder can demand it.

use super::{
    CandidatesRecord, CmdlineHeader, IncidentRecord, KernelLayout, OomKillRecord, OutcomeRecord,
    PressureRecord, ReclaimSnapshot, SigkillRecord,
};

// SAFETY: each is `#[repr(C)]`, made of integers and byte arrays with
// explicit padding fields (sizes asserted in lib.rs), so every bit pattern
// is a valid value.
unsafe impl aya::Pod for OomKillRecord {}
unsafe impl aya::Pod for KernelLayout {}
unsafe impl aya::Pod for PressureRecord {}
unsafe impl aya::Pod for OutcomeRecord {}
unsafe impl aya::Pod for SigkillRecord {}
unsafe impl aya::Pod for IncidentRecord {}
unsafe impl aya::Pod for CandidatesRecord {}
unsafe impl aya::Pod for CmdlineHeader {}
unsafe impl aya::Pod for ReclaimSnapshot {}
