//! Ingest: pulls a live layered source (`LcSource`) the way an encoder's output
//! arrives and hands its LCs to a seed's shards — straight into the local shard's
//! core, and to every other shard through a bounded, lock-free single-producer
//! channel (glommio's `shared_channel`), one batch per tick. An LC's payload is a
//! `Bytes` allocated once by the source; every shard holds the same allocation.

use super::driver::Clock;
use glommio::channels::shared_channel::{SharedReceiver, SharedSender};
use layerp2p_codec::{Lc, LcSource, MediaTime};
use layerp2p_proto::peer::Peer;
use layerp2p_proto::time::Time;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often the source is polled for freshly "encoded" LCs.
pub const INGEST_TICK: Duration = Duration::from_millis(20);
/// Batches (ticks) a shard's inbound channel holds; a shard that falls this far
/// behind loses batches rather than stalling ingest.
pub const FANOUT_DEPTH: usize = 256;

/// The LCs of one ingest tick.
pub type Batch = Vec<Lc>;

/// Creates the channel that feeds one other shard.
pub fn fanout_channel() -> (SharedSender<Batch>, SharedReceiver<Batch>) {
    glommio::channels::shared_channel::new_bounded(FANOUT_DEPTH)
}

/// Adds a batch to a shard's core; false if the core refused it (a broken source).
fn push_all(peer: &RefCell<Peer>, now: Time, batch: impl IntoIterator<Item = Lc>) -> bool {
    let mut p = peer.borrow_mut();
    for lc in batch {
        if p.push_lc(now, lc).is_err() {
            return false;
        }
    }
    true
}

/// Runs until `stop`: every tick, the LCs the source produced by now go to `local`
/// and, as shared references, to every shard behind `others`. Returns the number of
/// batches dropped because a shard's channel was full.
pub async fn ingest(
    mut source: Box<dyn LcSource>,
    local: Rc<RefCell<Peer>>,
    others: Vec<SharedSender<Batch>>,
    clock: Clock,
    stop: Arc<AtomicBool>,
) -> u64 {
    fan_out(move |now, out| source.lcs_until(MediaTime(now.0), out), local, others, clock, stop).await
}

/// Runs until `stop`: every tick, the LCs `pull` yields go to `local` and to every
/// shard behind `others` (a seed's source, or a sharded relay's upstream peer).
/// Returns the number of batches dropped because a shard's channel was full.
pub async fn fan_out(
    mut pull: impl FnMut(Time, &mut Vec<Lc>),
    local: Rc<RefCell<Peer>>,
    others: Vec<SharedSender<Batch>>,
    clock: Clock,
    stop: Arc<AtomicBool>,
) -> u64 {
    let mut senders = Vec::new();
    for s in others {
        senders.push(s.connect().await);
    }
    let mut dropped = 0;
    let mut buf = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let now = clock.now();
        pull(now, &mut buf);
        if !buf.is_empty() {
            for s in &senders {
                // A clone of an `Lc` copies its header and bumps the payload's refcount.
                if s.try_send(buf.clone()).is_err() {
                    dropped += 1;
                }
            }
            if !push_all(&local, now, buf.drain(..)) {
                break;
            }
        }
        glommio::timer::sleep(INGEST_TICK).await;
    }
    dropped
}

/// Feeds the batches ingest sends to this shard into `local`, until ingest stops.
pub async fn receive(rx: SharedReceiver<Batch>, local: Rc<RefCell<Peer>>, clock: Clock) {
    let rx = rx.connect().await;
    while let Some(batch) = rx.recv().await {
        if !push_all(&local, clock.now(), batch) {
            return;
        }
    }
}
