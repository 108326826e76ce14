//! Peer dynamics for trace-driven simulation (DESIGN.md §9): the session-trace text format
//! (parse with line-numbered errors, write), window/thinning of a trace, its summary
//! figures, and a seeded generator of a realistic one-day channel trace.
//!
//! It owns sessions (arrival, departure) only; which upload a session gets is the
//! mix's business (`scenario`), and running it is the swarm's.
//!
//! Format: one session per line, `ARRIVAL DEPARTURE` in seconds from the start of the
//! trace (decimals allowed, separated by spaces, tabs or one comma); `#` starts a
//! comment; blank lines are ignored. Departure must be after arrival.

use layerp2p_proto::time::Time;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::fmt::Write;

/// Longest session a trace may hold (a week): bounds what a file can ask for.
pub const MAX_SESSION_SECS: f64 = 7.0 * 86_400.0;
/// Most sessions a trace may hold: bounds memory for a file from anywhere.
pub const MAX_SESSIONS: usize = 10_000_000;

/// One viewer's stay in the channel.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub arrival: Time,
    pub departure: Time,
}

impl Session {
    pub fn length_secs(&self) -> f64 {
        self.departure.since(self.arrival).as_secs_f64()
    }
}

/// Sessions sorted by arrival.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Trace {
    pub sessions: Vec<Session>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TraceError {
    #[error("trace line {line}: {msg}")]
    Line { line: usize, msg: String },
    #[error("trace has more than {MAX_SESSIONS} sessions")]
    TooLong,
}

/// Summary of a trace, for `--help`-level sanity checks and the docs.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TraceStats {
    pub sessions: usize,
    /// Last departure, seconds.
    pub span_secs: f64,
    pub peak_concurrent: usize,
    /// Fewest concurrent peers from the first hour to the last arrival (so neither an
    /// empty start nor the run-out tail is counted).
    pub min_concurrent_after_first_hour: usize,
    /// Mean concurrency from the start to the last arrival.
    pub mean_concurrent: f64,
    pub session_p01_secs: f64,
    pub session_p50_secs: f64,
    pub session_p99_secs: f64,
    pub session_max_secs: f64,
}

fn parse_secs(field: &str, what: &str, line: usize) -> Result<Time, TraceError> {
    let err = |msg: String| TraceError::Line { line, msg };
    let v: f64 = field.parse().map_err(|_| err(format!("{what} {field:?} is not a number of seconds")))?;
    if !v.is_finite() || v < 0.0 {
        return Err(err(format!("{what} {field:?} must be a finite, non-negative number of seconds")));
    }
    if v > MAX_SESSION_SECS * 10.0 {
        return Err(err(format!("{what} {v} s is beyond the {} s a trace may span", MAX_SESSION_SECS * 10.0)));
    }
    Ok(Time((v * 1e6).round() as u64))
}

impl Trace {
    /// Sorts sessions by arrival (then departure), as every user expects.
    pub fn new(mut sessions: Vec<Session>) -> Trace {
        sessions.sort_by_key(|s| (s.arrival, s.departure));
        Trace { sessions }
    }

    /// Parses the text format (see the module doc).
    pub fn parse(text: &str) -> Result<Trace, TraceError> {
        let mut sessions = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let body = raw.split('#').next().unwrap_or("").trim();
            if body.is_empty() {
                continue;
            }
            let fields: Vec<&str> =
                body.split(|c: char| c.is_whitespace() || c == ',').filter(|f| !f.is_empty()).collect();
            let [a, d] = fields.as_slice() else {
                return Err(TraceError::Line {
                    line,
                    msg: format!("expected `ARRIVAL DEPARTURE` (2 fields), found {} in {body:?}", fields.len()),
                });
            };
            let arrival = parse_secs(a, "arrival", line)?;
            let departure = parse_secs(d, "departure", line)?;
            if departure <= arrival {
                return Err(TraceError::Line { line, msg: format!("departure {d} is not after arrival {a}") });
            }
            if departure.since(arrival).as_secs_f64() > MAX_SESSION_SECS {
                return Err(TraceError::Line {
                    line,
                    msg: format!(
                        "session of {} s is longer than {MAX_SESSION_SECS} s",
                        departure.since(arrival).as_secs()
                    ),
                });
            }
            if sessions.len() >= MAX_SESSIONS {
                return Err(TraceError::TooLong);
            }
            sessions.push(Session { arrival, departure });
        }
        Ok(Trace::new(sessions))
    }

    /// Writes the text format, with a header comment.
    pub fn to_text(&self, comment: &str) -> String {
        let mut s = String::with_capacity(self.sessions.len() * 20 + 200);
        for c in comment.lines() {
            let _ = writeln!(s, "# {c}");
        }
        let _ = writeln!(s, "# one session per line: arrival_seconds departure_seconds");
        for x in &self.sessions {
            let _ = writeln!(s, "{:.3} {:.3}", x.arrival.as_secs_f64(), x.departure.as_secs_f64());
        }
        s
    }

    /// The part of the trace inside `[from, until)`, shifted so `from` is time zero.
    /// Sessions already running at `from` arrive spread evenly over the first `ramp`
    /// (so they do not all hit the tracker in one instant); departures are clipped.
    pub fn window(&self, from: Time, until: Time, ramp: std::time::Duration) -> Trace {
        let running = self.sessions.iter().filter(|s| s.arrival < from && s.departure > from).count().max(1);
        let ramp_us = ramp.as_micros() as u64;
        let mut k = 0u64;
        let sessions = self
            .sessions
            .iter()
            .filter(|s| s.arrival < until && s.departure > from)
            .filter_map(|s| {
                let arrival = if s.arrival < from {
                    k += 1;
                    Time((k - 1) * ramp_us / running as u64)
                } else {
                    Time(s.arrival.0 - from.0)
                };
                let departure = Time(s.departure.min(until).0 - from.0);
                (departure > arrival).then_some(Session { arrival, departure })
            })
            .collect();
        Trace::new(sessions)
    }

    /// Keeps each session with probability `fraction` (seeded): the same dynamics at a
    /// smaller scale.
    pub fn thin(&self, fraction: f64, seed: u64) -> Trace {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7431_6e5f);
        let sessions = self.sessions.iter().copied().filter(|_| rng.random_bool(fraction.clamp(0.0, 1.0))).collect();
        Trace { sessions }
    }

    /// Concurrent sessions sampled every `step` (value at each multiple of `step`).
    pub fn concurrency(&self, step: std::time::Duration) -> Vec<usize> {
        let span = self.sessions.iter().map(|s| s.departure).max().unwrap_or(Time::ZERO);
        let step_us = step.as_micros().max(1) as u64;
        let n = (span.0 / step_us + 1) as usize;
        // Difference array: +1 from the first sample at or after arrival, -1 from the
        // first at or after departure.
        let mut diff = vec![0i64; n + 1];
        for s in &self.sessions {
            diff[s.arrival.0.div_ceil(step_us) as usize] += 1;
            diff[(s.departure.0.div_ceil(step_us) as usize).min(n)] -= 1;
        }
        let mut c = 0i64;
        diff[..n]
            .iter()
            .map(|d| {
                c += d;
                c.max(0) as usize
            })
            .collect()
    }

    pub fn stats(&self) -> TraceStats {
        let conc = self.concurrency(std::time::Duration::from_secs(10));
        // Between the first hour and the last arrival: neither the empty start nor
        // the tail of sessions running out after arrivals stop.
        let last_arrival = self.sessions.iter().map(|s| s.arrival.0 / 10_000_000).max().unwrap_or(0) as usize;
        let active = &conc[..(last_arrival + 1).min(conc.len())];
        let after_hour: Vec<usize> = active.iter().skip(360).copied().collect();
        let mut lens: Vec<f64> = self.sessions.iter().map(Session::length_secs).collect();
        lens.sort_by(f64::total_cmp);
        let q = |p: f64| layerp2p_proto::swarm::report::percentile(&lens, p);
        TraceStats {
            sessions: self.sessions.len(),
            span_secs: self.sessions.iter().map(|s| s.departure).max().unwrap_or(Time::ZERO).as_secs_f64(),
            peak_concurrent: conc.iter().copied().max().unwrap_or(0),
            min_concurrent_after_first_hour: after_hour.iter().copied().min().unwrap_or(0),
            mean_concurrent: if active.is_empty() {
                0.0
            } else {
                active.iter().sum::<usize>() as f64 / active.len() as f64
            },
            session_p01_secs: q(0.01),
            session_p50_secs: q(0.5),
            session_p99_secs: q(0.99),
            session_max_secs: lens.last().copied().unwrap_or(0.0),
        }
    }
}

/// A burst of arrivals on top of the diurnal curve.
#[derive(Clone, Debug, PartialEq)]
pub struct FlashCrowd {
    /// Hours after the trace start.
    pub at_hour: f64,
    pub arrivals: usize,
    /// The burst's arrivals fall within this many seconds.
    pub over_secs: f64,
}

/// The one-day generator's knobs. Time zero is 04:00, the quietest hour.
#[derive(Clone, Debug, PartialEq)]
pub struct DayTraceConfig {
    pub seed: u64,
    /// Target concurrency at the quietest hour (start of the trace).
    pub trough: f64,
    /// Target concurrency of the evening peak, before flash crowds.
    pub peak: f64,
    /// Hours after the start at which the diurnal curve peaks (17 h = 21:00).
    pub peak_hour: f64,
    /// Session lengths: log-normal with this median (seconds) and sigma.
    pub median_session_secs: f64,
    pub session_sigma: f64,
    pub min_session_secs: f64,
    pub max_session_secs: f64,
    pub flash_crowds: Vec<FlashCrowd>,
    pub hours: f64,
}

impl Default for DayTraceConfig {
    /// A popular channel's day as DESIGN.md §9 describes it: concurrency from under 200 to
    /// over 9,000, about 100,000 sessions, sessions from seconds to well over 16 hours,
    /// a lunchtime and an evening flash crowd.
    fn default() -> Self {
        DayTraceConfig {
            seed: 1,
            trough: 150.0,
            peak: 8_600.0,
            peak_hour: 17.0,
            median_session_secs: 900.0,
            session_sigma: 1.6,
            min_session_secs: 20.0,
            max_session_secs: 20.0 * 3600.0,
            flash_crowds: vec![
                FlashCrowd { at_hour: 8.5, arrivals: 1_500, over_secs: 180.0 },
                FlashCrowd { at_hour: 16.5, arrivals: 3_000, over_secs: 240.0 },
            ],
            hours: 24.0,
        }
    }
}

impl DayTraceConfig {
    /// Diurnal target concurrency `h` hours after the start.
    pub fn target(&self, h: f64) -> f64 {
        let day = 24.0;
        let h = h.rem_euclid(day);
        let shape = if h <= self.peak_hour {
            (std::f64::consts::FRAC_PI_2 * h / self.peak_hour).sin().powi(2)
        } else {
            (std::f64::consts::FRAC_PI_2 * (h - self.peak_hour) / (day - self.peak_hour)).cos().powi(2)
        };
        self.trough + (self.peak - self.trough) * shape.powf(1.5)
    }

    fn mean_session_secs(&self) -> f64 {
        self.median_session_secs * (self.session_sigma * self.session_sigma / 2.0).exp()
    }

    fn session_length(&self, rng: &mut impl Rng) -> f64 {
        // Box-Muller: one standard normal from two uniforms.
        let u1: f64 = rng.random_range(f64::EPSILON..1.0);
        let u2: f64 = rng.random();
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        (self.median_session_secs.ln() + self.session_sigma * z)
            .exp()
            .clamp(self.min_session_secs, self.max_session_secs)
    }
}

/// Generates a trace from `cfg`: non-homogeneous Poisson arrivals at rate
/// target(t) / mean session length (so concurrency follows the target, lagging it
/// a little), log-normal session lengths, an initial population in steady state, and
/// the flash crowds.
pub fn generate_day(cfg: &DayTraceConfig) -> Trace {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let secs = |s: f64| Time((s * 1e6) as u64);
    let mut sessions = Vec::new();
    let mean = cfg.mean_session_secs();
    // Viewers present at the start: length-biased lengths (long sessions are more
    // likely to be in progress), each with a uniform share already elapsed.
    let initial = cfg.trough.round() as usize;
    while sessions.len() < initial {
        let len = cfg.session_length(&mut rng);
        if rng.random_bool((len / cfg.max_session_secs).clamp(0.0, 1.0)) {
            let left = len * rng.random_range(0.0..1.0f64).max(1e-3);
            sessions.push(Session { arrival: Time::ZERO, departure: secs(left.max(1.0)) });
        }
    }
    // Thinning: candidates at the peak rate, each kept with target/peak.
    let end = cfg.hours * 3600.0;
    let max_rate = cfg.peak.max(cfg.trough) / mean;
    let mut t = 0.0;
    loop {
        t += -rng.random_range(f64::EPSILON..1.0f64).ln() / max_rate;
        if t >= end {
            break;
        }
        if rng.random_bool((cfg.target(t / 3600.0) / mean / max_rate).clamp(0.0, 1.0)) {
            let len = cfg.session_length(&mut rng);
            sessions.push(Session { arrival: secs(t), departure: secs(t + len) });
        }
    }
    for fc in &cfg.flash_crowds {
        let start = fc.at_hour * 3600.0;
        for _ in 0..fc.arrivals {
            // Front-loaded: most of a burst arrives early in its window.
            let a = start + fc.over_secs * rng.random_range(0.0..1.0f64).powi(2);
            let len = cfg.session_length(&mut rng);
            sessions.push(Session { arrival: secs(a), departure: secs(a + len) });
        }
    }
    Trace::new(sessions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn parses_comments_blanks_and_separators() {
        let t = Trace::parse("# a trace\n\n10 20\n 0.5,\t3.25  # late comment\n").expect("valid");
        assert_eq!(t.sessions.len(), 2);
        assert_eq!(t.sessions[0], Session { arrival: Time(500_000), departure: Time(3_250_000) });
        assert_eq!(t.sessions[1].departure, Time::from_secs(20));
    }

    #[test]
    fn malformed_lines_name_their_line() {
        let cases = [
            ("1 2\n3\n", 2, "2 fields"),
            ("1 2\n\n5 x\n", 3, "not a number"),
            ("9 4\n", 1, "not after"),
            ("-1 4\n", 1, "non-negative"),
            ("1 2 3\n", 1, "2 fields"),
            ("0 inf\n", 1, "finite"),
            ("0 1e12\n", 1, "beyond"),
        ];
        for (text, line, needle) in cases {
            match Trace::parse(text) {
                Err(TraceError::Line { line: l, msg }) => {
                    assert_eq!(l, line, "{text:?}: {msg}");
                    assert!(msg.contains(needle), "{text:?}: {msg}");
                }
                other => panic!("{text:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn text_round_trips() {
        let t = generate_day(&DayTraceConfig { hours: 1.0, peak: 300.0, flash_crowds: vec![], ..Default::default() });
        let back = Trace::parse(&t.to_text("test")).expect("own output parses");
        assert_eq!(back.sessions.len(), t.sessions.len());
        for (a, b) in t.sessions.iter().zip(&back.sessions) {
            assert!(a.arrival.0.abs_diff(b.arrival.0) <= 500 && a.departure.0.abs_diff(b.departure.0) <= 500);
        }
    }

    #[test]
    fn window_clips_shifts_and_ramps() {
        let t = Trace::new(vec![
            Session { arrival: Time::from_secs(0), departure: Time::from_secs(100) },
            Session { arrival: Time::from_secs(5), departure: Time::from_secs(50) },
            Session { arrival: Time::from_secs(20), departure: Time::from_secs(30) },
            Session { arrival: Time::from_secs(200), departure: Time::from_secs(300) },
        ]);
        let w = t.window(Time::from_secs(10), Time::from_secs(60), Duration::from_secs(4));
        assert_eq!(
            w.sessions,
            vec![
                Session { arrival: Time::ZERO, departure: Time::from_secs(50) },
                Session { arrival: Time::from_secs(2), departure: Time::from_secs(40) },
                Session { arrival: Time::from_secs(10), departure: Time::from_secs(20) },
            ]
        );
    }

    #[test]
    fn same_seed_same_trace_and_thinning_scales() {
        let cfg = DayTraceConfig { hours: 2.0, ..Default::default() };
        let a = generate_day(&cfg);
        assert_eq!(a, generate_day(&cfg));
        assert_ne!(a, generate_day(&DayTraceConfig { seed: 2, ..cfg.clone() }));
        let half = a.thin(0.5, 3).sessions.len() as f64 / a.sessions.len() as f64;
        assert!((half - 0.5).abs() < 0.05, "thinned to {half}");
    }

    #[test]
    fn concurrency_counts_overlaps() {
        let t = Trace::new(vec![
            Session { arrival: Time::from_secs(0), departure: Time::from_secs(25) },
            Session { arrival: Time::from_secs(5), departure: Time::from_secs(15) },
        ]);
        assert_eq!(t.concurrency(Duration::from_secs(10)), vec![1, 2, 1]);
    }
}
