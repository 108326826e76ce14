//! Helpers shared by the tests that drive a `Peer` by hand.
#![allow(dead_code)]

pub mod net;
pub mod roles;
pub mod swarms;

use layerp2p_engine::wire::{ChannelId, Message, Packet, PeerId, Role};
use layerp2p_engine::{Node, Peer, Time, Transmit};
use std::net::SocketAddr;

pub fn drain(p: &mut Peer, now: Time) -> Vec<Transmit> {
    std::iter::from_fn(|| p.poll_transmit(now)).collect()
}

pub fn input(p: &mut Peer, now: Time, from: SocketAddr, messages: Vec<Message>) {
    p.handle_input(now, from, Packet { messages });
}

/// `from` asks `p` to be its neighbour the way a real initiator does (padded, with a
/// token), then proves its address by echoing `p`'s token. Returns `p`'s replies.
pub fn connect(p: &mut Peer, now: Time, from: SocketAddr) -> Vec<Transmit> {
    let connect = Message::Connect { channel: ChannelId(1), peer: PeerId(from.port() as u64), role: Role::Peer };
    input(p, now, from, vec![connect, Message::Token { nonce: 7, echo: 0 }, Message::Padding { len: 1150 }]);
    let replies = drain(p, now);
    let token = replies
        .iter()
        .filter(|t| t.dst == from)
        .flat_map(|t| t.packet.messages.iter())
        .find_map(|m| if let Message::Token { nonce, .. } = m { Some(*nonce) } else { None });
    if let Some(echo) = token {
        input(p, now, from, vec![Message::Token { nonce: 7, echo }]);
    }
    replies
}
