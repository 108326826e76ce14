//! `layerp2p reproduce`: reruns the paper's comparisons (DESIGN.md §9) for all three
//! systems over several seeds and renders them as docs/RESULTS.md, beside the published
//! figures of DESIGN.md §11. Each figure is a mean over seeds with a Student-t 95 %
//! interval, so a reader sees how far a difference stands above seed noise.
//!
//! - Table I, the prototype mixes, in the simulator (and with `Depth::Full` also on
//!   real UDP sockets over loopback);
//! - Table II, the trace-driven mixes, over a window of the generated one-day trace.

use crate::LabError;
use crate::experiment::{Prototype, Published, mean_with_ci95, published_overloaded};
use crate::record::Provenance;
use crate::trace_run::{TraceRun, run_one};
use layerp2p_codec::Kbps;
use layerp2p_proto::swarm::mix::table_two_groups;
use layerp2p_proto::swarm::{ClassReport, Load, Mix, SwarmReport};
use layerp2p_proto::{Incentive, NeighbourOverrides, PeerConfig, Policy, Time};
use layerp2p_runtime::link::Links;
use layerp2p_sim::scenario::ClassDraw;
use layerp2p_sim::trace::{DayTraceConfig, generate_day};
use std::fmt::Write;
use std::time::Duration;

/// How much to rerun.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Depth {
    /// Shortened runs and fewer seeds: the same comparisons in well under 20 minutes
    /// on two cores.
    Quick,
    /// The paper's lengths: 5 seeds of the 20-minute prototype, in the simulator and
    /// on real UDP, and 3 seeds of a 3-hour trace window. Hours.
    Full,
}

/// The runs one depth makes.
#[derive(Clone, Debug)]
pub struct Plan {
    pub prototype_seeds: u32,
    /// Seconds every prototype viewer stays after the 120 s flash crowd.
    pub prototype_stay_secs: u64,
    pub prototype_real: bool,
    pub trace_seeds: u32,
    pub trace_from_hour: f64,
    pub trace_hours: f64,
    pub trace_scale: f64,
}

impl Plan {
    pub fn of(depth: Depth) -> Plan {
        match depth {
            Depth::Quick => Plan {
                prototype_seeds: 3,
                prototype_stay_secs: 600,
                prototype_real: false,
                trace_seeds: 3,
                trace_from_hour: 16.0,
                trace_hours: 0.5,
                trace_scale: 0.015,
            },
            Depth::Full => Plan {
                prototype_seeds: 5,
                prototype_stay_secs: 1200,
                prototype_real: true,
                trace_seeds: 3,
                trace_from_hour: 14.0,
                trace_hours: 3.0,
                trace_scale: 0.015,
            },
        }
    }
}

/// A figure over seeds: the mean and the half-width of its 95 % interval (none for
/// fewer than two seeds).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    pub mean: f64,
    pub ci95: Option<f64>,
}

impl Estimate {
    fn of(x: &[f64]) -> Estimate {
        match mean_with_ci95(x) {
            Some((mean, ci)) => Estimate { mean, ci95: Some(ci) },
            None => Estimate { mean: x.first().copied().unwrap_or(f64::NAN), ci95: None },
        }
    }

    fn percent(&self) -> String {
        match self.ci95 {
            Some(ci) => format!("{:.1} ± {:.1}", self.mean * 100.0, ci * 100.0),
            None => format!("{:.1}", self.mean * 100.0),
        }
    }

    fn kbps(&self) -> String {
        match self.ci95 {
            Some(ci) => format!("{:.0} ± {:.0}", self.mean, ci),
            None => format!("{:.0}", self.mean),
        }
    }
}

/// One class (or Table II group) of one system, over seeds.
#[derive(Clone, Debug)]
pub struct ClassRow {
    pub name: String,
    pub upload_kbps: f64,
    pub rate_kbps: Estimate,
    /// Received chunk ratio per layer.
    pub alpha: Vec<Estimate>,
}

/// One system in one comparison.
#[derive(Clone, Debug)]
pub struct SystemRows {
    pub policy: Policy,
    pub rows: Vec<ClassRow>,
    /// Every seed's report pooled: DESIGN.md §11's shares are over peers × seeds.
    pub pooled: SwarmReport,
}

/// One comparison of the three systems.
#[derive(Clone, Debug)]
pub struct Comparison {
    pub title: String,
    /// How it was run, in a sentence.
    pub setup: String,
    pub seeds: u32,
    pub systems: Vec<SystemRows>,
    /// DESIGN.md §11's overloaded-prototype figures beside LayerP2P's (Table I,
    /// overloaded only).
    pub published: Vec<Published>,
    /// What DESIGN.md §11 says of this comparison.
    pub paper: &'static str,
}

/// Everything `reproduce` measured.
#[derive(Clone, Debug)]
pub struct Results {
    pub provenance: Provenance,
    pub depth: Depth,
    pub comparisons: Vec<Comparison>,
}

/// One run to make: which comparison, system and seed.
#[derive(Clone, Copy, Debug)]
enum Job {
    Prototype { load: Load, real: bool, policy: Policy, run: u32 },
    Trace { load: Load, policy: Policy, seed: u64 },
}

/// The Table I setup of DESIGN.md §9 (`stay` shortened for `Depth::Quick`).
pub fn prototype_setup(load: Load, stay: Duration) -> Prototype {
    Prototype {
        mix: match load {
            Load::Overloaded => Mix::overloaded(),
            Load::Underloaded => Mix::underloaded(),
        },
        peers: 100,
        join_over: Duration::from_secs(120),
        stay,
        lag: Duration::from_secs(30),
        startup: Duration::from_secs(15),
        seed_upload: Kbps(2000),
        seed_n_max: 100,
        shards: 2,
        links: Links::default(),
        watch_per_class: 1,
        incentive: Incentive::default(),
        neighbours: NeighbourOverrides::default(),
        seed: 1,
    }
}

/// Reruns every comparison of `depth` on up to `jobs` threads (real-UDP runs one at a
/// time, after the simulated ones); `progress` hears of each run as it ends.
pub fn run(depth: Depth, jobs: usize, progress: &(dyn Fn(&str) + Sync)) -> Result<Results, LabError> {
    let plan = Plan::of(depth);
    let loads = [Load::Overloaded, Load::Underloaded];
    let mut simulated = Vec::new();
    for load in loads {
        for policy in Policy::ALL {
            for run in 0..plan.prototype_seeds {
                simulated.push(Job::Prototype { load, real: false, policy, run });
            }
            for k in 0..plan.trace_seeds {
                simulated.push(Job::Trace { load, policy, seed: 1 + u64::from(k) });
            }
        }
    }
    let total = simulated.len();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let run_job = |_: usize, job: &Job| -> Result<SwarmReport, LabError> {
        let report = run_job(&plan, *job)?;
        let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        progress(&format!("{n}/{total} runs done ({job:?})"));
        Ok(report)
    };
    let mut reports = crate::parallel::map(&simulated, jobs, run_job)?;
    let mut all = simulated;
    if plan.prototype_real {
        let real: Vec<Job> = loads
            .into_iter()
            .flat_map(|load| {
                Policy::ALL.into_iter().flat_map(move |policy| {
                    (0..plan.prototype_seeds).map(move |run| Job::Prototype { load, real: true, policy, run })
                })
            })
            .collect();
        reports.extend(crate::parallel::map(&real, 1, run_job)?);
        all.extend(real);
    }
    let comparisons = comparisons(&plan, &all, &reports);
    Ok(Results { provenance: Provenance::current(), depth, comparisons })
}

fn run_job(plan: &Plan, job: Job) -> Result<SwarmReport, LabError> {
    match job {
        Job::Prototype { load, real, policy, run } => {
            let setup = prototype_setup(load, Duration::from_secs(plan.prototype_stay_secs));
            if real {
                Ok(setup.run(policy, run, None, &mut |_| {})?.observed.local.swarm)
            } else {
                Ok(setup.simulate(policy, run, None, Duration::ZERO)?.report)
            }
        }
        Job::Trace { load, policy, seed } => {
            let mix = Mix::table_two(load);
            let full = generate_day(&DayTraceConfig { seed, ..DayTraceConfig::default() });
            let duration = Duration::from_secs_f64(plan.trace_hours * 3600.0);
            let from = Time((plan.trace_from_hour * 3600e6) as u64);
            let trace = full.window(from, from + duration, Duration::from_secs(60)).thin(plan.trace_scale, seed);
            let configure = |_: &mut PeerConfig| Ok(());
            let run = TraceRun {
                mix: &mix,
                trace: &trace,
                draw: ClassDraw::Sessions,
                duration,
                latency: Duration::ZERO,
                download: None,
                nat: None,
                measured_uploads: false,
                seed,
                configure: &configure,
                threads: None,
            };
            Ok(run_one(&run, policy, &mut |_, _| {})?.report)
        }
    }
}

/// Groups the reports of `jobs` into one comparison per table and load.
fn comparisons(plan: &Plan, jobs: &[Job], reports: &[SwarmReport]) -> Vec<Comparison> {
    let mut out = Vec::new();
    let prototype_setup = |real: bool| {
        format!(
            "100 viewers join over 120 s and stay {} s, seed at 2 Mbps, 30 s lag, {} seeds; {}",
            plan.prototype_stay_secs,
            plan.prototype_seeds,
            if real { "real UDP on loopback" } else { "simulator" }
        )
    };
    for real in [false, true] {
        for load in [Load::Overloaded, Load::Underloaded] {
            let of = |p: Policy| -> Vec<&SwarmReport> {
                jobs.iter()
                    .zip(reports)
                    .filter(|(j, _)| matches!(j, Job::Prototype { load: l, real: r, policy, .. } if *l == load && *r == real && *policy == p))
                    .map(|(_, r)| r)
                    .collect()
            };
            if of(Policy::LayerP2P).is_empty() {
                continue;
            }
            let systems: Vec<SystemRows> =
                Policy::ALL.into_iter().map(|p| system_rows(p, &of(p), |r| r.classes.clone())).collect();
            let published = match load {
                Load::Overloaded => published_overloaded(&systems[0].pooled),
                Load::Underloaded => Vec::new(),
            };
            out.push(Comparison {
                title: format!("Table I, {} ({})", load_name(load), if real { "real UDP" } else { "simulated" }),
                setup: prototype_setup(real),
                seeds: plan.prototype_seeds,
                systems,
                published,
                paper: match load {
                    Load::Overloaded => {
                        "LayerP2P institutional peers close to full rate (over 70 % above 550 kbps), residential over 70 % above 400 kbps, free-riders over 90 % below 200 kbps, residential base layer above 95 %; Single-Layer gives every peer about 80 % of chunks in every layer."
                    }
                    Load::Underloaded => {
                        "Every class receives close to the full rate in all three systems; LayerP2P's lower layers get the highest chunk ratios."
                    }
                },
            });
        }
    }
    for load in [Load::Overloaded, Load::Underloaded] {
        let of = |p: Policy| -> Vec<&SwarmReport> {
            jobs.iter()
                .zip(reports)
                .filter(|(j, _)| matches!(j, Job::Trace { load: l, policy, .. } if *l == load && *policy == p))
                .map(|(_, r)| r)
                .collect()
        };
        let systems: Vec<SystemRows> =
            Policy::ALL.into_iter().map(|p| system_rows(p, &of(p), |r| table_two_groups(r, 0.0))).collect();
        out.push(Comparison {
            title: format!("Table II, {} (simulated trace)", load_name(load)),
            setup: format!(
                "hours {}-{} of the generated one-day trace at scale {}, {} trace seeds",
                plan.trace_from_hour,
                plan.trace_from_hour + plan.trace_hours,
                plan.trace_scale,
                plan.trace_seeds
            ),
            seeds: plan.trace_seeds,
            systems,
            published: Vec::new(),
            paper: match load {
                Load::Overloaded => {
                    "High-upload peers above 95 % in every layer; low-upload peers above 93 % in the base layer; free-riders low in all layers; Single-Layer peers receive only about 60 % of chunks."
                }
                Load::Underloaded => "Every class receives close to the full rate in all three systems.",
            },
        });
    }
    out
}

fn load_name(load: Load) -> &'static str {
    match load {
        Load::Overloaded => "overloaded",
        Load::Underloaded => "underloaded",
    }
}

/// One system's rows: each class (as `classes` gives them) over the seeds' reports.
fn system_rows(
    policy: Policy,
    reports: &[&SwarmReport],
    classes: impl Fn(&SwarmReport) -> Vec<ClassReport>,
) -> SystemRows {
    let per_seed: Vec<Vec<ClassReport>> = reports.iter().map(|r| classes(r)).collect();
    let first = per_seed.first().cloned().unwrap_or_default();
    let rows = first
        .iter()
        .enumerate()
        // A class no run had (e.g. free-riders of an underloaded mix) has no figures.
        .filter(|(c, _)| per_seed.iter().any(|s| s.get(*c).is_some_and(|k| k.peers > 0)))
        .map(|(c, class)| {
            let seeds: Vec<&ClassReport> = per_seed.iter().filter_map(|s| s.get(c)).filter(|k| k.peers > 0).collect();
            let layers = class.alpha.len();
            ClassRow {
                name: class.name.clone(),
                upload_kbps: class.upload_kbps,
                rate_kbps: Estimate::of(&seeds.iter().map(|k| k.rate_mean).collect::<Vec<_>>()),
                alpha: (0..layers)
                    .map(|l| Estimate::of(&seeds.iter().map(|k| k.alpha[l]).collect::<Vec<_>>()))
                    .collect(),
            }
        })
        .collect();
    let pooled = SwarmReport::pool(reports).map(|(r, _)| r).unwrap_or_else(|_| (*reports[0]).clone());
    SystemRows { policy, rows, pooled }
}

impl Results {
    /// docs/RESULTS.md.
    pub fn markdown(&self, plots: &[(String, String)]) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "# Results\n");
        let _ = writeln!(
            md,
            "Generated by `{}` at commit `{}` (run-file schema {}). Do not edit by hand: rerun the command.\n",
            self.provenance.command, self.provenance.commit, self.provenance.schema
        );
        let _ = writeln!(
            md,
            "Each cell is the mean over seeds ± the half-width of its 95 % confidence interval (Student t). R is the playback rate in kbps, α(l) the share of layer l's chunks that arrived before their deadline (DESIGN.md §10). {} What the figures mean and how they differ from the paper: docs/EXPERIMENTS.md.\n",
            match self.depth {
                Depth::Quick =>
                    "This is the `--quick` depth: shortened runs and fewer seeds than the paper; `--full` reruns the paper's lengths.",
                Depth::Full => "This is the `--full` depth: the paper's lengths.",
            }
        );
        for c in &self.comparisons {
            let _ = writeln!(md, "## {}\n\n{}.\n", c.title, c.setup);
            let layers = c.systems.first().and_then(|s| s.rows.first()).map_or(0, |r| r.alpha.len());
            let alpha_heads: String = (1..=layers).map(|l| format!(" α{l} % |")).collect();
            let _ = writeln!(md, "| system | class | upload kbps | R kbps |{alpha_heads}");
            let _ = writeln!(md, "|---|---|---:|---:|{}", "---:|".repeat(layers));
            for s in &c.systems {
                for r in &s.rows {
                    let alphas: String = r.alpha.iter().map(|a| format!(" {} |", a.percent())).collect();
                    let _ = writeln!(
                        md,
                        "| {} | {} | {:.0} | {} |{alphas}",
                        s.policy,
                        r.name,
                        r.upload_kbps,
                        r.rate_kbps.kbps()
                    );
                }
            }
            let _ = writeln!(md, "\nThe paper (DESIGN.md §11): {}\n", c.paper);
            if !c.published.is_empty() {
                let _ = writeln!(
                    md,
                    "| DESIGN.md §11 figure (LayerP2P) | published | measured, peers × seeds pooled |\n|---|---|---|"
                );
                for p in &c.published {
                    let m = p.measured.map_or("-".to_string(), |v| format!("{:.0} %", v * 100.0));
                    let _ = writeln!(md, "| {} | {} | {m} |", p.figure, p.published);
                }
                let _ = writeln!(md);
            }
            for (title, path) in plots.iter().filter(|(t, _)| t == &c.title) {
                let _ = writeln!(md, "![{title}]({path})\n");
            }
        }
        md
    }
}
