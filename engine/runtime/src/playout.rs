//! A viewer's `--output`: the LCs its core plays, written as a playable H.264 Annex B
//! stream. Owns the writer thread and the bounded queue to it, so a slow reader (a
//! player on a pipe) never blocks the executor: when the queue is full, played LCs are
//! dropped and counted. Reassembly and the stream format stay in `codec::video`.

use layerp2p_codec::Lc;
use layerp2p_codec::video::reassemble::StreamOutput;
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
    /// Played LCs lost because the writer was behind.
    pub lcs_dropped: u64,
}

/// A running writer thread.
#[derive(Debug)]
pub struct Playout {
    handle: JoinHandle<io::Result<u64>>,
    dropped: Arc<AtomicU64>,
}

impl Playout {
    /// Starts a thread that writes every played LC sent to the returned sink to `out`.
    pub fn spawn(out: Box<dyn Write + Send>) -> io::Result<(Playout, PlayoutSink)> {
        let (tx, rx) = sync_channel(PLAYOUT_QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let handle = std::thread::Builder::new().name("layerp2p-output".into()).spawn(move || write_all(rx, out))?;
        Ok((Playout { handle, dropped: dropped.clone() }, PlayoutSink { tx, dropped }))
    }

    /// Waits for the writer (after every sink is dropped) and reports.
    pub fn finish(self) -> io::Result<PlayoutReport> {
        let frames_written = self.handle.join().map_err(|_| io::Error::other("output writer panicked"))??;
        Ok(PlayoutReport { frames_written, lcs_dropped: self.dropped.load(Ordering::Relaxed) })
    }
}

fn write_all(rx: Receiver<Lc>, out: Box<dyn Write + Send>) -> io::Result<u64> {
    let mut stream = StreamOutput::new(out);
    while let Ok(lc) = rx.recv() {
        stream.played(&lc)?;
    }
    // Counted after the final flush: the frames still held at the end are written by `finish`.
    let (mut out, frames) = stream.finish()?;
    out.flush()?;
    Ok(frames)
}
