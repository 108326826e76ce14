//! Helpers of the tests that run the deployable roles (`runtime::role`) on loopback.

use layerp2p_codec::LcSource;
use layerp2p_engine::runtime::playout::PlayoutSink;
use layerp2p_engine::runtime::role::{NodeSpec, run_node_playing};
use layerp2p_engine::runtime::status::{NodeSummary, Status};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// A loopback address no one is bound to now.
pub fn free_port() -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.local_addr().expect("addr")
}

/// Runs `spec` for `secs` (a seed ingests `source`; what the node plays goes to
/// `output`); the handle gives its summary.
pub fn run_for(
    spec: NodeSpec,
    source: Option<Box<dyn LcSource>>,
    output: Option<PlayoutSink>,
    secs: u64,
) -> JoinHandle<NodeSummary> {
    run_for_observed(spec, source, output, secs, |_| {})
}

/// `run_for`, calling `on_status` at every status line (once a second).
pub fn run_for_observed(
    spec: NodeSpec,
    source: Option<Box<dyn LcSource>>,
    output: Option<PlayoutSink>,
    secs: u64,
    mut on_status: impl FnMut(&Status) + Send + 'static,
) -> JoinHandle<NodeSummary> {
    std::thread::spawn(move || {
        let stop = Arc::new(AtomicBool::new(false));
        let timer = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(secs));
            timer.store(true, Ordering::Relaxed);
        });
        run_node_playing(spec, source, output, stop, &mut on_status).expect("node runs")
    })
}
