//! The LayerP2P lab: what researchers and load testers run on top of the core.
//!
//! - `experiment`: the prototype experiment (DESIGN.md §9) on a real UDP swarm or in the
//!   simulator; PSNR scoring; pooling runs into one report with confidence intervals.
//! - `loadgen`: thousands of synthetic peers against one seed or relay.

pub mod experiment;
pub mod loadgen;
