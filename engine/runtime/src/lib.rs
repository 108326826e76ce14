//! The UDP runtime: drives the sans-IO nodes (`Peer`, `Tracker`) over real sockets.
//!
//! Thread-per-core: one glommio executor per shard, pinned to a core; every node lives
//! on exactly one shard and never shares state with another. A node's socket is bound
//! with SO_REUSEPORT (socket2) and read through io_uring (glommio's `UdpSocket`, built
//! from the socket2 fd). Writes bypass glommio, whose socket has no batched or
//! segmented send: after each input or timer tick the driver drains the node's
//! transmits into one buffer, orders them by destination and hands them to `udp`,
//! which issues one `sendmmsg` carrying a UDP GSO (UDP_SEGMENT) send per destination
//! run, directly on the same non-blocking fd (a full socket buffer drops, as UDP may).
//!
//! - `driver`: one node on one socket (receive task, timer loop, batched flush).
//! - `link`: an in-process access-link model (delay, loss) for loopback swarms.
//! - `udp`: every socket trick (SO_REUSEPORT bind, GSO grouping, sendmmsg).
//! - `ingest`: a seed's `LcSource` and its fan-out to shards over SPSC channels.
//! - `role`: tracker, seed, relay and peer as deployable processes; shard layout.
//! - `exposition`: Prometheus metrics and health of a running node.
//! - `http`: the small HTTP/1.1 server behind `--metrics-listen` and `--http`.
//! - `player`: a viewer's `--http`: MPEG-TS to local players, the status page.
//! - `status`: per-second snapshots, the live status line, the exit summary.
//! - `local`: a whole swarm in one process (`layerp2p demo`, the runtime test).
//! - `throughput`: the seed throughput benchmark (`layerp2p bench-node`).

pub mod driver;
pub mod exposition;
pub mod http;
pub mod ingest;
pub mod link;
pub mod local;
pub mod player;
pub mod playout;
pub mod role;
pub mod status;
pub mod throughput;
