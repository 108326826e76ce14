//! The LayerP2P lab: what researchers and load testers run on top of the core.
//!
//! - `experiment`: the prototype experiment (DESIGN.md §9) on a real UDP swarm or in the
//!   simulator; PSNR scoring; pooling runs into one report with confidence intervals.
//! - `pool`: the per-run record every run is saved as, read back and pooled per system.
//! - `trace_run`: trace-driven simulations of several systems on a pool of threads.
//! - `reproduce`: reruns the published comparisons and writes docs/RESULTS.md.
//! - `parallel`: independent runs on a pool of threads.
//! - `record`: the provenance every run file carries (schema, commit, command).
//! - `loadgen`: thousands of synthetic peers against one seed or relay.

pub mod experiment;
pub mod loadgen;
pub mod parallel;
pub mod pool;
pub mod record;
pub mod reproduce;
pub mod trace_run;

/// Why a lab run could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The setup was refused (a bad parameter or combination); the text says which.
    #[error("{0}")]
    Config(String),
    #[error("cannot start a simulation thread: {0}")]
    Thread(std::io::Error),
    #[error(transparent)]
    Sim(#[from] layerp2p_sim::SimError),
    #[error(transparent)]
    Parallel(#[from] layerp2p_sim::parallel::ParallelError),
    #[error(transparent)]
    Pool(#[from] layerp2p_proto::swarm::report::PoolError),
    #[error("video: {0}")]
    Video(#[from] layerp2p_codec::video::CodecError),
    #[error("video source: {0}")]
    VideoSource(#[from] layerp2p_codec::video::source::SourceError),
    #[error("the synthetic source: {0}")]
    Source(#[from] layerp2p_codec::synthetic::SyntheticError),
    #[error("the swarm: {0}")]
    Io(#[from] std::io::Error),
    #[error("a run's JSON does not read back: {0}")]
    Json(serde_json::Error),
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: std::io::Error },
}
