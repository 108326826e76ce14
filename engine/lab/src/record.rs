//! What every run file carries, so a reader knows what made it: the file format's
//! schema version, the commit the program was built from and the command line.

use serde::{Deserialize, Serialize};

/// Version of the run files' layout; raised when a field changes meaning or goes away.
pub const SCHEMA_VERSION: u32 = 2;

/// The provenance of a run file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    pub schema: u32,
    /// `git rev-parse HEAD` at build time, `-dirty` when the tree had changes.
    pub commit: String,
    /// The command line, arguments quoted where the shell would need it.
    pub command: String,
}

impl Provenance {
    /// This process: its build's commit and its own command line.
    pub fn current() -> Provenance {
        // The program by its name, not by the path it was started from.
        let args = std::env::args().enumerate().map(|(i, a)| {
            if i == 0 {
                std::path::Path::new(&a).file_name().map_or(a.clone(), |n| n.to_string_lossy().into_owned())
            } else {
                a
            }
        });
        Provenance { schema: SCHEMA_VERSION, commit: commit().to_string(), command: command_line(args) }
    }
}

/// A run file: its provenance, then the fields of what the run produced.
#[derive(Debug, Serialize)]
pub struct Recorded<'a, T: Serialize> {
    #[serde(flatten)]
    pub provenance: Provenance,
    #[serde(flatten)]
    pub run: &'a T,
}

impl<'a, T: Serialize> Recorded<'a, T> {
    /// `run` stamped with this process's provenance.
    pub fn new(run: &'a T) -> Recorded<'a, T> {
        Recorded { provenance: Provenance::current(), run }
    }
}

/// The commit this program was built from.
pub fn commit() -> &'static str {
    env!("LAYERP2P_COMMIT")
}

/// `args` as one line a shell would read back the same.
pub fn command_line(args: impl IntoIterator<Item = String>) -> String {
    let quote = |a: String| {
        if !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c)) {
            a
        } else {
            format!("'{}'", a.replace('\'', r"'\''"))
        }
    };
    args.into_iter().map(quote).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_line_quotes_only_what_a_shell_would_split() {
        let args = ["layerp2p", "sim", "--mix", "free 0 10; it's 700 90", "--seed", "3"].map(String::from);
        assert_eq!(command_line(args), r"layerp2p sim --mix 'free 0 10; it'\''s 700 90' --seed 3");
    }

    #[test]
    fn a_recorded_run_carries_its_provenance_beside_its_own_fields() {
        let run = serde_json::json!({ "policy": "LayerP2P" });
        let v = serde_json::to_value(Recorded::new(&run)).expect("serialises");
        assert_eq!(v["schema"], SCHEMA_VERSION);
        assert_eq!(v["policy"], "LayerP2P");
        assert!(v["command"].is_string() && v["commit"].is_string());
    }

    #[test]
    fn the_build_knows_its_commit() {
        assert!(!commit().is_empty());
    }
}
