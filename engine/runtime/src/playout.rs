//! A viewer's `--output` and `--http`: the LCs its core plays, made once into the
//! access units of a playable H.264 stream, written as Annex B to the output and
//! handed to the HTTP players (`player`). Owns the writer thread and the bounded queue
//! to it, so a slow reader (a player on a pipe) never blocks the executor: when the
//! queue is full, played LCs are dropped and counted. Reassembly and the stream
//! formats stay in `codec::video`.

use super::player::Players;
use layerp2p_codec::Lc;
use layerp2p_codec::video::reassemble::{OutputUnit, PlayedUnits, SkippedFrames, write_unit};
use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

/// Played LCs queued for the writer at most (several seconds of a 1 Mbps stream).
pub const PLAYOUT_QUEUE: usize = 4096;

/// Where the shard hands played LCs.
#[derive(Clone, Debug)]
pub struct PlayoutSink {
    tx: SyncSender<Lc>,
    dropped: Arc<AtomicU64>,
}

impl PlayoutSink {
    /// Queues `lc` for the writer; drops it if the writer is behind or gone.
    pub fn played(&self, lc: Lc) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.tx.try_send(lc) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What the writer did, once every sink is gone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlayoutReport {
    pub frames_written: u64,
    /// Frames not written because a decoder could not decode them.
    pub frames_skipped: SkippedFrames,
    /// Played LCs lost because the writer was behind.
    pub lcs_dropped: u64,
}

/// A running writer thread.
#[derive(Debug)]
pub struct Playout {
    handle: JoinHandle<io::Result<(u64, SkippedFrames)>>,
    dropped: Arc<AtomicU64>,
}

impl Playout {
    /// Starts a thread that writes every played LC sent to the returned sink to `out`.
    pub fn spawn(out: Box<dyn Write + Send>) -> io::Result<(Playout, PlayoutSink)> {
        Playout::spawn_to(Some(out), None)
    }

    /// Starts a thread that writes every played LC sent to the returned sink to `out`
    /// (Annex B) and to `players` (MPEG-TS over HTTP), each if given.
    pub fn spawn_to(
        out: Option<Box<dyn Write + Send>>,
        players: Option<Arc<Players>>,
    ) -> io::Result<(Playout, PlayoutSink)> {
        let (tx, rx) = sync_channel(PLAYOUT_QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let handle =
            std::thread::Builder::new().name("layerp2p-output".into()).spawn(move || write_all(rx, out, players))?;
        Ok((Playout { handle, dropped: dropped.clone() }, PlayoutSink { tx, dropped }))
    }

    /// Waits for the writer (after every sink is dropped) and reports.
    pub fn finish(self) -> io::Result<PlayoutReport> {
        let (frames_written, frames_skipped) =
            self.handle.join().map_err(|_| io::Error::other("output writer panicked"))??;
        Ok(PlayoutReport { frames_written, frames_skipped, lcs_dropped: self.dropped.load(Ordering::Relaxed) })
    }
}

fn write_all(
    rx: Receiver<Lc>,
    mut out: Option<Box<dyn Write + Send>>,
    players: Option<Arc<Players>>,
) -> io::Result<(u64, SkippedFrames)> {
    let mut units = PlayedUnits::new();
    let mut frames = 0;
    let result = (|| {
        let mut deliver = |unit: OutputUnit| {
            if let Some(p) = &players {
                p.unit(&unit);
            }
            match out.as_mut() {
                Some(out) => write_unit(out, &mut frames, &unit),
                None => {
                    frames += 1;
                    Ok(())
                }
            }
        };
        while let Ok(lc) = rx.recv() {
            units.played(&lc, &mut deliver)?;
            if let Some(p) = &players {
                p.frames(units.frames_released(), units.frames_with_slices());
            }
        }
        // Counted after the final flush: the frames still held at the end are written by `finish`.
        units.finish(&mut deliver)
    })();
    if let Some(p) = &players {
        p.close();
    }
    result?;
    if let Some(out) = out.as_mut() {
        out.flush()?;
    }
    Ok((frames, units.skipped()))
}
