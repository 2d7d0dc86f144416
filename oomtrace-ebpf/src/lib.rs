//! Empty library target: lets the loader declare a build-dependency on this
//! crate, so cargo rebuilds the loader when the programs change.
#![no_std]
