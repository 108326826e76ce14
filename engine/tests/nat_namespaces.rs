//! Real NATs: Linux network namespaces joined by veth pairs, each home behind its own
//! router that masquerades with nftables and drops unsolicited inbound UDP (stateful
//! filtering). A public side holds the tracker, the seed and one public peer; two
//! homes sit behind port-preserving NATs (endpoint-independent mapping, "cone") and
//! one behind `masquerade fully-random` (a new port per destination, "symmetric").
//!
//! Needs root (CI runs as root); skipped with a message otherwise. Every address is
//! inside namespaces the test creates (198.18.0.0/15, the benchmarking range, on the
//! public side; 10.77.x.0/24 in homes), and a guard deletes them even when it fails.

use layerp2p_codec::Kbps;
use layerp2p_codec::synthetic::{SyntheticConfig, SyntheticSource};
use layerp2p_engine::runtime::role::{NodeSpec, run_node, run_tracker};
use layerp2p_engine::runtime::status::NodeSummary;
use layerp2p_engine::tracker::TrackerConfig;
use layerp2p_engine::wire::NatType;
use layerp2p_engine::{PeerConfig, Policy};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Runs `args` (a command line), failing with its output if it fails.
fn sh(args: &str) {
    let parts: Vec<&str> = args.split_whitespace().collect();
    let out = Command::new(parts[0]).args(&parts[1..]).output().unwrap_or_else(|e| panic!("{args}: {e}"));
    assert!(out.status.success(), "{args}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Runs `script` through `nft -f -` inside namespace `ns`.
fn nft(ns: &str, script: &str) {
    use std::io::Write;
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("nft runs");
    child.stdin.take().expect("stdin").write_all(script.as_bytes()).expect("script written");
    let out = child.wait_with_output().expect("nft ends");
    assert!(out.status.success(), "nft in {ns}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The namespaces of one run; deleting a namespace deletes its veth ends too.
struct Net {
    names: Vec<String>,
}

impl Net {
    fn ns(&mut self, name: &str) -> String {
        let full = format!("lpnat{}-{name}", std::process::id());
        sh(&format!("ip netns add {full}"));
        self.names.push(full.clone());
        sh(&format!("ip -n {full} link set lo up"));
        full
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for n in self.names.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

/// A home router: `wan` towards the public side (198.18.k.2), `lan` to the home host
/// (10.77.k.1); masquerades on `wan`, lets in only replies. Unsolicited packets to
/// the router itself are dropped too, before conntrack records them (as home routers
/// do): a recorded one would make the masquerade move a later mapping to a new port.
fn home(net: &mut Net, public: &str, k: u8, random_ports: bool) -> String {
    let router = net.ns(&format!("r{k}"));
    let host = net.ns(&format!("h{k}"));
    sh(&format!("ip link add w{k} netns {public} type veth peer name wan netns {router}"));
    sh(&format!("ip link add lan netns {router} type veth peer name eth0 netns {host}"));
    sh(&format!("ip -n {public} addr add 198.18.{k}.1/24 dev w{k}"));
    sh(&format!("ip -n {public} link set w{k} up"));
    sh(&format!("ip -n {router} addr add 198.18.{k}.2/24 dev wan"));
    sh(&format!("ip -n {router} addr add 10.77.{k}.1/24 dev lan"));
    sh(&format!("ip -n {router} link set wan up"));
    sh(&format!("ip -n {router} link set lan up"));
    sh(&format!("ip -n {router} route add default via 198.18.{k}.1"));
    sh(&format!("ip netns exec {router} sysctl -qw net.ipv4.ip_forward=1"));
    sh(&format!("ip -n {host} addr add 10.77.{k}.2/24 dev eth0"));
    sh(&format!("ip -n {host} link set eth0 up"));
    sh(&format!("ip -n {host} route add default via 10.77.{k}.1"));
    let masquerade = if random_ports { "masquerade fully-random" } else { "masquerade" };
    nft(
        &router,
        &format!(
            "table ip nat {{\n chain post {{\n type nat hook postrouting priority srcnat\n oifname \"wan\" {masquerade}\n }}\n}}\n\
             table ip filter {{\n chain forward_home {{\n type filter hook forward priority 0; policy drop\n\
             iifname \"lan\" accept\n iifname \"wan\" ct state established,related accept\n }}\n\
             chain input_home {{\n type filter hook input priority 0; policy accept\n\
             iifname \"wan\" ct state new drop\n }}\n}}\n"
        ),
    );
    host
}

/// Runs `f` on a new thread inside namespace `ns` (sockets it binds, and threads it
/// starts, live there).
fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // SAFETY: setns on a namespace file we hold open; it changes this thread only.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
}

fn node(ns: &str, spec: NodeSpec, source: Option<SyntheticSource>, stop: Arc<AtomicBool>) -> JoinHandle<NodeSummary> {
    in_ns(ns, move || {
        let source = source.map(|s| Box::new(s) as Box<dyn layerp2p_codec::LcSource>);
        run_node(spec, source, stop, &mut |_| {}).expect("node runs")
    })
}

/// A host behind a plain router (no NAT) whose uplink `tbf` caps at `kbit`.
fn capped_host(net: &mut Net, public: &str, k: u8, kbit: u32) -> String {
    let host = net.ns(&format!("u{k}"));
    sh(&format!("ip link add w{k} netns {public} type veth peer name eth0 netns {host}"));
    sh(&format!("ip -n {public} addr add 198.18.{k}.1/24 dev w{k}"));
    sh(&format!("ip -n {public} link set w{k} up"));
    sh(&format!("ip -n {host} addr add 198.18.{k}.2/24 dev eth0"));
    sh(&format!("ip -n {host} link set eth0 up"));
    sh(&format!("ip -n {host} route add default via 198.18.{k}.1"));
    // A home uplink: the rate, a 400 ms queue (bufferbloat the controller must avoid).
    sh(&format!("ip netns exec {host} tc qdisc add dev eth0 root tbf rate {kbit}kbit burst 4kb latency 400ms"));
    host
}

/// The seed at 198.18.0.1:7701 in namespace `ns`, uploading `upload_kbps`; with
/// `embedded`, it also runs the tracker.
fn seed(
    ns: &str,
    tracker: SocketAddr,
    upload_kbps: u32,
    embedded: bool,
    stop: Arc<AtomicBool>,
) -> JoinHandle<NodeSummary> {
    let video = SyntheticConfig::prototype();
    let mut peer = PeerConfig::seed(Policy::LayerP2P, video.plan.clone(), Kbps(upload_kbps));
    peer.tracker = Some(tracker);
    peer.lag = Duration::from_secs(6);
    let spec = NodeSpec {
        peer,
        listen: "198.18.0.1:7701".parse().expect("addr"),
        shards: 1,
        embedded_tracker: embedded.then_some(tracker),
        first_core: 1,
        rng_seed: 2,
    };
    node(ns, spec, Some(SyntheticSource::new(video).expect("source")), stop)
}

fn viewer(tracker: SocketAddr, listen: &str, n_min: usize, seed: u64) -> NodeSpec {
    let mut pc = PeerConfig::peer(Policy::LayerP2P, SyntheticConfig::prototype().plan, Kbps(700));
    pc.tracker = Some(tracker);
    pc.lag = Duration::from_secs(6);
    pc.startup = Duration::from_secs(8);
    pc.n_min = n_min;
    NodeSpec {
        peer: pc,
        listen: listen.parse().expect("addr"),
        shards: 1,
        embedded_tracker: None,
        first_core: 0,
        rng_seed: seed,
    }
}

/// LC bytes `of` sent to and received from the neighbour whose address starts with `addr`.
fn traffic_with(of: &NodeSummary, addr: &str) -> Option<(u64, u64)> {
    of.neighbours.iter().find(|n| n.addr.starts_with(addr)).map(|n| (n.bytes_up, n.bytes_down))
}

#[test]
fn peers_behind_real_nats_punch_through_and_a_symmetric_one_trades_with_open_peers() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: creating network namespaces needs root (CI runs this test as root)");
        return;
    }
    for tool in ["ip", "nft"] {
        let found =
            Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().is_ok_and(|o| o.status.success());
        assert!(found, "{tool} is missing: install iproute2 and nftables (.ci/run does)");
    }
    let mut net = Net { names: Vec::new() };
    let public = net.ns("pub");
    // The public nodes' address, on the namespace's loopback (reached over each w{k}).
    sh(&format!("ip -n {public} addr add 198.18.0.1/32 dev lo"));
    sh(&format!("ip netns exec {public} sysctl -qw net.ipv4.ip_forward=1"));
    let cone_a = home(&mut net, &public, 1, false);
    let cone_b = home(&mut net, &public, 2, false);
    let symmetric = home(&mut net, &public, 3, true);

    let stop = Arc::new(AtomicBool::new(false));
    let tracker: SocketAddr = "198.18.0.1:7700".parse().expect("addr");
    let t_stop = stop.clone();
    let tracker_run = in_ns(&public, move || {
        run_tracker(tracker, TrackerConfig::default(), 1, 0, t_stop, &mut |_| {}).expect("tracker runs")
    });
    let seed_run = seed(&public, tracker, 2000, false, stop.clone());
    std::thread::sleep(Duration::from_millis(500));
    let open_run = node(&public, viewer(tracker, "198.18.0.1:7702", 10, 3), None, stop.clone());
    // Cone A stops seeking once it has two neighbours (the seed and the open peer):
    // the late joiner B must reach it, which a NAT that drops unsolicited packets
    // allows only through an introduction.
    let a_run = node(&cone_a, viewer(tracker, "0.0.0.0:0", 2, 4), None, stop.clone());
    let c_stop = Arc::new(AtomicBool::new(false));
    let c_run = node(&symmetric, viewer(tracker, "0.0.0.0:0", 10, 6), None, c_stop.clone());
    std::thread::sleep(Duration::from_secs(10));
    // B and C stop first, so their own tables still hold their neighbours when they
    // report (a neighbour's goodbye would empty them).
    let b_stop = Arc::new(AtomicBool::new(false));
    let b_run = node(&cone_b, viewer(tracker, "0.0.0.0:0", 10, 5), None, b_stop.clone());
    std::thread::sleep(Duration::from_secs(30));
    b_stop.store(true, Ordering::Relaxed);
    let b = b_run.join().expect("B");
    c_stop.store(true, Ordering::Relaxed);
    let c = c_run.join().expect("C");
    stop.store(true, Ordering::Relaxed);
    let (a, open) = (a_run.join().expect("A"), open_run.join().expect("open"));
    let (seed, tracker) = (seed_run.join().expect("seed"), tracker_run.join().expect("tracker"));
    for (name, s) in [("tracker", &tracker), ("seed", &seed), ("open", &open), ("A", &a), ("B", &b), ("C", &c)] {
        eprintln!("{name}: {}{:?}\n", s.text(), s.neighbours);
    }

    let nat = |s: &NodeSummary| s.nat.as_ref().map(|n| n.nat);
    assert_eq!(nat(&open), Some(NatType::Open));
    assert_eq!(nat(&a), Some(NatType::Cone));
    assert_eq!(nat(&b), Some(NatType::Cone));
    assert_eq!(nat(&c), Some(NatType::Symmetric));
    let a_seen = a.nat.as_ref().and_then(|n| n.reflexive).expect("A's reflexive address");
    assert_eq!(a_seen.ip().to_string(), "198.18.1.2", "the tracker sees A at its router");

    // B (late, seeking) and A (not seeking) became neighbours through the NATs and
    // traded LCs both ways.
    let (b_to_a, a_to_b) = traffic_with(&b, "198.18.1.2:").expect("B has A as a neighbour");
    assert!(b_to_a > 0 && a_to_b > 0, "B sent A {b_to_a} B, got {a_to_b} B");
    assert!(tracker.tracker.as_ref().is_some_and(|t| t.introductions > 0));

    // The symmetric one trades with the open peer and plays its base layer.
    let (c_up, c_down) = traffic_with(&c, "198.18.0.1:7702").expect("C has the open peer as a neighbour");
    assert!(c_up > 0 && c_down > 0, "C sent the open peer {c_up} B, got {c_down} B");
    let base = c.alpha[0].unwrap_or(0.0);
    assert!(base >= 0.9, "C played {base:.3} of the base layer");
    drop(net);
}

/// Runs a seed short of upload, open helpers and one measured peer behind a `tbf`
/// cap, in namespaces of its own (named after the cap, so runs can go side by side);
/// returns the measured peer's estimates (kbps, queueing delay) second by second.
fn measured_upload(cap_kbit: u32) -> Vec<(f64, Option<f64>)> {
    let mut net = Net { names: Vec::new() };
    let public = net.ns(&format!("p{cap_kbit}"));
    sh(&format!("ip -n {public} addr add 198.18.0.1/32 dev lo"));
    sh(&format!("ip netns exec {public} sysctl -qw net.ipv4.ip_forward=1"));
    let host = capped_host(&mut net, &public, 9 + (cap_kbit / 1000) as u8, cap_kbit);
    let stop = Arc::new(AtomicBool::new(false));
    let tracker: SocketAddr = "198.18.0.1:7700".parse().expect("addr");
    // The seed's upload is scarce, so the viewers ask the measured peer for much.
    let seed_run = seed(&public, tracker, 1000, true, stop.clone());
    std::thread::sleep(Duration::from_millis(500));
    // Enough viewers that what they ask of the measured peer is above its cap.
    let helper_count = (cap_kbit / 200).max(4) as u16;
    let helpers: Vec<_> = (0..helper_count)
        .map(|i| {
            let listen = format!("198.18.0.1:{}", 7710 + i);
            let mut spec = viewer(tracker, &listen, 10, 20 + u64::from(i));
            spec.peer.upload = Kbps(300);
            // Every layer for whoever asks: what the helpers ask of the measured peer,
            // and so its climb, must not hang on who uploaded to whom lately
            // (decision 0018); this measures the uplink, not the incentive.
            spec.peer.incentive.upper_layers_window = None;
            node(&public, spec, None, stop.clone())
        })
        .collect();
    let mut spec = viewer(tracker, "0.0.0.0:0", 10, 9);
    spec.peer.upload = Kbps(1_000_000);
    spec.peer.upload_auto = true;
    spec.peer.incentive.upper_layers_window = None;
    let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = samples.clone();
    let m_stop = stop.clone();
    let measured = in_ns(&host, move || {
        run_node(spec, None, m_stop, &mut |s| {
            if let Some(u) = &s.upload_estimate
                && let Ok(mut l) = log.lock()
            {
                l.push((u.kbps, u.queueing_delay_ms));
            }
        })
        .expect("node runs")
    });
    // Stops every node even if this thread unwinds, before the namespaces go.
    struct StopOnDrop(Arc<AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let stopper = StopOnDrop(stop);
    std::thread::sleep(Duration::from_secs(72));
    drop(stopper);
    let m = measured.join().expect("measured");
    eprintln!("measured behind {cap_kbit} kbit/s: {}", m.text());
    for h in helpers {
        h.join().expect("helper");
    }
    seed_run.join().expect("seed");
    drop(net);
    samples.lock().map(|s| s.clone()).unwrap_or_default()
}

#[test]
fn the_measured_upload_finds_a_tbf_capped_uplink() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: creating network namespaces needs root (CI runs this test as root)");
        return;
    }
    // Both caps at once, each in its own namespaces: the test takes one run's time.
    let runs: Vec<_> =
        [500u32, 1500].into_iter().map(|cap| (cap, std::thread::spawn(move || measured_upload(cap)))).collect();
    // Every run ends (and cleans up) before any failure is reported.
    let results: Vec<_> = runs.into_iter().map(|(cap, r)| (cap, r.join())).collect();
    for (cap, est) in results {
        let est = est.unwrap_or_else(|_| panic!("the run at {cap} kbit/s failed"));
        let line: Vec<String> = est.iter().map(|(k, d)| format!("{k:.0}/{:.0}", d.unwrap_or(-1.0))).collect();
        eprintln!("cap {cap} kbit/s, kbps/ms each second: {}", line.join(" "));
        assert!(est.len() >= 68, "{} status lines", est.len());
        let late = &est[60..];
        let mean = late.iter().map(|(k, _)| k).sum::<f64>() / late.len() as f64;
        // LC data only is counted; headers and control traffic take the rest.
        assert!((mean / f64::from(cap) - 1.0).abs() <= 0.2, "cap {cap}: estimate {mean:.0} kbps after 60 s");
        // From the first climb on, not only once settled: every second's queue.
        let worst = est.iter().filter_map(|(_, d)| *d).fold(0.0, f64::max);
        assert!(worst < 150.0, "cap {cap}: queueing delay up to {worst:.0} ms");
    }
}
