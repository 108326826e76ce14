//! All socket tricks in one place: binding (SO_REUSEPORT for shards of one node) and
//! batched transmission.
//!
//! `send_batch` groups consecutive datagrams to the same destination into one UDP GSO
//! send (UDP_SEGMENT: the kernel cuts one large buffer into equal segments) and hands
//! every group to one `sendmmsg` call, so a tick's LCs cost a handful of syscalls,
//! not one each. If the kernel refuses GSO, the batch is resent without it and GSO
//! stays off for that sender. Nothing here interprets the datagrams.
//!
//! Kernel features used, and how each degrades (as quinn-udp does):
//!
//! | feature | used for | when missing or refused |
//! |---|---|---|
//! | `SO_REUSEPORT` | shards of one node share a port (`bind_shared`) | binding fails with the OS error |
//! | `IPV6_V6ONLY` off | `[::]` also receives IPv4 (`bind`) | binding fails with the OS error |
//! | `sendmmsg` | many destinations in one syscall | (Linux >= 3.0: always there) |
//! | `UDP_SEGMENT` (GSO) | one buffer cut into equal datagrams | EIO, EINVAL or EOPNOTSUPP turn GSO off for the sender and the rest of the batch is resent without it |
//! | `recvmmsg` | many datagrams in one syscall (`RecvBatch`) | (Linux >= 2.6.33: always there) |
//! | `UDP_GRO` | a sender's GSO burst arrives as one buffer (`enable_gro`) | `enable_gro` returns false; datagrams arrive one per slot |
//!
//! `EINTR` retries the same call; `EAGAIN` (a full socket buffer) drops the rest of the
//! batch, as UDP may; any other error skips one destination's group so that a bad
//! address cannot stall everyone else.

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;

/// Largest number of segments one GSO send may carry (UDP_MAX_SEGMENTS).
const MAX_SEGMENTS: usize = 64;
/// Largest UDP payload one send may carry.
const MAX_SEND: usize = 65_507;
/// Messages handed to one sendmmsg call.
const MAX_MMSG: usize = 64;
const SOL_UDP: libc::c_int = 17;
const UDP_SEGMENT: libc::c_int = 103;
const UDP_GRO: libc::c_int = 104;

/// Binds a non-blocking UDP socket with large buffers, on a port of its own.
///
/// No SO_REUSEPORT: a port-0 bind with it may be given a port that another such
/// socket of the same user holds, and the kernel then splits that port's datagrams
/// between the two. Only the shards of one node share a port (`bind_shared`).
pub fn bind(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    socket(addr, false)
}

/// Binds `count` sockets on one address with SO_REUSEPORT, so the kernel spreads
/// remote addresses over them by hash (one per shard). For port 0 the port is first
/// reserved by a plain bind, so it is not one another SO_REUSEPORT socket holds.
pub fn bind_shared(addr: SocketAddr, count: usize) -> io::Result<Vec<std::net::UdpSocket>> {
    if count <= 1 {
        return Ok(vec![bind(addr)?]);
    }
    let addr = if addr.port() == 0 { bind(addr)?.local_addr()? } else { addr };
    (0..count).map(|_| socket(addr, true)).collect()
}

fn socket(addr: SocketAddr, reuse_port: bool) -> io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    // `[::]` means every address of both families (dual-stack); IPv4 remotes then
    // arrive as IPv4-mapped IPv6 addresses, which `canonical` turns back.
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        socket.set_only_v6(false)?;
    }
    socket.set_nonblocking(true)?;
    // Best effort: the kernel caps these at net.core.{r,w}mem_max.
    let _ = socket.set_recv_buffer_size(4 << 20);
    let _ = socket.set_send_buffer_size(4 << 20);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// The addresses a socket bound to `bound` is reached at directly: `bound` itself, or
/// with an unspecified IP, every local IP of its family (both families for `[::]`)
/// with its port. A node compares them with what the tracker sees to tell whether it
/// is behind a NAT.
pub fn local_addrs(bound: SocketAddr) -> Vec<SocketAddr> {
    if !bound.ip().is_unspecified() {
        return vec![bound];
    }
    let mut out = Vec::new();
    let mut ifaddrs: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills a list we free with freeifaddrs; each `ifa_addr` is
    // null or points to a sockaddr of the family it names.
    unsafe {
        if libc::getifaddrs(&mut ifaddrs) != 0 {
            return out;
        }
        let mut at = ifaddrs;
        while !at.is_null() {
            let sa = (*at).ifa_addr;
            if !sa.is_null() {
                match i32::from((*sa).sa_family) {
                    libc::AF_INET => {
                        let sin = &*(sa as *const libc::sockaddr_in);
                        let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                        out.push(SocketAddr::new(ip.into(), bound.port()));
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(sa as *const libc::sockaddr_in6);
                        let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                        out.push(SocketAddr::new(ip.into(), bound.port()));
                    }
                    _ => {}
                }
            }
            at = (*at).ifa_next;
        }
        libc::freeifaddrs(ifaddrs);
    }
    // An IPv4 socket is reached at IPv4 addresses only; `[::]` at both.
    out.retain(|a| bound.is_ipv6() || a.is_ipv4());
    out
}

/// `from` as the protocol core sees it: an IPv4 remote reaching a dual-stack socket
/// is reported as `::ffff:a.b.c.d`, but it is the IPv4 address the tracker lists and
/// others reach. A dual-stack socket sends to an IPv4 address as it is.
pub fn canonical(from: SocketAddr) -> SocketAddr {
    SocketAddr::new(from.ip().to_canonical(), from.port())
}

/// Orders a tick's datagrams by destination, keeping each destination's own order,
/// so that `group` can hand each destination's run to one GSO send.
pub fn by_destination<B>(datagrams: &mut [(SocketAddr, B)]) {
    datagrams.sort_by_key(|(dst, _)| *dst);
}

/// A run of datagrams to one destination that one send can carry: all segments
/// `segment` bytes long except possibly the last, which may be shorter.
#[derive(Debug, PartialEq, Eq)]
pub struct Group {
    pub start: usize,
    pub end: usize,
    pub segment: usize,
}

/// Splits `datagrams` into groups for GSO (consecutive, same destination, equal size
/// but the last, at most 64 segments and 65,507 bytes).
pub fn group<B: AsRef<[u8]>>(datagrams: &[(SocketAddr, B)], gso: bool) -> Vec<Group> {
    let mut groups = Vec::new();
    let mut i = 0;
    while i < datagrams.len() {
        let (dst, first) = (&datagrams[i].0, datagrams[i].1.as_ref().len());
        let mut end = i + 1;
        let mut total = first;
        if gso && first > 0 {
            while end < datagrams.len()
                && end - i < MAX_SEGMENTS
                && datagrams[end].0 == *dst
                && datagrams[end].1.as_ref().len() <= first
                && datagrams[end - 1].1.as_ref().len() == first
                && total + datagrams[end].1.as_ref().len() <= MAX_SEND
            {
                total += datagrams[end].1.as_ref().len();
                end += 1;
            }
        }
        groups.push(Group { start: i, end, segment: first });
        i = end;
    }
    groups
}

/// Outcome of one `send_batch`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub datagrams: usize,
    pub syscalls: usize,
    /// Datagrams dropped because the socket buffer was full (UDP may drop).
    pub dropped: usize,
}

/// Sends `datagrams` on the non-blocking socket `fd`. `gso` is cleared if the kernel
/// refuses segmentation offload.
pub fn send_batch<B: AsRef<[u8]>>(fd: RawFd, datagrams: &[(SocketAddr, B)], gso: &mut bool) -> Sent {
    let mut sent = Sent::default();
    let groups = group(datagrams, *gso);
    let mut at = 0;
    while at < groups.len() {
        let chunk = &groups[at..(at + MAX_MMSG).min(groups.len())];
        match sendmmsg(fd, datagrams, chunk, *gso) {
            Ok(n) => {
                sent.syscalls += 1;
                sent.datagrams += chunk[..n].iter().map(|g| g.end - g.start).sum::<usize>();
                if n == 0 {
                    sent.dropped += chunk.iter().map(|g| g.end - g.start).sum::<usize>();
                    at += chunk.len();
                } else {
                    at += n;
                }
            }
            // A signal landed before anything was sent: send the same chunk again.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => sent.syscalls += 1,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                sent.syscalls += 1;
                sent.dropped += groups[at..].iter().map(|g| g.end - g.start).sum::<usize>();
                break;
            }
            Err(e)
                if *gso
                    && matches!(e.raw_os_error(), Some(libc::EIO) | Some(libc::EINVAL) | Some(libc::EOPNOTSUPP)) =>
            {
                // No GSO here: regroup what is left without it.
                *gso = false;
                let rest = groups[at].start;
                let more = send_batch(fd, &datagrams[rest..], gso);
                sent.datagrams += more.datagrams;
                sent.syscalls += more.syscalls + 1;
                sent.dropped += more.dropped;
                break;
            }
            Err(_) => {
                // One bad destination must not stall the rest: skip that group.
                sent.syscalls += 1;
                sent.dropped += chunk[0].end - chunk[0].start;
                at += 1;
            }
        }
    }
    sent
}

/// One sendmmsg over `groups`; returns how many groups the kernel took.
fn sendmmsg<B: AsRef<[u8]>>(
    fd: RawFd,
    datagrams: &[(SocketAddr, B)],
    groups: &[Group],
    gso: bool,
) -> io::Result<usize> {
    let addrs: Vec<socket2::SockAddr> = groups.iter().map(|g| datagrams[g.start].0.into()).collect();
    let mut iovecs: Vec<libc::iovec> = Vec::with_capacity(datagrams.len());
    for g in groups {
        for (_, buf) in &datagrams[g.start..g.end] {
            let buf = buf.as_ref();
            iovecs.push(libc::iovec { iov_base: buf.as_ptr() as *mut libc::c_void, iov_len: buf.len() });
        }
    }
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<u16>() as u32) } as usize;
    let mut control = vec![0u8; space * groups.len()];
    let mut msgs: Vec<libc::mmsghdr> = Vec::with_capacity(groups.len());
    let mut iov_at = 0;
    for (k, g) in groups.iter().enumerate() {
        let count = g.end - g.start;
        // SAFETY: zeroed msghdr is a valid empty header; every pointer set below
        // points into `addrs`, `iovecs` or `control`, which outlive the call.
        let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
        hdr.msg_name = addrs[k].as_ptr() as *mut libc::c_void;
        hdr.msg_namelen = addrs[k].len();
        hdr.msg_iov = iovecs[iov_at..].as_mut_ptr();
        hdr.msg_iovlen = count as _;
        iov_at += count;
        if gso && count > 1 {
            let ctl = &mut control[k * space..(k + 1) * space];
            hdr.msg_control = ctl.as_mut_ptr() as *mut libc::c_void;
            hdr.msg_controllen = space as _;
            // SAFETY: the control buffer holds one cmsg of CMSG_SPACE(u16) bytes.
            unsafe {
                let cmsg = libc::CMSG_FIRSTHDR(&hdr);
                (*cmsg).cmsg_level = SOL_UDP;
                (*cmsg).cmsg_type = UDP_SEGMENT;
                (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<u16>() as u32) as _;
                std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut u16, g.segment as u16);
            }
        }
        msgs.push(libc::mmsghdr { msg_hdr: hdr, msg_len: 0 });
    }
    // SAFETY: `msgs` holds `msgs.len()` initialised headers whose buffers are alive.
    let n = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), msgs.len() as u32, 0) };
    if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
}

/// Asks the kernel to hand over a sender's GSO burst (or coalesced datagrams) as one
/// buffer with its segment size (UDP_GRO), so one receive slot carries up to 64
/// datagrams. Returns whether the kernel accepted; without it nothing changes.
pub fn enable_gro(fd: RawFd) -> bool {
    let on: libc::c_int = 1;
    // SAFETY: setsockopt reads an int from a valid pointer of the given length.
    unsafe {
        libc::setsockopt(
            fd,
            SOL_UDP,
            UDP_GRO,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        ) == 0
    }
}

/// Receive buffers for `recvmmsg`, reused call after call (nothing is allocated per
/// receive). Each slot holds one datagram, or with `enable_gro` one burst of equal
/// segments, which `datagrams` cuts apart again.
pub struct RecvBatch {
    slot_len: usize,
    bufs: Vec<u8>,
    names: Vec<libc::sockaddr_storage>,
    control: Vec<u8>,
    control_len: usize,
    iovecs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
    /// Slots the last `recv` filled.
    filled: usize,
}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch")
            .field("slots", &self.msgs.len())
            .field("slot_len", &self.slot_len)
            .field("filled", &self.filled)
            .finish()
    }
}

impl RecvBatch {
    /// `slots` receive slots of `slot_len` bytes each (65,535 to take a GRO burst whole).
    pub fn new(slots: usize, slot_len: usize) -> RecvBatch {
        let (slots, slot_len) = (slots.max(1), slot_len.max(1));
        // SAFETY: CMSG_SPACE only computes a size.
        let control_len = unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) } as usize;
        RecvBatch {
            slot_len,
            bufs: vec![0; slots * slot_len],
            // SAFETY: an all-zero sockaddr_storage is a valid (unspecified) address.
            names: vec![unsafe { std::mem::zeroed() }; slots],
            control: vec![0; slots * control_len],
            control_len,
            iovecs: vec![libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; slots],
            // SAFETY: an all-zero mmsghdr is a valid empty header.
            msgs: vec![unsafe { std::mem::zeroed() }; slots],
            filled: 0,
        }
    }

    /// Receives what `fd` (non-blocking) holds, up to one datagram or burst per slot,
    /// in one syscall. Returns the slots filled: 0 when nothing was waiting.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        self.filled = 0;
        let slots = self.msgs.len();
        for k in 0..slots {
            self.iovecs[k] =
                libc::iovec { iov_base: self.bufs[k * self.slot_len..].as_mut_ptr().cast(), iov_len: self.slot_len };
            // SAFETY: zeroed msghdr is valid; every pointer points into a buffer of
            // `self` that is not resized while the call runs.
            let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
            hdr.msg_name = (&mut self.names[k] as *mut libc::sockaddr_storage).cast();
            hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            hdr.msg_iov = &mut self.iovecs[k];
            hdr.msg_iovlen = 1;
            hdr.msg_control = self.control[k * self.control_len..].as_mut_ptr().cast();
            hdr.msg_controllen = self.control_len as _;
            self.msgs[k] = libc::mmsghdr { msg_hdr: hdr, msg_len: 0 };
        }
        loop {
            // SAFETY: `msgs` holds `slots` headers whose buffers are alive and unaliased.
            let n = unsafe {
                libc::recvmmsg(fd, self.msgs.as_mut_ptr(), slots as u32, libc::MSG_DONTWAIT, std::ptr::null_mut())
            };
            if n >= 0 {
                self.filled = n as usize;
                return Ok(self.filled);
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return Ok(0),
                _ => return Err(e),
            }
        }
    }

    /// The datagrams of the last `recv`, GRO bursts cut into their segments, each with
    /// its sender; a truncated slot (a datagram longer than the slot) is `None`.
    pub fn datagrams(&self) -> impl Iterator<Item = Option<(SocketAddr, &[u8])>> + '_ {
        (0..self.filled).flat_map(move |k| {
            let m = &self.msgs[k];
            let at = k * self.slot_len;
            let len = (m.msg_len as usize).min(self.slot_len);
            let from = sockaddr(&self.names[k]).filter(|_| m.msg_hdr.msg_flags & libc::MSG_TRUNC == 0);
            // A bad slot yields one `None`: one chunk of one byte, mapped to nothing.
            let (data, segment) = match from {
                Some(_) => (&self.bufs[at..at + len], gro_segment(&m.msg_hdr).filter(|&s| s > 0).unwrap_or(len).max(1)),
                None => (&self.bufs[at..at + 1], 1),
            };
            data.chunks(segment).map(move |d| from.map(|f| (f, d)))
        })
    }
}

/// The segment size a GRO receive reports in its control message.
fn gro_segment(hdr: &libc::msghdr) -> Option<usize> {
    // SAFETY: the kernel wrote `msg_controllen` bytes of well-formed cmsgs into the
    // control buffer `hdr` points to; CMSG_* walk only within it.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(hdr);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == SOL_UDP && (*cmsg).cmsg_type == UDP_GRO {
                return Some(std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const libc::c_int) as usize);
            }
            cmsg = libc::CMSG_NXTHDR(hdr, cmsg);
        }
    }
    None
}

/// An IPv4 or IPv6 socket address the kernel wrote.
fn sockaddr(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(s.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sin = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::new(ip.into(), u16::from_be(sin.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sin6 = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::new(ip.into(), u16::from_be(sin6.sin6_port)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::time::{Duration, Instant};

    fn a(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn local_addresses_hold_loopback_with_the_bound_port() {
        let v4 = local_addrs(SocketAddr::from(([0, 0, 0, 0], 4321)));
        assert!(v4.contains(&a(4321)), "{v4:?}");
        assert!(v4.iter().all(|x| x.is_ipv4() && x.port() == 4321));
        assert_eq!(local_addrs(a(9)), vec![a(9)]);
    }

    #[test]
    fn a_dual_stack_socket_talks_to_both_families_with_canonical_addresses() {
        let Ok(dual) = bind(SocketAddr::from(([0u16; 8], 0))) else {
            eprintln!("skipped: no IPv6 on this host");
            return;
        };
        let port = dual.local_addr().expect("addr").port();
        for (local, to) in [("127.0.0.1:0", "127.0.0.1"), ("[::1]:0", "::1")] {
            let other = bind(local.parse().expect("addr")).expect("bind");
            let to: SocketAddr = SocketAddr::new(to.parse().expect("ip"), port);
            other.send_to(b"ping", to).expect("send");
            let mut buf = [0u8; 16];
            let deadline = Instant::now() + Duration::from_secs(5);
            let from = loop {
                match dual.recv_from(&mut buf) {
                    Ok((_, from)) => break from,
                    Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
                    Err(e) => panic!("nothing received: {e}"),
                }
            };
            let from = canonical(from);
            assert_eq!(from, other.local_addr().expect("addr"), "the remote as it bound itself");
            // The reply goes to the canonical (IPv4 or IPv6) address.
            let mut gso = true;
            let sent = send_batch(dual.as_raw_fd(), &[(from, b"pong".to_vec())], &mut gso);
            assert_eq!(sent.datagrams, 1, "{sent:?}");
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match other.recv_from(&mut buf) {
                    Ok((n, _)) => break assert_eq!(&buf[..n], b"pong"),
                    Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
                    Err(e) => panic!("no reply: {e}"),
                }
            }
        }
    }

    #[test]
    fn groups_runs_of_equal_segments_per_destination() {
        let d = |port, len| (a(port), vec![0u8; len]);
        let batch = vec![d(1, 100), d(1, 100), d(1, 60), d(1, 100), d(2, 100), d(2, 200), d(1, 100)];
        let g = group(&batch, true);
        assert_eq!(
            g,
            vec![
                Group { start: 0, end: 3, segment: 100 }, // the shorter segment closes the run
                Group { start: 3, end: 4, segment: 100 },
                Group { start: 4, end: 5, segment: 100 }, // 200 > 100 cannot join
                Group { start: 5, end: 6, segment: 200 },
                Group { start: 6, end: 7, segment: 100 },
            ]
        );
        assert!(group(&batch, false).iter().all(|g| g.end - g.start == 1));
        let many: Vec<_> = (0..200).map(|_| d(1, 1278)).collect();
        let g = group(&many, true);
        assert!(g.iter().all(|g| g.end - g.start <= MAX_SEGMENTS && (g.end - g.start) * 1278 <= MAX_SEND));
        assert_eq!(g.iter().map(|g| g.end - g.start).sum::<usize>(), 200);
    }

    #[test]
    fn recv_batch_takes_a_gso_burst_and_single_datagrams_in_one_call() {
        for gro in [false, true] {
            let rx = bind(a(0)).expect("bind");
            let granted = gro && enable_gro(rx.as_raw_fd());
            let tx = bind(a(0)).expect("bind");
            let to = rx.local_addr().expect("addr");
            let mut batch: Vec<(SocketAddr, Vec<u8>)> =
                (0..20u8).map(|i| (to, vec![i; if i == 19 { 300 } else { 1000 }])).collect();
            let mut gso = true;
            assert_eq!(send_batch(tx.as_raw_fd(), &batch, &mut gso).datagrams, 20);
            batch.push((to, vec![99; 50]));
            tx.send_to(&batch[20].1, to).expect("send");
            let mut rb = RecvBatch::new(32, 65_535);
            let mut got: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
            let mut calls = 0;
            let deadline = Instant::now() + Duration::from_secs(5);
            while got.len() < 21 && Instant::now() < deadline {
                if rb.recv(rx.as_raw_fd()).expect("recv") == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
                calls += 1;
                got.extend(rb.datagrams().map(|d| d.expect("whole")).map(|(f, d)| (f, d.to_vec())));
            }
            let from = tx.local_addr().expect("addr");
            assert_eq!(got.len(), 21, "gro {gro} (granted {granted})");
            for (i, (f, d)) in got.iter().enumerate() {
                assert_eq!(*f, from);
                assert_eq!(d, &batch[i].1, "datagram {i}, gro {granted}");
            }
            assert!(calls <= 3, "{calls} receive calls for 21 datagrams");
        }
        // A datagram longer than its slot is reported, not cut.
        let rx = bind(a(0)).expect("bind");
        let tx = bind(a(0)).expect("bind");
        tx.send_to(&[1; 100], rx.local_addr().expect("addr")).expect("send");
        let mut rb = RecvBatch::new(4, 64);
        let deadline = Instant::now() + Duration::from_secs(5);
        while rb.recv(rx.as_raw_fd()).expect("recv") == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(rb.datagrams().collect::<Vec<_>>(), vec![None]);
    }

    #[test]
    fn a_gso_batch_arrives_as_separate_datagrams_with_the_right_bytes() {
        let rx = bind(a(0)).expect("bind");
        let tx = bind(a(0)).expect("bind");
        let to = rx.local_addr().expect("addr");
        let batch: Vec<(SocketAddr, Vec<u8>)> =
            (0..40u8).map(|i| (to, vec![i; if i == 39 { 500 } else { 1278 }])).collect();
        let mut gso = true;
        let sent = send_batch(tx.as_raw_fd(), &batch, &mut gso);
        assert_eq!(sent.datagrams, 40);
        assert_eq!(sent.dropped, 0);
        assert!(sent.syscalls <= 2, "{} syscalls for 40 datagrams", sent.syscalls);
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65_536];
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.len() < 40 && Instant::now() < deadline {
            match rx.recv_from(&mut buf) {
                Ok((n, _)) => got.push(buf[..n].to_vec()),
                Err(_) => std::thread::sleep(Duration::from_millis(1)),
            }
        }
        assert_eq!(got.len(), 40);
        for (i, d) in got.iter().enumerate() {
            assert_eq!(d, &batch[i].1, "datagram {i}");
        }
    }
}
