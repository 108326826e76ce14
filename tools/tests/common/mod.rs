//! Helpers shared by the tests that run the binary on loopback.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Output};
use std::time::Duration;

/// A running node, killed if the test ends early.
pub struct Node(pub Option<Child>);

impl Node {
    pub fn pid(&self) -> String {
        self.0.as_ref().map_or(0, Child::id).to_string()
    }

    /// Waits for the node to exit and returns what it printed.
    pub fn finish(mut self) -> Output {
        self.0.take().expect("running").wait_with_output().expect("the node exits")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn free_udp() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()).expect("a free UDP port")
}

pub fn free_tcp() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").and_then(|s| s.local_addr()).expect("a free TCP port")
}

pub fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// Sends `request` raw and returns (status, body); `None` if nothing answered.
pub fn raw_http(addr: SocketAddr, request: &[u8]) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    // A refused request may be cut off mid-write: read the answer all the same.
    let _ = s.write_all(request);
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map_or(String::new(), |(_, b)| b.to_string());
    Some((status, body))
}

pub fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    raw_http(addr, format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
}
