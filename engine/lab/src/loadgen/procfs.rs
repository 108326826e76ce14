//! What the kernel knows about a run, read from /proc: CPU time of a thread or a
//! process (for the target's CPU use and the load generator's own), and the
//! system-wide UDP counters (for packet loss). Parsing never panics: an unreadable or
//! malformed file is `None`.

use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Clock ticks per second of /proc CPU times.
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// The calling thread's kernel id, for `CpuSource::thread`.
pub fn current_tid() -> u32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() as u32 }
}

/// utime + stime, in seconds, from the text of a `stat` file.
pub fn parse_cpu_seconds(stat: &str) -> Option<f64> {
    // The command name (field 2) may hold spaces and parentheses: skip past the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, utime field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / ticks_per_second())
}

/// Seconds a task spent waiting on a run queue (runnable, but no CPU free), from the
/// text of a `schedstat` file: "<on-cpu ns> <waiting ns> <timeslices>".
pub fn parse_wait_seconds(schedstat: &str) -> Option<f64> {
    let ns: u64 = schedstat.split_whitespace().nth(1)?.parse().ok()?;
    Some(ns as f64 / 1e9)
}

/// One thread or process whose CPU use is sampled.
#[derive(Clone, Debug)]
pub struct CpuSource {
    pub name: String,
    dir: PathBuf,
}

impl CpuSource {
    /// A thread of this process.
    pub fn thread(name: &str, tid: u32) -> CpuSource {
        CpuSource { name: name.into(), dir: PathBuf::from(format!("/proc/self/task/{tid}")) }
    }

    /// Another process (its stat sums all its threads; its schedstat is its main
    /// thread's).
    pub fn process(name: &str, pid: u32) -> CpuSource {
        CpuSource { name: name.into(), dir: PathBuf::from(format!("/proc/{pid}")) }
    }

    pub fn cpu_seconds(&self) -> Option<f64> {
        read(&self.dir.join("stat")).as_deref().and_then(parse_cpu_seconds)
    }

    /// Time spent runnable but not running: how much the machine held it back.
    pub fn wait_seconds(&self) -> Option<f64> {
        read(&self.dir.join("schedstat")).as_deref().and_then(parse_wait_seconds)
    }
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// CPU use of one source over an interval, in percent of one core.
#[derive(Clone, Debug, Serialize)]
pub struct CpuUse {
    pub name: String,
    pub percent: f64,
    /// Percent of the interval it was runnable but waiting for a core.
    pub waiting: f64,
}

/// Samples a set of sources: `sample` returns each one's CPU use since the last call.
#[derive(Debug)]
pub struct CpuMeter {
    sources: Vec<CpuSource>,
    /// (CPU seconds, waiting seconds) at the last sample.
    last: Vec<(Option<f64>, Option<f64>)>,
    at: Instant,
}

impl CpuMeter {
    pub fn new(sources: Vec<CpuSource>) -> CpuMeter {
        let last = sources.iter().map(|s| (s.cpu_seconds(), s.wait_seconds())).collect();
        CpuMeter { sources, last, at: Instant::now() }
    }

    pub fn sample(&mut self) -> Vec<CpuUse> {
        let wall = self.at.elapsed().as_secs_f64().max(1e-3);
        self.at = Instant::now();
        let share = |now: Option<f64>, then: Option<f64>| match (now, then) {
            (Some(n), Some(l)) => (n - l).max(0.0) / wall * 100.0,
            _ => 0.0,
        };
        let mut out = Vec::with_capacity(self.sources.len());
        for (src, last) in self.sources.iter().zip(self.last.iter_mut()) {
            let now = (src.cpu_seconds(), src.wait_seconds());
            out.push(CpuUse { name: src.name.clone(), percent: share(now.0, last.0), waiting: share(now.1, last.1) });
            *last = now;
        }
        out
    }
}

/// The kernel's UDP counters (all sockets of the machine).
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct UdpCounters {
    pub in_datagrams: u64,
    pub out_datagrams: u64,
    pub in_errors: u64,
    pub rcvbuf_errors: u64,
    pub sndbuf_errors: u64,
}

impl UdpCounters {
    pub fn read() -> Option<UdpCounters> {
        read(Path::new("/proc/net/snmp")).as_deref().and_then(UdpCounters::parse)
    }

    /// Parses /proc/net/snmp: a `Udp:` header line of names, then one of values.
    pub fn parse(snmp: &str) -> Option<UdpCounters> {
        let mut lines = snmp.lines().filter(|l| l.starts_with("Udp:"));
        let names: Vec<&str> = lines.next()?.split_whitespace().skip(1).collect();
        let values: Vec<u64> =
            lines.next()?.split_whitespace().skip(1).map(|v| v.parse().ok()).collect::<Option<_>>()?;
        let get = |name: &str| names.iter().position(|n| *n == name).and_then(|i| values.get(i).copied());
        Some(UdpCounters {
            in_datagrams: get("InDatagrams")?,
            out_datagrams: get("OutDatagrams")?,
            in_errors: get("InErrors")?,
            rcvbuf_errors: get("RcvbufErrors").unwrap_or(0),
            sndbuf_errors: get("SndbufErrors").unwrap_or(0),
        })
    }

    /// Counts since `earlier`.
    pub fn since(&self, earlier: &UdpCounters) -> UdpCounters {
        UdpCounters {
            in_datagrams: self.in_datagrams.saturating_sub(earlier.in_datagrams),
            out_datagrams: self.out_datagrams.saturating_sub(earlier.out_datagrams),
            in_errors: self.in_errors.saturating_sub(earlier.in_errors),
            rcvbuf_errors: self.rcvbuf_errors.saturating_sub(earlier.rcvbuf_errors),
            sndbuf_errors: self.sndbuf_errors.saturating_sub(earlier.sndbuf_errors),
        }
    }
}

/// Datagrams the kernel dropped on this process's own UDP sockets (full receive
/// buffers), from the `drops` column of /proc/net/udp{,6} for the socket inodes
/// behind /proc/self/fd. Unlike the machine-wide counters, other programs' traffic
/// does not count.
pub fn own_udp_drops() -> Option<u64> {
    let inodes: std::collections::HashSet<u64> = std::fs::read_dir("/proc/self/fd")
        .ok()?
        .filter_map(|e| {
            let link = std::fs::read_link(e.ok()?.path()).ok()?;
            let s = link.to_str()?;
            s.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect();
    let mut total = 0;
    for file in ["/proc/net/udp", "/proc/net/udp6"] {
        if let Some(text) = read(Path::new(file)) {
            total += udp_drops_of(&text, &inodes);
        }
    }
    Some(total)
}

/// Sums the `drops` column of /proc/net/udp lines whose inode is in `inodes`.
pub fn udp_drops_of(table: &str, inodes: &std::collections::HashSet<u64>) -> u64 {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let inode: u64 = f.get(9)?.parse().ok()?;
            let drops: u64 = f.get(12)?.parse().ok()?;
            inodes.contains(&inode).then_some(drops)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_spaces_and_parens_in_the_name_parses() {
        let ticks = ticks_per_second();
        let stat = "4242 (my (odd) name) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0";
        let s = parse_cpu_seconds(stat).expect("parses");
        assert!((s - 300.0 / ticks).abs() < 1e-9, "{s}");
        assert_eq!(parse_cpu_seconds("garbage"), None);
        assert_eq!(parse_cpu_seconds("1 (x) S 1 2"), None);
    }

    #[test]
    fn own_thread_cpu_time_is_readable_and_grows() {
        let src = CpuSource::thread("me", current_tid());
        let before = src.cpu_seconds().expect("own stat readable");
        let t = Instant::now();
        let mut x = 0u64;
        while t.elapsed().as_millis() < 150 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let after = src.cpu_seconds().expect("own stat readable");
        assert!(after > before, "{before} -> {after}");
        assert!(src.wait_seconds().is_some(), "own schedstat readable");
        assert_eq!(parse_wait_seconds("100 2500000000 7\n"), Some(2.5));
        assert_eq!(parse_wait_seconds("100"), None);
    }

    #[test]
    fn socket_drops_are_summed_for_our_inodes_only() {
        let table = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
            1: 0100007F:9C40 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 111 2 0000000000000000 5\n\
            2: 0100007F:9C41 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 222 2 0000000000000000 7\n\
            3: 0100007F:9C42 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 333 2 0000000000000000 11\n";
        let ours: std::collections::HashSet<u64> = [111, 333].into_iter().collect();
        assert_eq!(udp_drops_of(table, &ours), 16);
        let _keep = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        assert_eq!(own_udp_drops(), Some(0), "a fresh idle socket has dropped nothing");
    }

    #[test]
    fn snmp_udp_lines_parse_by_name() {
        let snmp = "Ip: Forwarding DefaultTTL\nIp: 1 64\n\
                    Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors\n\
                    Udp: 100 2 7 90 5 1 0\nUdpLite: InDatagrams\nUdpLite: 0\n";
        let c = UdpCounters::parse(snmp).expect("parses");
        assert_eq!(
            c,
            UdpCounters { in_datagrams: 100, out_datagrams: 90, in_errors: 7, rcvbuf_errors: 5, sndbuf_errors: 1 }
        );
        assert_eq!(UdpCounters::parse("Udp: InDatagrams\nUdp: x\n"), None);
        assert!(UdpCounters::read().is_some(), "this machine has /proc/net/snmp");
    }
}
