//! The typed messages of the LayerP2P protocol (the high-level representation).
//!
//! One UDP datagram carries one [`Packet`]: a version and one or more messages, so
//! buffer maps and requests can ride along with LC data. The byte format is in
//! `codec.rs` and docs/PROTOCOL.md; the simulator passes these values without
//! serialising them and only counts [`Message::wire_len`].

use crate::integrity::LcHash;
use bytes::Bytes;
use layerp2p_codec::{BufferMap, LayerId, Lc, LcId, MediaTime, Seq};
use std::net::SocketAddr;

/// Most peers in one tracker peer list.
pub const MAX_PEER_LIST: usize = 64;
/// Most LC ids in one request message.
pub const MAX_REQUEST_IDS: usize = 2048;
/// Most messages in one packet.
pub const MAX_MESSAGES_PER_PACKET: usize = 64;
/// Largest datagram we ever send or accept (fits the IPv4 UDP payload limit).
pub const MAX_DATAGRAM: usize = 65_507;

/// A random 64-bit identity a node picks at start; the tracker uses it to tell
/// rejoins from new peers.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerId(pub u64);

/// A channel (one live stream) on a tracker.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct ChannelId(pub u32);

/// What a node is, announced to the tracker and to neighbours.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// An ordinary viewer: plays the stream and trades LCs tit-for-tat.
    Peer,
    /// The source's injector: serves LCs, plays nothing, never seeks neighbours.
    Seed,
    /// A super-peer: a viewer with high upload and room for more neighbours.
    Relay,
}

/// Why a neighbour relationship was declined or dropped.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The receptor already has N_max neighbours.
    Full,
    /// Periodic adaptation replaced the least-contributing neighbour.
    Adaptation,
    /// The node is leaving the channel.
    Leaving,
    /// Wrong channel or otherwise unacceptable.
    Refused,
}

/// What a node knows of the NAT in front of it (RFC 4787 terms), as it tells the
/// tracker. Only the mapping matters for hole punching: with an endpoint-independent
/// mapping the address the tracker sees is the one every other node sees too.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NatType {
    /// Not measured yet (or not measurable: no second public node answered).
    #[default]
    Unknown,
    /// No NAT: the address others see is one of the node's own.
    Open,
    /// Endpoint-independent mapping ("cone"): one public address for every
    /// destination, so a hole punched through an introduction reaches it.
    Cone,
    /// Address- or port-dependent mapping ("symmetric"): a new public port per
    /// destination; punching fails, only open nodes can be its neighbours.
    Symmetric,
}

/// A buffer map with the timing fields every round's exchange carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BufferMapMsg {
    /// Media time of the newest LC the sender holds in any layer: lets receivers
    /// place the source's encoding point (and so their playback point).
    pub head_time: MediaTime,
    /// Sender's local clock when sending, in microseconds (opaque to the receiver,
    /// echoed back to measure round-trip time).
    pub sent_at: u64,
    /// The last `sent_at` received from the addressee, or 0.
    pub echo: u64,
    /// Microseconds between receiving `echo` and sending this message.
    pub echo_delay: u32,
    /// Which LCs of each layer's exchange window the sender holds.
    pub map: BufferMap,
}

/// The seed's signed list of the hashes of LCs `start..start + hashes.len()` of one
/// layer (see `integrity`). Forwarded as received; only the seed can make one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestMsg {
    /// Layer whose LC hashes these are.
    pub layer: LayerId,
    /// Sequence number of the LC the first hash vouches for.
    pub start: Seq,
    /// 1 to `integrity::MAX_MANIFEST_LCS` hashes, one per LC in sequence order.
    pub hashes: Vec<LcHash>,
    /// ed25519 over the channel, layer, start and hashes.
    pub signature: [u8; crate::integrity::SIGNATURE_LEN],
}

/// Every message of the protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    // --- tracker ---
    /// Peer -> tracker: register in a channel (also a refresh).
    Join {
        /// Channel to register in.
        channel: ChannelId,
        /// The joining node's identity.
        peer: PeerId,
        /// What the joining node is: peer, seed or relay.
        role: Role,
    },
    /// Tracker -> peer: a random subset of the channel's peers.
    PeerList {
        /// Addresses of the listed peers, at most `MAX_PEER_LIST`.
        peers: Vec<SocketAddr>,
    },
    /// Peer -> tracker: still here; asks for a fresh list when `want_peers`.
    Refresh {
        /// Channel the peer is registered in.
        channel: ChannelId,
        /// The refreshing node's identity.
        peer: PeerId,
        /// Ask the tracker to answer with a `PeerList`.
        want_peers: bool,
    },
    /// Peer -> tracker: leaving the channel.
    Leave {
        /// Channel being left.
        channel: ChannelId,
        /// The leaving node's identity.
        peer: PeerId,
    },

    // --- neighbours ---
    /// Initiator -> receptor: ask to become neighbours.
    Connect {
        /// Channel the initiator streams; a receptor on another channel declines.
        channel: ChannelId,
        /// The initiator's identity.
        peer: PeerId,
        /// What the initiator is.
        role: Role,
    },
    /// Receptor -> initiator: accepted.
    Accept {
        /// The receptor's identity.
        peer: PeerId,
        /// What the receptor is.
        role: Role,
    },
    /// Receptor -> initiator: declined.
    Decline {
        /// Why the receptor declined.
        reason: Reason,
    },
    /// Either side: the relationship is over.
    Disconnect {
        /// Why the sender ended it.
        reason: Reason,
    },

    // --- exchange ---
    /// Which LCs of the exchange window the sender holds.
    BufferMap(BufferMapMsg),
    /// Receiver -> supplier: this round's requests, in the order to serve them.
    /// The supplier drops any it cannot send within `ttl_ms` of arrival (T - tau).
    Request {
        /// Milliseconds the supplier may hold these requests before dropping them.
        ttl_ms: u16,
        /// LCs wanted, most urgent first; at most `MAX_REQUEST_IDS`.
        ids: Vec<LcId>,
    },
    /// Supplier -> receiver: one LC.
    Data(Lc),
    /// Supplier -> receiver: the signed hashes that vouch for LCs it is sending.
    Manifest(ManifestMsg),

    // --- address validation (anti-amplification) ---
    /// `nonce`: a random token the sender hands the addressee; `echo`: the last token
    /// the addressee handed the sender (0 if none). Echoing a token proves the sender
    /// receives at its address; until then a node sends it at most 3x what it got.
    Token {
        /// Fresh random token for the addressee to echo back.
        nonce: u64,
        /// The addressee's last token, or 0 if none was received yet.
        echo: u64,
    },
    /// Asks a neighbour for an immediate `Pong`: a peer measuring its upload sends one
    /// with each buffer map, so the round trip tells its uplink's queue within a round
    /// trip rather than when the neighbour's next buffer map echoes it.
    Ping {
        /// Sender's local clock when sending, in microseconds (opaque to the receiver).
        sent_at: u64,
    },
    /// The answer to a `Ping`, sent at once.
    Pong {
        /// The answerer's clock when the Ping arrived minus the Ping's `sent_at`
        /// (microseconds, wrapping): the one-way delay plus the clocks' offset, which
        /// cancels against the least such value. One way, so the answerer's own
        /// uplink queue, which the Pong crosses, does not count.
        one_way: u64,
    },
    /// `len` zero bytes: pads handshakes so replies stay within 3x of requests.
    Padding {
        /// Number of zero bytes that follow.
        len: u16,
    },

    // --- NAT traversal (docs/PROTOCOL.md, "NAT traversal") ---
    /// Tracker, seed or relay -> peer: the address the sender sees the addressee at
    /// (its reflexive address).
    Observed {
        /// The addressee's address as the sender sees it.
        addr: SocketAddr,
    },
    /// Peer -> tracker: introduce me to `addr` (a peer of `channel` that did not
    /// answer). Tracker -> peer: `addr` (the asker, as the tracker sees it) wants to
    /// reach you; send it a `Punch`.
    Introduce {
        /// The channel both peers are in.
        channel: ChannelId,
        /// The peer to introduce (to the tracker) or the asker (from the tracker).
        addr: SocketAddr,
    },
    /// A probe that opens the sender's NAT binding towards the addressee; smaller than
    /// any message that can cause it.
    Punch,
    /// Peer -> tracker: the NAT type the peer measured.
    NatReport {
        /// What the peer measured.
        nat: NatType,
    },
}

/// One datagram: a protocol version and the messages it carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// The messages, 1 to `MAX_MESSAGES_PER_PACKET`, handled in order.
    pub messages: Vec<Message>,
}

impl Message {
    /// Payload bytes of an LC message, used by upload accounting.
    pub fn payload(&self) -> Option<&Bytes> {
        match self {
            Message::Data(lc) => Some(&lc.payload),
            _ => None,
        }
    }
}
