//! `layerp2p reproduce`: reruns the paper's comparisons and writes docs/RESULTS.md with
//! its plots. Wiring only: the runs and the page are `layerp2p_engine::lab::reproduce`.

use crate::plot::{self, Panel};
use crate::progress::Progress;
use clap::Args as ClapArgs;
use layerp2p_engine::lab::reproduce::{self, Depth};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

#[derive(ClapArgs, Debug)]
#[command(after_help = "\
Examples:
  layerp2p reproduce --quick        # ~10 min on 2 cores: Table I in the simulator, a Table II window
  layerp2p reproduce --full         # hours: the paper's lengths, and Table I on real UDP too")]
pub struct Args {
    /// Shortened runs (10-minute prototype, 30-minute trace window) and 3 seeds.
    #[arg(long, conflicts_with = "full")]
    quick: bool,
    /// The paper's lengths: 5 seeds of the 20-minute prototype in the simulator and on
    /// real UDP, 3 seeds of a 3-hour trace window.
    #[arg(long)]
    full: bool,
    /// The page to write.
    #[arg(long, default_value = "docs/RESULTS.md")]
    out: PathBuf,
    /// Directory for the plots, written relative to the page's directory.
    #[arg(long, default_value = "results")]
    plots: PathBuf,
    /// Simulated runs at once (default: one per core). Real-UDP runs go one at a time.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=64))]
    jobs: Option<u64>,
}

pub fn run(args: Args) -> Result<(), String> {
    let depth = if args.full { Depth::Full } else { Depth::Quick };
    let jobs = args.jobs.map_or_else(layerp2p_engine::lab::parallel::default_jobs, |j| j as usize);
    let page_dir = args.out.parent().map(PathBuf::from).unwrap_or_default();
    let plot_dir = page_dir.join(&args.plots);
    std::fs::create_dir_all(&plot_dir).map_err(|e| format!("cannot create {}: {e}", plot_dir.display()))?;
    let started = Instant::now();
    let progress = Mutex::new(Progress::new());
    let show = |line: &str| {
        let mut p = progress.lock().unwrap_or_else(|e| e.into_inner());
        if p.due(false) {
            p.show(&format!("{line}  ({:.0} s)", started.elapsed().as_secs_f64()));
        }
    };
    eprintln!("reproduce ({depth:?}) on {jobs} thread(s)");
    let results = reproduce::run(depth, jobs, &show).map_err(|e| e.to_string())?;
    progress.into_inner().unwrap_or_else(|e| e.into_inner()).finish();
    let mut plots = Vec::new();
    for c in &results.comparisons {
        let stem: String =
            c.title.to_lowercase().chars().map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '-' }).collect();
        let stem = stem.split('-').filter(|s| !s.is_empty()).collect::<Vec<_>>().join("-");
        let panels: Vec<Panel> =
            c.systems.iter().map(|s| Panel { title: s.policy.name().to_string(), report: &s.pooled }).collect();
        let name = format!("{stem}-chunk-ratio.png");
        plot::chunk_ratio(&plot_dir.join(&name), &format!("Received chunk ratio per layer — {}", c.title), &panels)?;
        plots.push((c.title.clone(), args.plots.join(&name).display().to_string()));
        let name = format!("{stem}-playback-cdf.png");
        plot::playback_cdf(&plot_dir.join(&name), &format!("Playback rate per class — {}", c.title), &panels)?;
        plots.push((c.title.clone(), args.plots.join(&name).display().to_string()));
    }
    let page = results.markdown(&plots);
    std::fs::write(&args.out, page).map_err(|e| format!("cannot write {}: {e}", args.out.display()))?;
    println!("wrote {} and {} plots in {:.0} s", args.out.display(), plots.len(), started.elapsed().as_secs_f64());
    Ok(())
}
