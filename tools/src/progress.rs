//! A progress line on stderr for long runs: redrawn in place twice a second on a
//! terminal, a plain line every 30 s when stderr is a log file.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Progress {
    live: bool,
    every: Duration,
    last: Option<Instant>,
}

impl Progress {
    pub fn new() -> Progress {
        let live = std::io::stderr().is_terminal();
        Progress { live, every: if live { Duration::from_millis(500) } else { Duration::from_secs(30) }, last: None }
    }

    /// Is it time for the next line? (`force` for the last one.)
    pub fn due(&self, force: bool) -> bool {
        force || self.last.is_none_or(|t| t.elapsed() >= self.every)
    }

    pub fn show(&mut self, line: &str) {
        self.last = Some(Instant::now());
        if self.live {
            // Clear to the end of the line: the new one may be shorter.
            eprint!("\r{line}\x1b[K");
            let _ = std::io::stderr().flush();
        } else {
            eprintln!("{line}");
        }
    }

    /// Ends the in-place line so later output starts on a new one.
    pub fn finish(&self) {
        if self.live && self.last.is_some() {
            eprintln!();
        }
    }
}
