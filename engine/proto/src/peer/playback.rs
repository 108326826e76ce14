//! Playback: where the source's encoding point is, which LCs are due, and the
//! per-layer accounting of LCs played in time versus missed (DESIGN.md §10).
//!
//! The peer never sees the source's clock. It estimates it as `now + offset`, where
//! `offset` is the median over neighbours of `head_time - now` (their newest LC's
//! media time), or, at the seed, the media time of what it produced; the estimate only
//! moves forward. An LC is due when `media_time + lag <= now + offset`. A missing LC
//! is given up once the LC the peer holds next is due, or once most neighbours have
//! played past it (the median of their window starts), or once the deadline its
//! sequence number implies has passed: each layer's pace (LCs per second of media,
//! from what it played) places a missing LC in media time, so misses are counted as
//! deadlines pass even while nothing arrives at all (a stalled source).

use crate::time::Time;
use layerp2p_codec::{LayerId, MediaTime, Seq};
use serde::Serialize;
use std::time::Duration;

/// Per-layer playback counters.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct LayerStats {
    /// LCs that arrived before their deadline and were played.
    pub played: u64,
    /// Payload bytes of the LCs counted in `played`.
    pub played_bytes: u64,
    /// LCs that missed their deadline (never arrived, or arrived late).
    pub missed: u64,
    /// LCs that arrived after their deadline.
    pub late: u64,
}

/// alpha of `played` in-time and `missed` LCs: the fraction that arrived in time;
/// `None` while none was counted (nothing is known yet, which is not a perfect score).
pub fn in_time_ratio(played: u64, missed: u64) -> Option<f64> {
    (played + missed > 0).then(|| played as f64 / (played + missed) as f64)
}

impl LayerStats {
    /// alpha(l) (`in_time_ratio` of this layer's LCs).
    pub fn ratio(&self) -> Option<f64> {
        in_time_ratio(self.played, self.missed)
    }
}

/// The playback clock of one node: the estimated encoding point, which LCs are due, and the per-layer counters.
#[derive(Debug)]
pub struct Playback {
    lag_us: u64,
    offset: Option<i64>,
    /// Per layer: every seq below this is known to be due.
    due_below: Vec<Seq>,
    /// Only LCs played at or after this instant are counted.
    count_from: Time,
    /// Per layer: the first and the latest LC played, for the layer's pace.
    pace: Vec<Option<Pace>>,
    /// Counters per layer, index 0 = layer 1.
    pub layers: Vec<LayerStats>,
}

/// The first and the latest LC a layer played: sequence numbers per media time.
#[derive(Clone, Copy, Debug)]
struct Pace {
    first: (Seq, MediaTime),
    last: (Seq, MediaTime),
}

/// An LC placed by pace alone is given up this long after its estimated deadline:
/// the estimate of a VBR layer is an average, and an LC that can still arrive in
/// time should not be skipped.
const PACE_GRACE: Duration = Duration::from_secs(1);
/// Least LCs between the first and latest played before a layer's pace is trusted.
const PACE_MIN_LCS: u32 = 16;

impl Playback {
    /// Playback of `layers` layers, `lag` behind the source, counting only from `count_from` (join + startup).
    pub fn new(layers: usize, lag: Duration, count_from: Time) -> Playback {
        Playback {
            lag_us: lag.as_micros() as u64,
            offset: None,
            due_below: vec![Seq(0); layers],
            count_from,
            pace: vec![None; layers],
            layers: vec![LayerStats::default(); layers],
        }
    }

    /// Records that the source had reached at least `t` by local time `now`.
    pub fn observe(&mut self, now: Time, t: MediaTime) {
        self.observe_offset(t.0 as i64 - now.0 as i64);
    }

    /// Records that the source clock is at least `now + offset`.
    pub fn observe_offset(&mut self, offset: i64) {
        self.offset = Some(self.offset.map_or(offset, |o| o.max(offset)));
    }

    /// The estimated source clock, once anything has been observed.
    pub fn source_now(&self, now: Time) -> Option<MediaTime> {
        self.offset.map(|o| MediaTime((now.0 as i64 + o).max(0) as u64))
    }

    /// Is an LC of media time `t` due (its deadline reached) at `now`?
    pub fn is_due(&self, now: Time, t: MediaTime) -> bool {
        self.source_now(now).is_some_and(|s| t.0 + self.lag_us <= s.0)
    }

    /// Everything below `seq` of `layer` is past its deadline (the swarm has played it).
    pub fn raise_due(&mut self, layer: LayerId, seq: Seq) {
        let d = &mut self.due_below[layer.index()];
        *d = (*d).max(seq);
    }

    /// Every sequence of `layer` below this is known to be past its deadline at `now`:
    /// the swarm has played it, or its place at the layer's pace is past the deadline.
    pub fn due_below(&self, now: Time, layer: LayerId) -> Seq {
        let swarm = self.due_below[layer.index()];
        match self.paced_due_below(now, layer) {
            Some(paced) => swarm.max(paced),
            None => swarm,
        }
    }

    /// The first sequence of `layer` whose deadline, placed by the layer's pace after
    /// the latest LC played, has not passed (plus `PACE_GRACE`).
    fn paced_due_below(&self, now: Time, layer: LayerId) -> Option<Seq> {
        let pace = self.pace[layer.index()]?;
        let lcs = pace.last.0.0.checked_sub(pace.first.0.0).filter(|&n| n >= PACE_MIN_LCS)?;
        let span_us = pace.last.1.0.checked_sub(pace.first.1.0).filter(|&d| d > 0)?;
        let source = self.source_now(now)?.0;
        let deadline_passed_at = pace.last.1.0 + self.lag_us + PACE_GRACE.as_micros() as u64;
        let past_us = source.checked_sub(deadline_passed_at)?;
        let behind = (past_us as u128 * lcs as u128 / span_us as u128).min(u32::MAX as u128) as u32;
        // `last` itself was played: the LCs after it are due once their place is.
        Some(Seq(pace.last.0.0.saturating_add(1).saturating_add(behind)))
    }

    /// Is the missing LC `seq` of `layer` known to be past its deadline?
    pub fn missing_is_due(&self, now: Time, layer: LayerId, seq: Seq, next_held: Option<MediaTime>) -> bool {
        seq < self.due_below(now, layer) || next_held.is_some_and(|t| self.is_due(now, t))
    }

    /// LC `seq` of `layer`, of media time `t`, reached its deadline in time (counted
    /// only after the start-up period; its place always sets the layer's pace).
    pub fn record_played_lc(&mut self, now: Time, layer: LayerId, seq: Seq, t: MediaTime, bytes: usize) {
        let pace = &mut self.pace[layer.index()];
        match pace {
            Some(p) if seq > p.last.0 && t >= p.last.1 => p.last = (seq, t),
            Some(_) => {}
            None => *pace = Some(Pace { first: (seq, t), last: (seq, t) }),
        }
        self.record_played(now, layer, bytes);
    }

    fn counting(&self, now: Time) -> bool {
        now >= self.count_from
    }

    /// Counts one LC of `layer`, of `bytes` payload, played in time (if counting has started).
    pub fn record_played(&mut self, now: Time, layer: LayerId, bytes: usize) {
        if self.counting(now) {
            let s = &mut self.layers[layer.index()];
            s.played += 1;
            s.played_bytes += bytes as u64;
        }
    }

    /// Counts one LC of `layer` that missed its deadline (if counting has started).
    pub fn record_missed(&mut self, now: Time, layer: LayerId) {
        self.record_missed_n(now, layer, 1);
    }

    /// `n` LCs of `layer` missed their deadline.
    pub fn record_missed_n(&mut self, now: Time, layer: LayerId, n: u64) {
        if self.counting(now) {
            self.layers[layer.index()].missed += n;
        }
    }

    /// Counts one LC of `layer` that arrived after its deadline (if counting has started).
    pub fn record_late(&mut self, now: Time, layer: LayerId) {
        if self.counting(now) {
            self.layers[layer.index()].late += 1;
        }
    }

    /// The instant from which LCs are counted.
    pub fn count_from(&self) -> Time {
        self.count_from
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_clock_only_moves_forward() {
        let mut p = Playback::new(1, Duration::from_secs(30), Time::ZERO);
        assert_eq!(p.source_now(Time::from_secs(5)), None);
        p.observe(Time::from_secs(10), MediaTime::from_secs_f64(100.0));
        p.observe(Time::from_secs(11), MediaTime::from_secs_f64(50.0)); // stale LC
        assert_eq!(p.source_now(Time::from_secs(12)), Some(MediaTime::from_secs_f64(102.0)));
        assert!(p.is_due(Time::from_secs(12), MediaTime::from_secs_f64(72.0)));
        assert!(!p.is_due(Time::from_secs(12), MediaTime::from_secs_f64(72.1)));
    }

    #[test]
    fn missing_lcs_become_due_by_swarm_position_or_a_later_held_lc() {
        let mut p = Playback::new(1, Duration::from_secs(30), Time::ZERO);
        p.observe(Time::ZERO, MediaTime::from_secs_f64(40.0));
        assert!(!p.missing_is_due(Time::ZERO, LayerId::BASE, Seq(99), None));
        p.raise_due(LayerId::BASE, Seq(100));
        p.raise_due(LayerId::BASE, Seq(50)); // never moves back
        assert!(p.missing_is_due(Time::ZERO, LayerId::BASE, Seq(99), None));
        assert!(!p.missing_is_due(Time::ZERO, LayerId::BASE, Seq(100), None));
        assert!(p.missing_is_due(Time::ZERO, LayerId::BASE, Seq(100), Some(MediaTime::from_secs_f64(9.0))));
        assert!(!p.missing_is_due(Time::ZERO, LayerId::BASE, Seq(100), Some(MediaTime::from_secs_f64(11.0))));
    }

    #[test]
    fn nothing_counted_before_startup() {
        let mut p = Playback::new(2, Duration::from_secs(30), Time::from_secs(5));
        let l2 = LayerId::new(2).expect("layer");
        p.record_played(Time::from_secs(1), l2, 100);
        p.record_missed(Time::from_secs(1), l2);
        p.record_played(Time::from_secs(6), l2, 100);
        p.record_missed(Time::from_secs(7), l2);
        assert_eq!(p.layers[1], LayerStats { played: 1, played_bytes: 100, missed: 1, late: 0 });
        assert_eq!(p.layers[1].ratio(), Some(0.5));
        assert_eq!(p.layers[0].ratio(), None, "nothing counted is not alpha 1");
    }
}
