//! Upload-bandwidth mixes for trace-driven simulation: DESIGN.md §9 Table II (underloaded
//! and overloaded contributions) built in, and custom mixes from text (a file or a
//! command-line flag). Table I lives with the prototype scenario (`scenario`).
//!
//! Custom mix format: one class per line (or per `;` in a flag), `NAME UPLOAD_KBPS
//! SHARE` with SHARE in percent (shares need not sum to 100; they are normalised);
//! `#` starts a comment. Example: `free-rider 0 10; residential 300 30; office 700 60`.

use super::PeerSpec;
use super::report::{ClassReport, MIN_COUNTED_SECONDS, SwarmReport};
use crate::time::Time;
use layerp2p_codec::{Kbps, LayerPlan};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

/// A class of peers: name, upload capacity, share of the population.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerClass {
    /// Label used in reports; unique within a mix.
    pub name: String,
    /// Upload capacity U(n) every peer of the class contributes.
    pub upload: Kbps,
    /// Fraction of the population in this class (shares are normalised, so they need not sum to 1).
    pub share: f64,
}

/// A population's upload mix.
#[derive(Clone, Debug, PartialEq)]
pub struct Mix {
    /// The classes; a peer's class is its index here.
    pub classes: Vec<PeerClass>,
}

impl Mix {
    fn of(classes: &[(&str, u32, f64)]) -> Mix {
        Mix {
            classes: classes
                .iter()
                .map(|&(name, kbps, share)| PeerClass { name: name.into(), upload: Kbps(kbps), share })
                .collect(),
        }
    }

    /// Table I, underloaded: 40 % residential at 400 kbps, 60 % institutional at 1000.
    pub fn underloaded() -> Mix {
        Mix::of(&[("residential", 400, 0.4), ("institutional", 1000, 0.6)])
    }

    /// Table I, overloaded: 10 % free-riders, 30 % at 300 kbps, 60 % at 700.
    pub fn overloaded() -> Mix {
        Mix::of(&[("free-rider", 0, 0.1), ("residential", 300, 0.3), ("institutional", 700, 0.6)])
    }

    /// The class names, in class order.
    pub fn names(&self) -> Vec<String> {
        self.classes.iter().map(|c| c.name.clone()).collect()
    }

    /// Mean upload capacity over the population, in kbps, weighted by share.
    pub fn average_upload(&self) -> f64 {
        let total: f64 = self.classes.iter().map(|c| c.share).sum();
        self.classes.iter().map(|c| c.upload.0 as f64 * c.share).sum::<f64>() / total
    }

    /// Average upload over the full video rate.
    pub fn resource_index(&self, plan: &LayerPlan) -> f64 {
        self.average_upload() / plan.full_rate().0 as f64
    }

    /// Class of each of `n` peers: exact counts by largest remainder, then shuffled.
    pub fn assign(&self, n: usize, rng: &mut impl Rng) -> Vec<usize> {
        let total: f64 = self.classes.iter().map(|c| c.share).sum();
        let exact: Vec<f64> = self.classes.iter().map(|c| c.share / total * n as f64).collect();
        let mut counts: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
        let mut order: Vec<usize> = (0..exact.len()).collect();
        order.sort_by(|&a, &b| (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())));
        let short = n - counts.iter().sum::<usize>();
        for &c in order.iter().take(short) {
            counts[c] += 1;
        }
        let mut classes: Vec<usize> = counts.iter().enumerate().flat_map(|(c, &k)| std::iter::repeat_n(c, k)).collect();
        classes.shuffle(rng);
        classes
    }

    /// Class of each session, given how long each is watched (`seconds`), so that
    /// every class gets its share of the viewing time, not only of the sessions.
    /// Longest sessions first (ties in a seeded random order), each to the class
    /// furthest below its share of the time assigned so far. Under heavy-tailed
    /// session lengths a plain shuffle lets a few long sessions move the supply a
    /// window really has by several points either way.
    pub fn assign_by_time(&self, seconds: &[f64], rng: &mut impl Rng) -> Vec<usize> {
        let total: f64 = self.classes.iter().map(|c| c.share).sum();
        let mut order: Vec<usize> = (0..seconds.len()).collect();
        order.shuffle(rng);
        order.sort_by(|&a, &b| seconds[b].total_cmp(&seconds[a]));
        let mut given = vec![0.0; self.classes.len()];
        let mut assigned = 0.0;
        let mut classes = vec![0; seconds.len()];
        for i in order {
            assigned += seconds[i];
            let deficit = |c: usize| self.classes[c].share / total * assigned - given[c];
            let class = (0..self.classes.len()).max_by(|&a, &b| deficit(a).total_cmp(&deficit(b))).unwrap_or(0);
            given[class] += seconds[i];
            classes[i] = class;
        }
        classes
    }

    /// `n` peers joining uniformly at random within `join_over`, staying to the end.
    pub fn flash_crowd(&self, n: usize, join_over: Duration, seed: u64) -> Vec<PeerSpec> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let classes = self.assign(n, &mut rng);
        let span = join_over.as_micros().max(1) as u64;
        let mut peers: Vec<PeerSpec> = classes
            .into_iter()
            .map(|class| PeerSpec {
                class,
                upload: self.classes[class].upload,
                join: Time(rng.random_range(0..span)),
                leave: None,
            })
            .collect();
        peers.sort_by_key(|p| p.join);
        peers
    }
}

/// Most classes a custom mix may have.
pub const MAX_CLASSES: usize = 64;
/// Largest upload a class may declare (10 Gbps).
pub const MAX_UPLOAD_KBPS: u32 = 10_000_000;

/// DESIGN.md §9 Table II: (total upload label, share %, contributed underloaded, contributed overloaded).
const TABLE_TWO: [(&str, f64, u32, u32); 10] = [
    ("256", 10.0, 240, 0),
    ("320", 14.3, 320, 0),
    ("384", 8.6, 360, 0),
    ("448", 12.5, 400, 200),
    ("512", 2.2, 480, 280),
    ("640", 1.4, 600, 400),
    ("768", 6.6, 720, 600),
    ("1024", 28.1, 920, 720),
    ("1500", 1.4, 1000, 960),
    (">3000", 14.9, 1800, 1000),
];

/// Which contribution row of Table II a mix uses.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Load {
    /// Table II's underloaded row: contributions leave spare upload.
    Underloaded,
    /// Table II's overloaded row: contributions fall short of the full video rate.
    Overloaded,
}

/// Contributed upload (kbps) of Table II's "low contributors": up to two layers' worth.
pub const LOW_CONTRIBUTORS: std::ops::RangeInclusive<u32> = 1..=400;
/// Contributed upload (kbps) of Table II's "high contributors" (DESIGN.md §11: above 720 kbps).
pub const HIGH_CONTRIBUTORS: std::ops::RangeInclusive<u32> = 720..=u32::MAX;

/// The groups DESIGN.md §11 speaks of for Table II, by contributed upload: free-riders,
/// low contributors and high contributors, over peers that played at least
/// `min_seconds` (names get a suffix when that is above the report's own minimum).
pub fn table_two_groups(report: &SwarmReport, min_seconds: f64) -> Vec<ClassReport> {
    let suffix = if min_seconds > MIN_COUNTED_SECONDS { format!(" {:.0}s+", min_seconds) } else { String::new() };
    vec![
        report.group(&format!("free-riders{suffix}"), 0..=0, min_seconds),
        report.group(&format!("low 1-400{suffix}"), LOW_CONTRIBUTORS, min_seconds),
        report.group(&format!("high >=720{suffix}"), HIGH_CONTRIBUTORS, min_seconds),
    ]
}

/// A custom mix text that could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("mix line {line}: {msg}")]
pub struct MixError {
    /// The offending line, 1-based (lines or `;`-separated parts); 0 for the mix as a whole.
    pub line: usize,
    /// What is wrong with it.
    pub msg: String,
}

impl Mix {
    /// Table II with the chosen contribution row; classes are named by total upload
    /// and contribution, e.g. `1024/720` (kbps).
    pub fn table_two(load: Load) -> Mix {
        Mix {
            classes: TABLE_TWO
                .iter()
                .map(|&(total, share, under, over)| {
                    let upload = match load {
                        Load::Underloaded => under,
                        Load::Overloaded => over,
                    };
                    PeerClass { name: format!("{total}/{upload}"), upload: Kbps(upload), share: share / 100.0 }
                })
                .collect(),
        }
    }

    /// Parses the custom mix format (see the module doc). Lines may also be separated
    /// by `;` so a whole mix fits in one flag.
    pub fn parse(text: &str) -> Result<Mix, MixError> {
        let mut classes = Vec::new();
        for (i, raw) in text.split(['\n', ';']).enumerate() {
            let line = i + 1;
            let err = |msg: String| MixError { line, msg };
            let body = raw.split('#').next().unwrap_or("").trim();
            if body.is_empty() {
                continue;
            }
            let fields: Vec<&str> = body.split_whitespace().collect();
            let [name, upload, share] = fields.as_slice() else {
                return Err(err(format!("expected `NAME UPLOAD_KBPS SHARE_PERCENT`, found {body:?}")));
            };
            let upload: u32 =
                upload.parse().map_err(|_| err(format!("upload {upload:?} is not a whole number of kbps")))?;
            if upload > MAX_UPLOAD_KBPS {
                return Err(err(format!("upload {upload} kbps is above the {MAX_UPLOAD_KBPS} kbps limit")));
            }
            let share: f64 = share.parse().map_err(|_| err(format!("share {share:?} is not a number")))?;
            if !share.is_finite() || share <= 0.0 || share > 100.0 {
                return Err(err(format!("share {share} must be in (0, 100] percent")));
            }
            if classes.iter().any(|c: &PeerClass| c.name == *name) {
                return Err(err(format!("class {name:?} appears twice")));
            }
            if classes.len() == MAX_CLASSES {
                return Err(err(format!("more than {MAX_CLASSES} classes")));
            }
            classes.push(PeerClass { name: (*name).to_string(), upload: Kbps(upload), share: share / 100.0 });
        }
        if classes.is_empty() {
            return Err(MixError { line: 0, msg: "the mix has no classes".into() });
        }
        Ok(Mix { classes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use layerp2p_codec::LayerPlan;

    #[test]
    fn table_two_resource_indices() {
        let plan = LayerPlan::simulation();
        let under = Mix::table_two(Load::Underloaded).resource_index(&plan);
        let over = Mix::table_two(Load::Overloaded).resource_index(&plan);
        assert!((under - 1.26).abs() < 0.01, "underloaded {under}");
        assert!((over - 0.73).abs() < 0.01, "overloaded {over}");
        let shares: f64 = Mix::table_two(Load::Overloaded).classes.iter().map(|c| c.share).sum();
        assert!((shares - 1.0).abs() < 1e-9);
    }

    #[test]
    fn parses_a_flag_mix() {
        let m = Mix::parse("free 0 10; low 300 30 # residential\n high 700 60").expect("valid");
        assert_eq!(m.names(), vec!["free", "low", "high"]);
        assert_eq!(m.classes[2].upload, Kbps(700));
        assert!((m.average_upload() - 510.0).abs() < 1e-9);
    }

    #[test]
    fn bad_mixes_say_which_line() {
        for (text, line, needle) in [
            ("a 1 2\nb x 3", 2, "whole number"),
            ("a 1", 1, "NAME UPLOAD_KBPS"),
            ("a 1 0", 1, "(0, 100]"),
            ("a 1 5; a 2 5", 2, "twice"),
            ("# nothing", 0, "no classes"),
        ] {
            let e = Mix::parse(text).expect_err(text);
            assert_eq!(e.line, line, "{text}: {e}");
            assert!(e.msg.contains(needle), "{text}: {e}");
        }
    }
}
