//! Upload-bandwidth mixes for trace-driven simulation: DESIGN.md §9 Table II (underloaded
//! and overloaded contributions) built in, and custom mixes from text (a file or a
//! command-line flag). Table I lives with the prototype scenario (`scenario`).
//!
//! Custom mix format: one class per line (or per `;` in a flag), `NAME UPLOAD_KBPS
//! SHARE` with SHARE in percent (shares need not sum to 100; they are normalised);
//! `#` starts a comment. Example: `free-rider 0 10; residential 300 30; office 700 60`.

use super::report::{ClassReport, MIN_COUNTED_SECONDS, SwarmReport};
use super::scenario::{Mix, PeerClass};
use layerp2p_codec::Kbps;

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
    Underloaded,
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

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("mix line {line}: {msg}")]
pub struct MixError {
    pub line: usize,
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
