//! What a run produced, per peer and per class: playback rate R and received-chunk
//! ratio alpha(l) (SPEC §10), as a readable table and as JSON.

use crate::peer::PeerStats;
use layerp2p_codec::{Kbps, LayerPlan};
use serde::Serialize;
use std::fmt::Write;

/// Peers that played less than this are left out of class figures (too short to say).
pub const MIN_COUNTED_SECONDS: f64 = 10.0;

#[derive(Clone, Debug, Serialize)]
pub struct PeerOutcome {
    pub class: usize,
    pub upload: Kbps,
    /// Seconds of counted playback.
    pub seconds: f64,
    pub stats: PeerStats,
}

impl PeerOutcome {
    /// Playback rate R in kbps.
    pub fn rate_kbps(&self) -> f64 {
        self.stats.playback_rate(self.seconds).0 as f64
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ClassReport {
    pub name: String,
    pub peers: usize,
    pub upload_kbps: f64,
    pub rate_mean: f64,
    pub rate_p10: f64,
    pub rate_p50: f64,
    pub rate_p90: f64,
    /// alpha(l) per layer, over all LCs of all peers of the class.
    pub alpha: Vec<f64>,
    /// alpha over all layers.
    pub alpha_all: f64,
    /// Every peer's playback rate, ascending: the CDF.
    pub rates: Vec<f64>,
}

impl ClassReport {
    /// Aggregates `members` (already filtered to counted peers) over `layers` layers.
    pub fn of(name: &str, members: &[&PeerOutcome], layers: usize) -> ClassReport {
        let mut rates: Vec<f64> = members.iter().map(|p| p.rate_kbps()).collect();
        rates.sort_by(f64::total_cmp);
        let n = members.len().max(1) as f64;
        let sum = |f: &dyn Fn(&PeerOutcome) -> u64| members.iter().map(|p| f(p)).sum::<u64>();
        let ratio = |played: u64, missed: u64| if played + missed == 0 { 0.0 } else { played as f64 / (played + missed) as f64 };
        let alpha: Vec<f64> = (0..layers)
            .map(|l| ratio(sum(&|p| p.stats.layers[l].played), sum(&|p| p.stats.layers[l].missed)))
            .collect();
        let played = sum(&|p| p.stats.layers.iter().map(|l| l.played).sum());
        let missed = sum(&|p| p.stats.layers.iter().map(|l| l.missed).sum());
        ClassReport {
            name: name.to_string(),
            peers: members.len(),
            upload_kbps: members.iter().map(|p| p.upload.0 as f64).fold(0.0, |a, b| a + b) / n,
            rate_mean: rates.iter().fold(0.0, |a, b| a + b) / n,
            rate_p10: percentile(&rates, 0.1),
            rate_p50: percentile(&rates, 0.5),
            rate_p90: percentile(&rates, 0.9),
            alpha,
            alpha_all: ratio(played, missed),
            rates,
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

/// Value at quantile `q` of ascending `sorted` (nearest rank).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[derive(Clone, Debug, Serialize)]
pub struct SwarmReport {
    pub layers: usize,
    pub full_rate_kbps: u32,
    pub layer_rates_kbps: Vec<u32>,
    /// Average viewer upload over the full video rate.
    pub resource_index: f64,
    pub classes: Vec<ClassReport>,
    pub lc_deliveries: u64,
    #[serde(skip)]
    pub peers: Vec<PeerOutcome>,
}

impl SwarmReport {
    pub fn new(names: Vec<String>, plan: LayerPlan, peers: Vec<PeerOutcome>, lc_deliveries: u64) -> SwarmReport {
        let layers = plan.layers();
        let counted: Vec<&PeerOutcome> = peers.iter().filter(|p| p.seconds >= MIN_COUNTED_SECONDS).collect();
        let classes = names
            .iter()
            .enumerate()
            .map(|(c, name)| {
                let members: Vec<&PeerOutcome> = counted.iter().copied().filter(|p| p.class == c).collect();
                ClassReport::of(name, &members, layers)
            })
            .collect();
        let avg_upload = if peers.is_empty() {
            0.0
        } else {
            peers.iter().map(|p| p.upload.0 as f64).sum::<f64>() / peers.len() as f64
        };
        SwarmReport {
            layers,
            full_rate_kbps: plan.full_rate().0,
            layer_rates_kbps: plan.rates().iter().map(|r| r.0).collect(),
            resource_index: avg_upload / plan.full_rate().0 as f64,
            classes,
            lc_deliveries,
            peers,
        }
    }

    /// Figures for the peers that played at least `min_seconds` (at least
    /// `MIN_COUNTED_SECONDS`) and whose contributed upload lies in `range` (kbps),
    /// whatever their class: e.g. Table II's free-riders, low and high contributors.
    pub fn group(&self, name: &str, range: std::ops::RangeInclusive<u32>, min_seconds: f64) -> ClassReport {
        let min = min_seconds.max(MIN_COUNTED_SECONDS);
        let members: Vec<&PeerOutcome> = self.peers.iter().filter(|p| p.seconds >= min && range.contains(&p.upload.0)).collect();
        ClassReport::of(name, &members, self.layers)
    }

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
        let _ = write!(s, "{:<14} {:>5} {:>7} {:>7} {:>7} {:>7} {:>7}", "class", "peers", "upload", "R p10", "R p50", "R p90", "R mean");
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
        let _ = writeln!(
            s,
            "video {} kbps ({}), resource index {:.2}; rates R in kbps",
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
}
