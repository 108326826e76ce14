//! `--config FILE` and `--print-config` for the node roles (tracker, seed, relay, peer).
//!
//! A config file is TOML whose keys are the role's long flags (`upload-kbps` or
//! `upload_kbps`), so it accepts every flag and needs no second schema to keep in step
//! with clap. Its entries become flags placed before the command line's, and clap
//! lets a later occurrence override an earlier one: flags override the file. A key
//! that is no flag of the role is an error naming the key and the file.

use clap::{ArgAction, ArgMatches, Command};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The roles that take `--config`.
pub const ROLES: [&str; 4] = ["tracker", "seed", "relay", "peer"];

/// Flags a config file may not set (they say where the config comes from or what to do).
const NOT_IN_FILE: [&str; 4] = ["config", "print-config", "help", "version"];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read --config {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("--config {path}: {source}")]
    Parse { path: PathBuf, source: Box<toml::de::Error> },
    #[error("--config {path}: unknown key `{key}`: `layerp2p {role}` has no flag --{flag}")]
    UnknownKey { path: PathBuf, key: String, role: String, flag: String },
    #[error("--config {path}: key `{key}` cannot be set in a config file")]
    NotAllowed { path: PathBuf, key: String },
    #[error("--config {path}: key `{key}`: {what}")]
    BadValue { path: PathBuf, key: String, what: String },
    #[error("--config needs a file name")]
    MissingFile,
}

/// `argv` with the entries of the role's `--config FILE` inserted as flags right after
/// the role's name (so flags on the command line come later and win). Unchanged when
/// the command is not a node role or has no `--config`.
pub fn expand(argv: Vec<OsString>, cli: &Command) -> Result<Vec<OsString>, ConfigError> {
    let Some((role_at, role)) = argv.iter().enumerate().skip(1).find_map(|(i, a)| {
        let a = a.to_str()?;
        (!a.starts_with('-')).then_some((i, a))
    }) else {
        return Ok(argv);
    };
    let Some(sub) = cli.find_subcommand(role).filter(|_| ROLES.contains(&role)) else { return Ok(argv) };
    let Some(path) = config_path(&argv[role_at + 1..])? else { return Ok(argv) };
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read { path: path.clone(), source })?;
    let flags = flags_from_toml(&text, &path, sub)?;
    let mut out = argv[..=role_at].to_vec();
    out.extend(flags.into_iter().map(OsString::from));
    out.extend(argv[role_at + 1..].iter().cloned());
    Ok(out)
}

/// The `--config` value among `args`, if any.
fn config_path(args: &[OsString]) -> Result<Option<PathBuf>, ConfigError> {
    let mut it = args.iter();
    let mut found = None;
    while let Some(a) = it.next() {
        let Some(s) = a.to_str() else { continue };
        if s == "--" {
            break;
        }
        if s == "--config" {
            found = Some(PathBuf::from(it.next().ok_or(ConfigError::MissingFile)?));
        } else if let Some(v) = s.strip_prefix("--config=") {
            found = Some(PathBuf::from(v));
        }
    }
    Ok(found)
}

/// The flags a config file's TOML stands for, checked against `role`'s arguments.
pub fn flags_from_toml(text: &str, path: &Path, role: &Command) -> Result<Vec<String>, ConfigError> {
    let table: toml::Table =
        toml::from_str(text).map_err(|e| ConfigError::Parse { path: path.into(), source: Box::new(e) })?;
    let mut flags = Vec::new();
    for (key, value) in &table {
        let flag = key.replace('_', "-");
        if NOT_IN_FILE.contains(&flag.as_str()) {
            return Err(ConfigError::NotAllowed { path: path.into(), key: key.clone() });
        }
        let Some(arg) = role.get_arguments().find(|a| a.get_long() == Some(flag.as_str())) else {
            return Err(ConfigError::UnknownKey {
                path: path.into(),
                key: key.clone(),
                role: role.get_name().to_string(),
                flag,
            });
        };
        let bad = |what: &str| ConfigError::BadValue { path: path.into(), key: key.clone(), what: what.into() };
        let switch = matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse);
        match value {
            toml::Value::Boolean(b) if switch => {
                if *b == matches!(arg.get_action(), ArgAction::SetTrue) {
                    flags.push(format!("--{flag}"));
                }
            }
            _ if switch => return Err(bad("a switch takes true or false")),
            // A repeatable flag (`--channel`): one flag per item; a table (`[[channel]]`)
            // becomes its `key=value,...` form.
            toml::Value::Array(items) if matches!(arg.get_action(), ArgAction::Append) => {
                for item in items {
                    let value = match item {
                        toml::Value::Table(t) => {
                            table_spec(t).ok_or_else(|| bad("a table holds numbers, strings or arrays of them"))?
                        }
                        v => scalar(v).ok_or_else(|| bad("expected numbers, strings or tables"))?,
                    };
                    flags.push(format!("--{flag}={value}"));
                }
            }
            toml::Value::Array(items) => {
                let parts: Result<Vec<String>, ConfigError> =
                    items.iter().map(|v| scalar(v).ok_or_else(|| bad("arrays hold numbers or strings"))).collect();
                flags.push(format!("--{flag}={}", parts?.join(",")));
            }
            v => flags.push(format!("--{flag}={}", scalar(v).ok_or_else(|| bad("expected a number or a string"))?)),
        }
    }
    Ok(flags)
}

/// A table as `key=value,key=value` (arrays joined with commas), the form of a
/// repeatable flag such as `--channel`; `None` if it nests tables.
fn table_spec(table: &toml::Table) -> Option<String> {
    let mut parts = Vec::new();
    for (key, value) in table {
        let value = match value {
            toml::Value::Array(items) => items.iter().map(scalar).collect::<Option<Vec<String>>>()?.join(","),
            v => scalar(v)?,
        };
        parts.push(format!("{key}={value}"));
    }
    Some(parts.join(","))
}

fn scalar(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The effective configuration of a role as TOML a `--config` file accepts: every flag
/// that has a value (given, from the file, or a default).
pub fn effective(role: &Command, matches: &ArgMatches) -> String {
    toml::to_string(&effective_table(role, matches)).unwrap_or_default()
}

/// `effective` as a table: what a node of `role` runs with.
pub fn effective_table(role: &Command, matches: &ArgMatches) -> toml::Table {
    let mut table = toml::Table::new();
    for arg in role.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if NOT_IN_FILE.contains(&long) {
            continue;
        }
        let id = arg.get_id().as_str();
        let value = match arg.get_action() {
            ArgAction::SetTrue | ArgAction::SetFalse => {
                matches.try_get_one::<bool>(id).ok().flatten().map(|b| toml::Value::Boolean(*b))
            }
            ArgAction::Append => matches.get_raw(id).map(|raw| {
                toml::Value::Array(raw.map(|v| toml::Value::String(v.to_string_lossy().into_owned())).collect())
            }),
            _ => matches.get_raw(id).map(|raw| {
                let parts: Vec<String> = raw.map(|v| v.to_string_lossy().into_owned()).collect();
                let joined = parts.join(",");
                match joined.parse::<i64>() {
                    Ok(i) => toml::Value::Integer(i),
                    Err(_) => toml::Value::String(joined),
                }
            }),
        };
        if let Some(v) = value {
            table.insert(long.to_string(), v);
        }
    }
    table
}

/// Every node role accepts a flag given twice, the later winning: that is how the
/// command line overrides the config file.
pub fn overridable(cli: Command) -> Command {
    ROLES.iter().fold(cli, |cli, role| {
        // clap panics on a subcommand it does not have (a test's smaller command).
        if cli.find_subcommand(role).is_some() {
            cli.mut_subcommand(*role, |s| s.args_override_self(true))
        } else {
            cli
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction};

    fn cli() -> Command {
        let relay = Command::new("relay")
            .arg(Arg::new("upload_kbps").long("upload-kbps").default_value("10000"))
            .arg(Arg::new("plan").long("plan"))
            .arg(Arg::new("json").long("json").action(ArgAction::SetTrue))
            .arg(Arg::new("config").long("config"))
            .arg(Arg::new("print_config").long("print-config").action(ArgAction::SetTrue));
        overridable(Command::new("layerp2p").subcommand(relay))
    }

    fn argv(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn file_sets_flags_and_the_command_line_overrides_them() {
        let dir = std::env::temp_dir().join(format!("layerp2p-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("relay.toml");
        std::fs::write(&path, "upload_kbps = 5000\nplan = [290, 230, 100]\njson = true\n").expect("write");
        let p = path.to_str().expect("utf-8 path");
        let cli = cli();
        let expanded =
            expand(argv(&["layerp2p", "relay", "--config", p, "--upload-kbps", "7000"]), &cli).expect("valid file");
        let m = cli.clone().try_get_matches_from(expanded).expect("clap accepts it");
        let (_, sub) = m.subcommand().expect("relay");
        assert_eq!(sub.get_one::<String>("upload_kbps").map(String::as_str), Some("7000"), "the flag wins");
        assert_eq!(sub.get_one::<String>("plan").map(String::as_str), Some("290,230,100"));
        assert!(sub.get_flag("json"));
        let printed = effective(cli.find_subcommand("relay").expect("relay"), sub);
        assert!(printed.contains("upload-kbps = 7000") && printed.contains("plan = \"290,230,100\""), "{printed}");

        std::fs::write(&path, "upload_kbps = 5000\nuplaod = 1\n").expect("write");
        let err = expand(argv(&["layerp2p", "relay", "--config", p]), &cli).expect_err("unknown key");
        assert!(err.to_string().contains("unknown key `uplaod`"), "{err}");
        std::fs::write(&path, "json = 3\n").expect("write");
        let err = expand(argv(&["layerp2p", "relay", "--config", p]), &cli).expect_err("bad switch");
        assert!(err.to_string().contains("key `json`"), "{err}");
        std::fs::write(&path, "config = \"x\"\n").expect("write");
        assert!(matches!(
            expand(argv(&["layerp2p", "relay", "--config", p]), &cli),
            Err(ConfigError::NotAllowed { .. })
        ));
        std::fs::write(&path, "upload_kbps = \n").expect("write");
        assert!(matches!(expand(argv(&["layerp2p", "relay", "--config", p]), &cli), Err(ConfigError::Parse { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn channel_tables_become_one_repeated_flag_each() {
        let relay = Command::new("relay")
            .arg(Arg::new("n_max").long("n-max"))
            .arg(Arg::new("channel").long("channel").action(ArgAction::Append));
        let text = "n-max = 40\n[[channel]]\nid = \"news\"\nplan = [290, 230, 100]\n[[channel]]\nid = \"sport\"\n";
        let flags = flags_from_toml(text, Path::new("relay.toml"), &relay).expect("valid");
        assert_eq!(flags, ["--channel=id=news,plan=290,230,100", "--channel=id=sport", "--n-max=40"]);
        let m = overridable(Command::new("layerp2p").subcommand(relay.clone()))
            .try_get_matches_from(["layerp2p", "relay", "--channel=id=a", "--channel=id=b"])
            .expect("clap accepts it");
        let (_, sub) = m.subcommand().expect("relay");
        let table = effective_table(&relay, sub);
        assert_eq!(table.get("channel").map(ToString::to_string).as_deref(), Some("[\"id=a\", \"id=b\"]"));
        let nested = "[[channel]]\nid = \"x\"\n[channel.inner]\na = 1\n";
        assert!(matches!(flags_from_toml(nested, Path::new("r.toml"), &relay), Err(ConfigError::BadValue { .. })));
    }
}
