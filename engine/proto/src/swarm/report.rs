//! What a run produced, per peer and per class: playback rate R and received-chunk
//! ratio alpha(l) (DESIGN.md §10), as a readable table and as JSON.

use crate::peer::PeerStats;
#[cfg(test)]
use crate::peer::playback::LayerStats;
use crate::peer::playback::in_time_ratio;
use layerp2p_codec::{Kbps, LayerPlan};
use serde::{Deserialize, Serialize};
use std::fmt::Write;

/// Peers that played less than this are left out of class figures (too short to say).
pub const MIN_COUNTED_SECONDS: f64 = 10.0;

/// One viewer's result at the end of a run.
#[derive(Clone, Debug, Serialize)]
pub struct PeerOutcome {
    /// Index of the viewer's class in the run's class list (`PeerSpec::class`).
    pub class: usize,
    /// Upload capacity U(n) the viewer had.
    pub upload: Kbps,
    /// Seconds of counted playback.
    pub seconds: f64,
    /// The viewer's counters at the end of the run.
    pub stats: PeerStats,
}

impl PeerOutcome {
    /// Playback rate R in kbps.
    pub fn rate_kbps(&self) -> f64 {
        self.stats.playback_rate(self.seconds).0 as f64
    }

    /// Counted long enough, yet played and missed nothing: the peer never learned
    /// where the stream was (no neighbour ever advertised it), so it could not tell
    /// which LCs it was missing.
    pub fn is_silent(&self) -> bool {
        self.seconds >= MIN_COUNTED_SECONDS && self.stats.layers.iter().all(|l| l.played + l.missed == 0)
    }

    /// LCs of each layer this peer played and missed. A silent peer missed every LC
    /// the source produced while it was counted: `lcs_per_s` (per layer) times its
    /// seconds. DESIGN.md §10's alpha(l) is the fraction of the layer's LCs that arrived in
    /// time, and none of them reached it.
    fn played_missed(&self, lcs_per_s: &[f64]) -> Vec<(u64, u64)> {
        let silent = self.is_silent();
        self.stats
            .layers
            .iter()
            .enumerate()
            .map(|(l, s)| {
                let expected =
                    if silent { (lcs_per_s.get(l).copied().unwrap_or(0.0) * self.seconds).round() as u64 } else { 0 };
                (s.played, s.missed + expected)
            })
            .collect()
    }
}

/// Why reports cannot be pooled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// The list of reports is empty.
    #[error("no reports to pool")]
    Empty,
    /// The runs are not of one setup (layers or classes differ).
    #[error("cannot pool {0}")]
    Mismatch(String),
}

/// One class's figures, over its peers that counted at least `MIN_COUNTED_SECONDS` of playback.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClassReport {
    /// The class name (from the mix, or a group label such as `free-riders`).
    pub name: String,
    /// Number of peers counted.
    pub peers: usize,
    /// Mean upload capacity of those peers, in kbps.
    pub upload_kbps: f64,
    /// Mean playback rate R, in kbps.
    pub rate_mean: f64,
    /// 10th percentile of the playback rate R, in kbps.
    pub rate_p10: f64,
    /// Median playback rate R, in kbps.
    pub rate_p50: f64,
    /// 90th percentile of the playback rate R, in kbps.
    pub rate_p90: f64,
    /// alpha(l) per layer, over all LCs of all peers of the class (a silent peer's
    /// all missed).
    pub alpha: Vec<f64>,
    /// alpha over all layers.
    pub alpha_all: f64,
    /// Peers that counted no playback at all (`PeerOutcome::is_silent`).
    pub silent: usize,
    /// Every peer's playback rate, ascending: the CDF.
    pub rates: Vec<f64>,
    /// LCs played and missed per layer, over the class: what alpha is made of, kept so
    /// that reports of several runs pool exactly (`ClassReport::pool`). Empty in older
    /// run files, which then pool by viewers.
    #[serde(default)]
    pub played: Vec<u64>,
    /// LCs missed per layer over the class, a silent peer's counted as all missed (pairs with `played`).
    #[serde(default)]
    pub missed: Vec<u64>,
}

impl ClassReport {
    /// Aggregates `members` (already filtered to counted peers) over `layers` layers;
    /// `lcs_per_s` is the source's LC rate per layer, what a silent member missed.
    pub fn of(name: &str, members: &[&PeerOutcome], layers: usize, lcs_per_s: &[f64]) -> ClassReport {
        let counts: Vec<Vec<(u64, u64)>> = members.iter().map(|p| p.played_missed(lcs_per_s)).collect();
        let sum = |l: usize, f: fn(&(u64, u64)) -> u64| counts.iter().filter_map(|c| c.get(l)).map(f).sum::<u64>();
        ClassReport::from_parts(
            name,
            members.iter().map(|p| p.rate_kbps()).collect(),
            members.iter().map(|p| p.upload.0 as f64).sum(),
            members.iter().filter(|p| p.is_silent()).count(),
            Counts::Exact {
                played: (0..layers).map(|l| sum(l, |c| c.0)).collect(),
                missed: (0..layers).map(|l| sum(l, |c| c.1)).collect(),
            },
        )
    }

    /// `parts` (the same class in several runs) as one class: rates are every peer's
    /// of every part, alpha from the summed LC counts. A part without counts (JSON
    /// written before they were kept) makes alpha the parts' alphas weighted by their
    /// peers, and `exact` false.
    pub fn pool(name: &str, parts: &[&ClassReport], layers: usize) -> (ClassReport, bool) {
        let exact = parts.iter().all(|c| c.peers == 0 || (c.played.len() == layers && c.missed.len() == layers));
        let counts = if exact {
            let sum =
                |f: fn(&ClassReport) -> &Vec<u64>, l: usize| parts.iter().filter_map(|c| f(c).get(l)).sum::<u64>();
            Counts::Exact {
                played: (0..layers).map(|l| sum(|c| &c.played, l)).collect(),
                missed: (0..layers).map(|l| sum(|c| &c.missed, l)).collect(),
            }
        } else {
            let peers = parts.iter().map(|c| c.peers as f64).sum::<f64>().max(1.0);
            let weighted =
                |f: &dyn Fn(&ClassReport) -> f64| parts.iter().map(|c| f(c) * c.peers as f64).sum::<f64>() / peers;
            Counts::PeerWeighted {
                alpha: (0..layers).map(|l| weighted(&|c| c.alpha.get(l).copied().unwrap_or(0.0))).collect(),
                alpha_all: weighted(&|c| c.alpha_all),
            }
        };
        let rates = parts.iter().flat_map(|c| c.rates.iter().copied()).collect();
        let upload = parts.iter().map(|c| c.upload_kbps * c.peers as f64).sum();
        (ClassReport::from_parts(name, rates, upload, parts.iter().map(|c| c.silent).sum(), counts), exact)
    }

    fn from_parts(name: &str, mut rates: Vec<f64>, upload_sum: f64, silent: usize, counts: Counts) -> ClassReport {
        rates.sort_by(f64::total_cmp);
        let n = rates.len().max(1) as f64;
        // A class with no LC counted (no members) reads 0 in the table.
        let ratio = |played: u64, missed: u64| in_time_ratio(played, missed).unwrap_or(0.0);
        let (alpha, alpha_all, played, missed) = match counts {
            Counts::Exact { played, missed } => {
                let alpha = played.iter().zip(&missed).map(|(&p, &m)| ratio(p, m)).collect();
                (alpha, ratio(played.iter().sum(), missed.iter().sum()), played, missed)
            }
            Counts::PeerWeighted { alpha, alpha_all } => (alpha, alpha_all, Vec::new(), Vec::new()),
        };
        ClassReport {
            name: name.to_string(),
            peers: rates.len(),
            // An empty f64 sum is -0.0, which the table would print as "-0".
            upload_kbps: if rates.is_empty() { 0.0 } else { upload_sum / n },
            rate_mean: rates.iter().fold(0.0, |a, b| a + b) / n,
            rate_p10: percentile(&rates, 0.1),
            rate_p50: percentile(&rates, 0.5),
            rate_p90: percentile(&rates, 0.9),
            alpha,
            alpha_all,
            silent,
            rates,
            played,
            missed,
        }
    }

    /// Fraction of the class's peers whose playback rate is above `kbps`.
    pub fn share_above(&self, kbps: f64) -> f64 {
        if self.rates.is_empty() {
            return 0.0;
        }
        self.rates.iter().filter(|&&r| r > kbps).count() as f64 / self.rates.len() as f64
    }
}

/// What a class's alpha comes from.
enum Counts {
    /// LCs played and missed per layer.
    Exact { played: Vec<u64>, missed: Vec<u64> },
    /// Only per-part ratios were known (`ClassReport::pool` of old JSON).
    PeerWeighted { alpha: Vec<f64>, alpha_all: f64 },
}

/// LCs per second of each layer the source produced, estimated from the peers that
/// counted some playback (silent peers know nothing of it).
fn source_lcs_per_s(counted: &[&PeerOutcome], layers: usize) -> Vec<f64> {
    let heard: Vec<&&PeerOutcome> = counted.iter().filter(|p| !p.is_silent()).collect();
    let seconds: f64 = heard.iter().map(|p| p.seconds).sum();
    (0..layers)
        .map(|l| {
            let lcs: u64 = heard.iter().filter_map(|p| p.stats.layers.get(l)).map(|s| s.played + s.missed).sum();
            if seconds > 0.0 { lcs as f64 / seconds } else { 0.0 }
        })
        .collect()
}

/// Value at quantile `q` of ascending `sorted` (nearest rank).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The outcome of one run (or of several pooled): per-class figures, the setup they came from, and every viewer's
/// outcome.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SwarmReport {
    /// Number of video layers in the plan.
    pub layers: usize,
    /// Rate of all layers together, in kbps.
    pub full_rate_kbps: u32,
    /// Rate of each layer, base layer first, in kbps.
    pub layer_rates_kbps: Vec<u32>,
    /// Average viewer upload over the full video rate.
    pub resource_index: f64,
    /// The same with each viewer weighted by its counted playback seconds: the supply
    /// over the demand the swarm actually had. Under churn it differs from
    /// `resource_index` when one class stays longer than another. (`None` in files
    /// written before it was recorded.)
    #[serde(default)]
    pub resource_index_by_time: Option<f64>,
    /// One report per class of the mix, in class order.
    pub classes: Vec<ClassReport>,
    /// LCs per second the source produced, per layer, as the counted peers saw them
    /// (played + missed over their counted seconds): what a silent peer missed.
    pub lcs_per_s: Vec<f64>,
    /// LCs received by all viewers together, duplicates included.
    pub lc_deliveries: u64,
    /// Every viewer's outcome, counted or not (kept in memory only, not written to JSON).
    #[serde(skip)]
    pub peers: Vec<PeerOutcome>,
}

impl SwarmReport {
    /// Builds the report from every viewer's outcome; `names` are the class names in class order, and peers
    /// counted for less than `MIN_COUNTED_SECONDS` are left out of the class figures.
    pub fn new(names: Vec<String>, plan: LayerPlan, peers: Vec<PeerOutcome>, lc_deliveries: u64) -> SwarmReport {
        let layers = plan.layers();
        let counted: Vec<&PeerOutcome> = peers.iter().filter(|p| p.seconds >= MIN_COUNTED_SECONDS).collect();
        let lcs_per_s = source_lcs_per_s(&counted, layers);
        let classes = names
            .iter()
            .enumerate()
            .map(|(c, name)| {
                let members: Vec<&PeerOutcome> = counted.iter().copied().filter(|p| p.class == c).collect();
                ClassReport::of(name, &members, layers, &lcs_per_s)
            })
            .collect();
        let avg_upload = if peers.is_empty() {
            0.0
        } else {
            peers.iter().map(|p| p.upload.0 as f64).sum::<f64>() / peers.len() as f64
        };
        let seconds: f64 = peers.iter().map(|p| p.seconds).sum();
        let by_time = (seconds > 0.0).then(|| {
            peers.iter().map(|p| p.upload.0 as f64 * p.seconds).sum::<f64>() / seconds / plan.full_rate().0 as f64
        });
        SwarmReport {
            layers,
            full_rate_kbps: plan.full_rate().0,
            layer_rates_kbps: plan.rates().iter().map(|r| r.0).collect(),
            resource_index: avg_upload / plan.full_rate().0 as f64,
            resource_index_by_time: by_time,
            classes,
            lcs_per_s,
            lc_deliveries,
            peers,
        }
    }

    /// Several runs' reports of one setup as one: each class pooled over the runs
    /// (`ClassReport::pool`), LC deliveries summed, the source's LC rates averaged;
    /// `peers` is left empty. Also says whether every alpha is exact. An error if the
    /// reports differ in layers or classes.
    pub fn pool(reports: &[&SwarmReport]) -> Result<(SwarmReport, bool), PoolError> {
        let first = reports.first().ok_or(PoolError::Empty)?;
        let names: Vec<&str> = first.classes.iter().map(|c| c.name.as_str()).collect();
        for r in reports {
            let theirs: Vec<&str> = r.classes.iter().map(|c| c.name.as_str()).collect();
            if r.layers != first.layers || theirs != names {
                return Err(PoolError::Mismatch(format!(
                    "a run of {} layers and classes {theirs:?} with one of {} layers and classes {names:?}",
                    r.layers, first.layers
                )));
            }
        }
        let mut exact = true;
        let classes = (0..names.len())
            .map(|c| {
                let parts: Vec<&ClassReport> = reports.iter().map(|r| &r.classes[c]).collect();
                let (class, e) = ClassReport::pool(names[c], &parts, first.layers);
                exact &= e;
                class
            })
            .collect();
        let n = reports.len() as f64;
        Ok((
            SwarmReport {
                layers: first.layers,
                full_rate_kbps: first.full_rate_kbps,
                layer_rates_kbps: first.layer_rates_kbps.clone(),
                resource_index: reports.iter().map(|r| r.resource_index).sum::<f64>() / n,
                resource_index_by_time: reports
                    .iter()
                    .map(|r| r.resource_index_by_time)
                    .sum::<Option<f64>>()
                    .map(|s| s / n),
                classes,
                lcs_per_s: (0..first.layers)
                    .map(|l| reports.iter().filter_map(|r| r.lcs_per_s.get(l)).sum::<f64>() / n)
                    .collect(),
                lc_deliveries: reports.iter().map(|r| r.lc_deliveries).sum(),
                peers: Vec::new(),
            },
            exact,
        ))
    }

    /// Peers that counted no playback, over all classes.
    pub fn silent(&self) -> usize {
        self.classes.iter().map(|c| c.silent).sum()
    }

    /// Figures for the peers that played at least `min_seconds` (at least
    /// `MIN_COUNTED_SECONDS`) and whose contributed upload lies in `range` (kbps),
    /// whatever their class: e.g. Table II's free-riders, low and high contributors.
    pub fn group(&self, name: &str, range: std::ops::RangeInclusive<u32>, min_seconds: f64) -> ClassReport {
        let min = min_seconds.max(MIN_COUNTED_SECONDS);
        let members: Vec<&PeerOutcome> =
            self.peers.iter().filter(|p| p.seconds >= min && range.contains(&p.upload.0)).collect();
        ClassReport::of(name, &members, self.layers, &self.lcs_per_s)
    }

    /// The report of the class named `name`, if there is one.
    pub fn class(&self, name: &str) -> Option<&ClassReport> {
        self.classes.iter().find(|c| c.name == name)
    }

    /// A fixed-width table: one row per class.
    pub fn table(&self) -> String {
        self.table_with_groups(&[])
    }

    /// The class table, then `groups` (e.g. from `group`) under a rule.
    pub fn table_with_groups(&self, groups: &[ClassReport]) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            "{:<14} {:>5} {:>7} {:>7} {:>7} {:>7} {:>7}",
            "class", "peers", "upload", "R p10", "R p50", "R p90", "R mean"
        );
        for l in 1..=self.layers {
            let _ = write!(s, " {:>7}", format!("a(L{l})"));
        }
        let _ = writeln!(s, " {:>7}", "a(all)");
        let rule = (!groups.is_empty()).then_some(None);
        let rows = self.classes.iter().map(Some).chain(rule).chain(groups.iter().map(Some));
        for row in rows {
            let Some(c) = row else {
                let _ = writeln!(s, "{}", "-".repeat(54 + 8 * (self.layers + 1)));
                continue;
            };
            let _ = write!(
                s,
                "{:<14} {:>5} {:>7.0} {:>7.0} {:>7.0} {:>7.0} {:>7.0}",
                c.name, c.peers, c.upload_kbps, c.rate_p10, c.rate_p50, c.rate_p90, c.rate_mean
            );
            for a in &c.alpha {
                let _ = write!(s, " {:>6.1}%", a * 100.0);
            }
            let _ = writeln!(s, " {:>6.1}%", c.alpha_all * 100.0);
        }
        let silent: Vec<String> =
            self.classes.iter().filter(|c| c.silent > 0).map(|c| format!("{} {}", c.silent, c.name)).collect();
        if !silent.is_empty() {
            let _ = writeln!(
                s,
                "no playback counted by {} peers ({}): R 0, every LC missed",
                self.silent(),
                silent.join(", ")
            );
        }
        let by_time =
            self.resource_index_by_time.map(|r| format!(" ({r:.3} weighted by viewing time)")).unwrap_or_default();
        let _ = writeln!(
            s,
            "video {} kbps ({}), resource index {:.2}{by_time}; rates R in kbps",
            self.full_rate_kbps,
            self.layer_rates_kbps.iter().map(|r| r.to_string()).collect::<Vec<_>>().join("/"),
            self.resource_index
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        assert_eq!(percentile(&v, 0.1), 1.0);
        assert_eq!(percentile(&v, 0.5), 5.0);
        assert_eq!(percentile(&v, 0.9), 9.0);
        assert_eq!(percentile(&v, 1.0), 10.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    fn outcome(class: usize, seconds: f64, played: u64, missed: u64) -> PeerOutcome {
        let layer = LayerStats { played, played_bytes: played * 100, missed, late: 0 };
        PeerOutcome {
            class,
            upload: Kbps(100),
            seconds,
            stats: PeerStats { layers: vec![layer], ..Default::default() },
        }
    }

    #[test]
    fn resource_index_by_time_weights_viewers_by_their_seconds() {
        let plan = LayerPlan::new(vec![Kbps(100)]).expect("plan");
        // A 100 kbps viewer for 100 s and a free-rider for 300 s: 0.5 per viewer,
        // but only a quarter of the viewing time had supply.
        let free = PeerOutcome { upload: Kbps(0), ..outcome(0, 300.0, 10, 0) };
        let r = SwarmReport::new(vec!["all".into()], plan, vec![outcome(0, 100.0, 10, 0), free], 0);
        assert!((r.resource_index - 0.5).abs() < 1e-9, "{}", r.resource_index);
        let by_time = r.resource_index_by_time.expect("seconds were counted");
        assert!((by_time - 0.25).abs() < 1e-9, "{by_time}");
        assert!(r.table().contains("resource index 0.50 (0.250 weighted by viewing time)"), "{}", r.table());
    }

    #[test]
    fn an_empty_group_reads_zero_not_minus_zero() {
        let plan = LayerPlan::new(vec![Kbps(100)]).expect("plan");
        let r = SwarmReport::new(vec!["all".into()], plan, vec![outcome(0, 100.0, 10, 0)], 0);
        // No free-riders here (every viewer uploads 100 kbps), as in the underloaded mix.
        let free = r.group("free-riders", 0..=0, 0.0);
        assert_eq!(free.peers, 0);
        assert!(free.upload_kbps == 0.0 && free.upload_kbps.is_sign_positive(), "{}", free.upload_kbps);
        let table = r.table_with_groups(&[free]);
        assert!(!table.contains("-0"), "{table}");
    }

    #[test]
    fn a_peer_that_counted_nothing_is_flagged_and_missed_everything() {
        let plan = LayerPlan::new(vec![Kbps(100)]).expect("plan");
        // Two peers played 10 LCs/s for 20 s; the third heard nothing for 20 s.
        let peers =
            vec![outcome(0, 20.0, 200, 0), outcome(0, 20.0, 180, 20), outcome(0, 20.0, 0, 0), outcome(0, 5.0, 0, 0)];
        let r = SwarmReport::new(vec!["all".into()], plan, peers, 0);
        let c = &r.classes[0];
        assert_eq!(c.peers, 3, "the 5 s peer is too short to count");
        assert_eq!(c.silent, 1);
        assert_eq!(r.silent(), 1);
        assert!((r.lcs_per_s[0] - 10.0).abs() < 1e-9);
        // 380 played of 200 + 200 + 200 the source sent them.
        assert!((c.alpha[0] - 380.0 / 600.0).abs() < 1e-9, "alpha {}", c.alpha[0]);
        assert!((c.alpha_all - c.alpha[0]).abs() < 1e-9);
        assert_eq!(c.rate_p10, 0.0);
        assert!(r.table().contains("no playback counted by 1 peers"), "{}", r.table());
    }

    #[test]
    fn a_swarm_where_nobody_heard_anything_has_alpha_zero() {
        let plan = LayerPlan::new(vec![Kbps(100)]).expect("plan");
        let r = SwarmReport::new(vec!["all".into()], plan, vec![outcome(0, 20.0, 0, 0)], 0);
        assert_eq!((r.classes[0].silent, r.classes[0].alpha[0], r.classes[0].alpha_all), (1, 0.0, 0.0));
    }

    #[test]
    fn pooling_reports_equals_one_report_of_all_their_peers() {
        let plan = LayerPlan::new(vec![Kbps(100)]).expect("plan");
        let names = || vec!["a".to_string(), "b".to_string()];
        let run1 = vec![outcome(0, 20.0, 200, 0), outcome(1, 20.0, 100, 100)];
        let run2 = vec![outcome(0, 40.0, 300, 100), outcome(0, 20.0, 50, 150), outcome(1, 20.0, 200, 0)];
        let all: Vec<PeerOutcome> = run1.iter().chain(&run2).cloned().collect();
        let (r1, r2) =
            (SwarmReport::new(names(), plan.clone(), run1, 5), SwarmReport::new(names(), plan.clone(), run2, 7));
        let (pooled, exact) = SwarmReport::pool(&[&r1, &r2]).expect("same setup");
        let whole = SwarmReport::new(names(), plan, all, 12);
        assert!(exact);
        for (p, w) in pooled.classes.iter().zip(&whole.classes) {
            assert_eq!((p.peers, &p.rates, &p.played, &p.missed), (w.peers, &w.rates, &w.played, &w.missed));
            assert_eq!((p.alpha.clone(), p.rate_p50, p.rate_mean), (w.alpha.clone(), w.rate_p50, w.rate_mean));
        }
        assert_eq!(pooled.lc_deliveries, 12);
        // Class a: 550 of 800 LCs, not the mean of the runs' 1.0 and 0.583.
        assert!((pooled.classes[0].alpha[0] - 550.0 / 800.0).abs() < 1e-9);

        // Without counts (JSON from before they were kept) alpha is peer-weighted, and said so.
        let mut old = r2.clone();
        old.classes.iter_mut().for_each(|c| (c.played, c.missed) = (Vec::new(), Vec::new()));
        let (approx, exact) = SwarmReport::pool(&[&r1, &old]).expect("same setup");
        assert!(!exact);
        let weighted = (1.0 * 1.0 + 2.0 * r2.classes[0].alpha[0]) / 3.0;
        assert!((approx.classes[0].alpha[0] - weighted).abs() < 1e-9);

        let other = SwarmReport::new(vec!["a".into()], LayerPlan::new(vec![Kbps(100)]).expect("plan"), Vec::new(), 0);
        assert!(SwarmReport::pool(&[&r1, &other]).expect_err("other classes").to_string().contains("cannot pool"));
    }
}
