//! The UDP runtime: drives the sans-IO nodes (`Peer`, `Tracker`) over real sockets.
//!
//! Thread-per-core: one glommio executor per shard, pinned to a core; every node lives
//! on exactly one shard and never shares state with another. A node's socket is bound
//! with SO_REUSEPORT (socket2), received from through io_uring (glommio's UdpSocket),
//! and written to in batches with sendmmsg + UDP GSO on its raw fd (`udp`), because
//! glommio's socket has no batched or segmented send.

pub mod driver;
pub mod ingest;
pub mod local;
pub mod role;
pub mod status;
pub mod throughput;
pub mod udp;
