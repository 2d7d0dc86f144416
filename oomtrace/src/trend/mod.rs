//! Memory trends of limited cgroups: samples of their usage over time, a
//! summary of the OOM domain's usage before a kill, and the reading of it
//! that tells a leak from a small limit.

pub mod sample;
pub mod sampler;
pub mod summary;
pub mod verdict;
