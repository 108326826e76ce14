//! Per-run files of the prototype experiment, written and read back: the typed record
//! every run (real or simulated) is saved as, and the pooling of runs read from files
//! into one report per system.

use crate::LabError;
use crate::experiment::{
    Aggregate, ClassDiagnostics, ClassQuality, Published, RateSeries, RunFile, aggregate, published_overloaded,
};
use crate::record::Provenance;
use layerp2p_proto::swarm::SwarmReport;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// One run of `experiment prototype` as saved (`{scenario}-{policy}[-sim]-run{k}.json`).
#[derive(Debug, Serialize)]
pub struct RunRecord<'a> {
    #[serde(flatten)]
    pub provenance: Provenance,
    pub scenario: &'a str,
    pub policy: &'a str,
    pub run: u32,
    pub seed: u64,
    /// Run in the simulator rather than on sockets.
    pub simulated: bool,
    /// The simulator's one-way message latency (simulated runs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    pub parameters: &'a serde_json::Value,
    pub report: &'a SwarmReport,
    pub diagnostics: Vec<ClassDiagnostics>,
    pub psnr: Option<&'a Vec<ClassQuality>>,
    /// The played-rate time series of a typical peer per class (real runs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub typical: Option<&'a Vec<Option<RateSeries>>>,
    /// Socket and timer counters (real runs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub io: Option<&'a layerp2p_runtime::driver::IoStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard_cpu_s: Option<&'a Vec<f64>>,
}

/// Writes `value` as pretty JSON at `path`.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<(), LabError> {
    let write = |source| LabError::Write { path: path.display().to_string(), source };
    let text = serde_json::to_string_pretty(value).map_err(|e| write(e.into()))?;
    std::fs::write(path, text).map_err(write)
}

/// Reads per-run files of one scenario back; refuses files of several scenarios and
/// the same run given twice (its peers would count twice). Returns the scenario.
pub fn read_runs(paths: &[PathBuf]) -> Result<(String, Vec<RunFile>), LabError> {
    let mut files = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(path)
            .map_err(|e| LabError::Config(format!("cannot read {}: {e}", path.display())))?;
        let f: RunFile = serde_json::from_str(&text).map_err(|e| {
            LabError::Config(format!("{} is not a per-run JSON of `experiment prototype`: {e}", path.display()))
        })?;
        files.push(f);
    }
    let first = paths.first().map(|p| p.display().to_string()).unwrap_or_default();
    let scenario = files
        .first()
        .and_then(|f| f.scenario.clone())
        .ok_or_else(|| LabError::Config(format!("{first}: the file names no scenario")))?;
    if let Some((path, f)) = paths.iter().zip(&files).find(|(_, f)| f.scenario.as_deref() != Some(scenario.as_str())) {
        return Err(LabError::Config(format!(
            "{} is of scenario {}, the first file of {scenario}: pool one scenario at a time",
            path.display(),
            f.scenario.as_deref().unwrap_or("?")
        )));
    }
    for (i, f) in files.iter().enumerate() {
        if let Some(j) = files[..i].iter().position(|g| g.policy == f.policy && g.seed.is_some() && g.seed == f.seed) {
            return Err(LabError::Config(format!(
                "{} and {} are both {} with seed {}: give each run once",
                paths[j].display(),
                paths[i].display(),
                f.policy,
                f.seed.unwrap_or(0)
            )));
        }
    }
    Ok((scenario, files))
}

/// The runs of each system, systems in the order first seen.
pub fn by_system(files: &[RunFile]) -> Vec<(&str, Vec<&RunFile>)> {
    let mut systems: Vec<(&str, Vec<&RunFile>)> = Vec::new();
    for f in files {
        match systems.iter_mut().find(|(p, _)| *p == f.policy) {
            Some((_, runs)) => runs.push(f),
            None => systems.push((&f.policy, vec![f])),
        }
    }
    systems
}

/// One system's runs pooled.
#[derive(Debug)]
pub struct PooledSystem<'a> {
    pub policy: &'a str,
    pub runs: Vec<&'a RunFile>,
    pub aggregate: Aggregate,
    /// DESIGN.md §11's overloaded-prototype figures beside this system's.
    pub published: Vec<Published>,
}

/// Pools every system's runs (systems in the order first seen).
pub fn pool_systems(files: &[RunFile]) -> Result<Vec<PooledSystem<'_>>, LabError> {
    by_system(files)
        .into_iter()
        .map(|(policy, runs)| {
            let aggregate = aggregate(runs.iter().map(|r| (&r.report, r.psnr.as_ref())))?;
            let published = published_overloaded(&aggregate.report);
            Ok(PooledSystem { policy, runs, aggregate, published })
        })
        .collect()
}

/// One system in `{scenario}-summary.json`.
#[derive(Debug, Serialize)]
pub struct SystemSummary<'a> {
    pub policy: &'a str,
    pub runs: usize,
    pub report: &'a SwarmReport,
    pub psnr: Option<&'a Vec<ClassQuality>>,
    pub published: &'a [Published],
}

/// `{scenario}-summary.json`: the provenance and every system pooled.
#[derive(Debug, Serialize)]
pub struct Summary<'a> {
    #[serde(flatten)]
    pub provenance: Provenance,
    pub scenario: &'a str,
    pub systems: Vec<SystemSummary<'a>>,
}

impl<'a> Summary<'a> {
    pub fn of(scenario: &'a str, pooled: &'a [PooledSystem<'a>]) -> Summary<'a> {
        let systems = pooled
            .iter()
            .map(|p| SystemSummary {
                policy: p.policy,
                runs: p.runs.len(),
                report: &p.aggregate.report,
                psnr: p.aggregate.psnr.as_ref(),
                published: &p.published,
            })
            .collect();
        Summary { provenance: Provenance::current(), scenario, systems }
    }
}
