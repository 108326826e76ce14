//! A viewer's `--http`: what it plays, as MPEG-TS to local players (VLC, mpv) at
//! `/stream.ts`, and a status page at `/` with its numbers at `/status.json`.
//!
//! The playout thread muxes each access unit once and hands the bytes to every
//! connected player through its own bounded queue; a player that falls
//! `PLAYER_BUFFER_BYTES` behind is dropped, so a slow one never holds back the
//! playout thread, the node or the other players. A player joins at the next IDR
//! (PAT, PMT, SPS and PPS come before each one).

use super::http::{Handler, Request, Response};
use super::status::Status;
use bytes::Bytes;
use layerp2p_codec::video::mpegts::TsMuxer;
use layerp2p_codec::video::reassemble::OutputUnit;
use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Players served at once.
pub const MAX_PLAYERS: usize = 8;
/// Bytes queued for one player at most (seconds of a few-Mbps stream); past it the
/// player is dropped.
pub const PLAYER_BUFFER_BYTES: usize = 8 << 20;
/// Access units queued for one player at most.
const PLAYER_QUEUE: usize = 1024;
/// Frames released without a single H.264 slice before the channel is taken as not
/// H.264 (a synthetic source): a few seconds of any frame rate.
const NOT_H264_AFTER_FRAMES: u64 = 90;
/// Statuses kept for the page's chart (one a second).
pub const STATUS_HISTORY: usize = 120;

/// What the channel turned out to carry.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamKind {
    /// Nothing played yet.
    Unknown,
    H264,
    /// Frames played, none of them H.264 (a synthetic channel).
    NotH264,
}

/// Why a player was turned away.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlayerRefused {
    #[error("this channel does not carry H.264 video (a synthetic source): nothing to play as MPEG-TS")]
    NotH264,
    #[error("{MAX_PLAYERS} players are connected already")]
    Full,
}

#[derive(Debug)]
struct Client {
    tx: SyncSender<Bytes>,
    queued: Arc<AtomicUsize>,
    /// Got its first IDR (before it, units are not sent).
    started: bool,
}

#[derive(Debug)]
struct Inner {
    muxer: TsMuxer,
    clients: Vec<Client>,
    kind: StreamKind,
    /// Players dropped for falling behind.
    dropped_slow: u64,
    /// Closed: the node stopped.
    closed: bool,
}

/// The players of one viewer: fed by the playout thread, joined by the HTTP server.
#[derive(Debug)]
pub struct Players {
    inner: Mutex<Inner>,
}

impl Default for Players {
    fn default() -> Players {
        Players {
            inner: Mutex::new(Inner {
                muxer: TsMuxer::new(),
                clients: Vec::new(),
                kind: StreamKind::Unknown,
                dropped_slow: 0,
                closed: false,
            }),
        }
    }
}

impl Players {
    pub fn new() -> Arc<Players> {
        Arc::new(Players::default())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves plain data: keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One access unit the viewer played: muxed once, queued for every player that
    /// has started (or starts at this IDR); players that are behind are dropped.
    pub fn unit(&self, unit: &OutputUnit) {
        let mut inner = self.lock();
        inner.kind = StreamKind::H264;
        if inner.clients.is_empty() {
            return;
        }
        let Inner { muxer, clients, dropped_slow, .. } = &mut *inner;
        let mut ts = Vec::with_capacity(unit.data.len() + unit.data.len() / 8 + 3 * 188);
        muxer.unit(unit, &mut ts);
        let ts = Bytes::from(ts);
        clients.retain_mut(|c| {
            c.started |= unit.idr;
            if !c.started {
                return true;
            }
            if c.queued.load(Ordering::Relaxed) + ts.len() > PLAYER_BUFFER_BYTES {
                *dropped_slow += 1;
                return false;
            }
            match c.tx.try_send(ts.clone()) {
                Ok(()) => {
                    c.queued.fetch_add(ts.len(), Ordering::Relaxed);
                    true
                }
                Err(TrySendError::Full(_)) => {
                    *dropped_slow += 1;
                    false
                }
                Err(TrySendError::Disconnected(_)) => false,
            }
        });
    }

    /// What the playout has released so far: frames in all, and those with a slice.
    pub fn frames(&self, released: u64, with_slices: u64) {
        let mut inner = self.lock();
        if with_slices == 0 && released >= NOT_H264_AFTER_FRAMES {
            inner.kind = StreamKind::NotH264;
            // Players waiting for an IDR that will never come: let them go.
            inner.clients.clear();
        }
    }

    /// A new player, which gets the stream from the next IDR on.
    pub fn subscribe(&self) -> Result<Subscription, PlayerRefused> {
        let mut inner = self.lock();
        if inner.kind == StreamKind::NotH264 {
            return Err(PlayerRefused::NotH264);
        }
        // Players gone since the last unit would otherwise hold a place.
        inner.clients.retain(|c| c.tx.try_send(Bytes::new()).is_ok());
        if inner.clients.len() >= MAX_PLAYERS {
            return Err(PlayerRefused::Full);
        }
        let (tx, rx) = sync_channel(PLAYER_QUEUE);
        let queued = Arc::new(AtomicUsize::new(0));
        if !inner.closed {
            inner.clients.push(Client { tx, queued: queued.clone(), started: false });
        }
        Ok(Subscription { rx, queued })
    }

    /// The node stopped: every player's stream ends.
    pub fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        inner.clients.clear();
    }

    pub fn kind(&self) -> StreamKind {
        self.lock().kind
    }

    /// Players connected now, and dropped for falling behind so far.
    pub fn counts(&self) -> (usize, u64) {
        let inner = self.lock();
        (inner.clients.len(), inner.dropped_slow)
    }
}

/// One player's side of its queue.
#[derive(Debug)]
pub struct Subscription {
    rx: Receiver<Bytes>,
    queued: Arc<AtomicUsize>,
}

impl Subscription {
    /// Writes the stream to `out` until the node stops, the player is dropped, or a
    /// write fails (the player went away, or stalled past the server's write timeout).
    pub fn write_to(self, out: &mut dyn Write) -> io::Result<()> {
        loop {
            match self.rx.recv_timeout(Duration::from_secs(1)) {
                Ok(ts) => {
                    out.write_all(&ts)?;
                    out.flush()?;
                    self.queued.fetch_sub(ts.len(), Ordering::Relaxed);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
        }
    }
}

/// The last statuses of the node, for `/status.json`.
#[derive(Debug, Default)]
pub struct StatusBoard {
    history: Mutex<VecDeque<Status>>,
}

impl StatusBoard {
    pub fn new() -> Arc<StatusBoard> {
        Arc::new(StatusBoard::default())
    }

    pub fn update(&self, s: &Status) {
        let mut h = self.history.lock().unwrap_or_else(|e| e.into_inner());
        if h.len() == STATUS_HISTORY {
            h.pop_front();
        }
        h.push_back(s.clone());
    }

    fn json(&self, players: &Players) -> String {
        let h = self.history.lock().unwrap_or_else(|e| e.into_inner());
        let (connected, dropped_slow) = players.counts();
        let body = serde_json::json!({
            "stream": players.kind(),
            "players": connected,
            "players_dropped_slow": dropped_slow,
            "history": &*h,
        });
        body.to_string()
    }
}

/// The status page: polls `/status.json` and draws the chart; no external resources.
const PAGE: &str = include_str!("player_page.html");

/// `/`, `/status.json` and `/stream.ts` of a viewer.
pub fn player_routes(players: Arc<Players>, board: Arc<StatusBoard>) -> impl Handler {
    move |req: &Request| match req.path.as_str() {
        "/" => Response::Full { status: 200, content_type: "text/html; charset=utf-8", body: PAGE.into() },
        "/status.json" => {
            Response::Full { status: 200, content_type: "application/json", body: board.json(&players).into_bytes() }
        }
        "/stream.ts" => match players.subscribe() {
            Ok(sub) => Response::Stream { content_type: "video/mp2t", body: Box::new(move |out| sub.write_to(out)) },
            Err(e @ PlayerRefused::NotH264) => Response::text(415, format!("{e}\n")),
            Err(e @ PlayerRefused::Full) => Response::text(503, format!("{e}\n")),
        },
        _ => Response::text(404, "not found: try /, /status.json or /stream.ts\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use layerp2p_codec::MediaTime;

    fn unit(number: u32, idr: bool) -> OutputUnit {
        OutputUnit { number, time: MediaTime(u64::from(number) * 40_000), idr, data: vec![0, 0, 0, 1, 0x09, 0xF0] }
    }

    fn drain(sub: &Subscription) -> Vec<Bytes> {
        sub.rx.try_iter().filter(|b| !b.is_empty()).collect()
    }

    #[test]
    fn a_player_starts_at_the_next_idr() {
        let players = Players::new();
        let sub = players.subscribe().expect("room");
        players.unit(&unit(0, false));
        assert!(drain(&sub).is_empty(), "nothing before an IDR");
        players.unit(&unit(1, true));
        players.unit(&unit(2, false));
        let got = drain(&sub);
        assert_eq!(got.len(), 2);
        // The first unit starts with the PAT (PID 0).
        assert_eq!((got[0][0], got[0][1] & 0x1F, got[0][2]), (0x47, 0, 0));
    }

    #[test]
    fn a_slow_player_is_dropped_and_the_others_keep_going() {
        let players = Players::new();
        let (slow, fast) = (players.subscribe().expect("room"), players.subscribe().expect("room"));
        let big = OutputUnit { data: vec![0; 1 << 20], ..unit(0, true) };
        for i in 0..(PLAYER_BUFFER_BYTES >> 20) + 2 {
            players.unit(&OutputUnit { number: i as u32, ..big.clone() });
            drain(&fast).iter().for_each(|b| {
                fast.queued.fetch_sub(b.len(), Ordering::Relaxed);
            });
        }
        assert_eq!(players.counts(), (1, 1), "the slow one dropped, the fast one kept");
        // Its queue is closed: its writer ends once it has written what it had.
        let mut out = Vec::new();
        slow.write_to(&mut out).expect("ends cleanly");
        assert!(out.len() <= PLAYER_BUFFER_BYTES && !out.is_empty());
    }

    #[test]
    fn players_are_bounded_and_a_synthetic_channel_is_refused() {
        let players = Players::new();
        let subs: Vec<_> = (0..MAX_PLAYERS).map(|_| players.subscribe().expect("room")).collect();
        assert_eq!(players.subscribe().err(), Some(PlayerRefused::Full));
        drop(subs);
        assert!(players.subscribe().is_ok(), "places of players gone are freed");
        players.frames(NOT_H264_AFTER_FRAMES, 0);
        assert_eq!(players.subscribe().err(), Some(PlayerRefused::NotH264));
        assert_eq!(players.kind(), StreamKind::NotH264);
    }

    #[test]
    fn the_writer_ends_when_the_node_stops() {
        let players = Players::new();
        let sub = players.subscribe().expect("room");
        players.unit(&unit(0, true));
        players.close();
        let mut out = Vec::new();
        sub.write_to(&mut out).expect("ends cleanly");
        assert_eq!(out.len() % 188, 0);
        assert!(!out.is_empty());
    }
}
