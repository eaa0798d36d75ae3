//! `vault-server serve --config FILE`: every serve setting from a TOML file.
//!
//! One precedence, for every setting: **flags, then environment variables (`VAULT_*`),
//! then the file, then the defaults**. The file's keys are the names of `serve`'s flags
//! (`max-upload-mib` or `max_upload_mib`), so there is one list of settings, `serve
//! --help`, and no second one to drift from it. A setting that neither a flag nor its
//! variable gave is passed to the command line as that flag, so it is parsed and checked
//! exactly as a flag would be. A key that is no flag of `serve`, or a table, is refused
//! with the list of keys: a misspelt `max_upload_mb` must not leave the default in force
//! silently.
//!
//! Values are never echoed in errors: a file may name key paths.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::parser::ValueSource;

/// The flag that names the file.
const CONFIG: &str = "config";

/// `args` with the settings of the `--config` file of `subcommand` added as flags, for
/// those not given by a flag or an environment variable. Unchanged for other subcommands,
/// without `--config`, or when `args` do not parse (clap then reports why).
pub fn apply(cmd: clap::Command, args: Vec<OsString>, subcommand: &str) -> anyhow::Result<Vec<OsString>> {
    // Required flags (`--data-dir`) may come from the file: parse leniently here.
    let lenient = cmd.clone().mut_subcommand(subcommand, |c| c.mut_args(|a| a.required(false))).ignore_errors(true);
    let Ok(matches) = lenient.try_get_matches_from(&args) else { return Ok(args) };
    let Some((name, sub)) = matches.subcommand() else { return Ok(args) };
    if name != subcommand {
        return Ok(args);
    }
    let Some(path) = sub.get_one::<PathBuf>(CONFIG) else { return Ok(args) };
    let command = cmd.find_subcommand(subcommand).expect("the subcommand parsed");
    let extra = flags(command, sub, path)?;
    let mut args = args;
    args.extend(extra);
    Ok(args)
}

/// The flags the file at `path` contributes.
fn flags(command: &clap::Command, given: &clap::ArgMatches, path: &Path) -> anyhow::Result<Vec<OsString>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read the config file {}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| anyhow::anyhow!("{} is not valid TOML: {}", path.display(), e.message()))?;
    let known = || {
        command
            .get_arguments()
            .filter(|a| a.get_long().is_some() && a.get_id() != CONFIG)
            .filter_map(|a| a.get_long())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = Vec::new();
    for (key, value) in &table {
        let id = key.replace('-', "_");
        let Some(arg) = command.get_arguments().find(|a| a.get_id() == id.as_str() && a.get_long().is_some()) else {
            bail!("{}: unknown setting {key:?}; the settings are serve's flags: {}", path.display(), known());
        };
        if id == CONFIG {
            bail!("{}: a config file cannot name another (\"{key}\")", path.display());
        }
        // Flags and environment variables win over the file.
        if matches!(given.value_source(&id), Some(ValueSource::CommandLine | ValueSource::EnvVariable)) {
            continue;
        }
        let long = format!("--{}", arg.get_long().expect("filtered above"));
        let takes_value = arg.get_action().takes_values();
        let values = match value {
            toml::Value::Array(items) => items.iter().collect(),
            v => vec![v],
        };
        for v in values {
            let text = match v {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) if !takes_value => {
                    if *b {
                        out.push(OsString::from(&long));
                    }
                    continue;
                }
                toml::Value::Boolean(b) => b.to_string(),
                _ => {
                    bail!("{}: setting {key:?} must be a string, a number, a boolean or a list of them", path.display())
                }
            };
            out.push(OsString::from(&long));
            out.push(OsString::from(text));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use clap::{Arg, ArgAction, Command};

    use super::*;

    fn cmd() -> Command {
        Command::new("vault-server").subcommand(
            Command::new("serve")
                .arg(Arg::new("config").long("config").value_parser(clap::value_parser!(PathBuf)))
                .arg(Arg::new("listen").long("listen").default_value("127.0.0.1:8700"))
                .arg(Arg::new("data_dir").long("data-dir").required(true))
                .arg(Arg::new("max_upload_mib").long("max-upload-mib").env("VAULT_TEST_MAX_UPLOAD"))
                .arg(Arg::new("witness").long("witness").action(ArgAction::Append))
                .arg(Arg::new("quiet").long("quiet").action(ArgAction::SetTrue)),
        )
    }

    fn with_file(text: &str, args: &[&str]) -> anyhow::Result<Vec<String>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault.toml");
        std::fs::write(&path, text).unwrap();
        let mut argv: Vec<OsString> = args.iter().map(OsString::from).collect();
        argv.extend([OsString::from("--config"), path.into_os_string()]);
        let out = apply(cmd(), argv, "serve")?;
        Ok(out.into_iter().map(|a| a.into_string().unwrap()).collect())
    }

    #[test]
    fn the_file_fills_in_what_flags_did_not_give() {
        let out = with_file(
            "listen = \"0.0.0.0:1\"\nmax_upload_mib = 5\nwitness = [\"a\", \"b\"]\nquiet = true\n",
            &["vault-server", "serve", "--listen", "127.0.0.1:2"],
        )
        .unwrap();
        // After the arguments given (`listen` among them, so not from the file), in the
        // file's key order.
        let tail = &out[6..];
        assert_eq!(tail, ["--max-upload-mib", "5", "--quiet", "--witness", "a", "--witness", "b"]);
    }

    #[test]
    fn a_required_flag_may_come_from_the_file() {
        let out = with_file("data-dir = \"/srv/vault\"\n", &["vault-server", "serve"]).unwrap();
        assert_eq!(&out[4..], ["--data-dir", "/srv/vault"]);
        let parsed = cmd().try_get_matches_from(&out).unwrap();
        let serve = parsed.subcommand_matches("serve").unwrap();
        assert_eq!(serve.get_one::<String>("data_dir").unwrap(), "/srv/vault");
    }

    #[test]
    fn unknown_keys_tables_and_bad_toml_are_refused() {
        let e = with_file("max_upload_mb = 5\n", &["vault-server", "serve"]).unwrap_err().to_string();
        assert!(e.contains("unknown setting \"max_upload_mb\"") && e.contains("max-upload-mib"), "{e}");
        let e = with_file("[serve]\nlisten = \"x\"\n", &["vault-server", "serve"]).unwrap_err().to_string();
        assert!(e.contains("unknown setting \"serve\""), "{e}");
        let e = with_file("listen = { a = 1 }\n", &["vault-server", "serve"]).unwrap_err().to_string();
        assert!(e.contains("must be a string"), "{e}");
        let e = with_file("listen = \n", &["vault-server", "serve"]).unwrap_err().to_string();
        assert!(e.contains("not valid TOML"), "{e}");
        let e = with_file("config = \"other.toml\"\n", &["vault-server", "serve"]).unwrap_err().to_string();
        assert!(e.contains("cannot name another"), "{e}");
    }

    #[test]
    fn other_subcommands_are_untouched() {
        let argv: Vec<OsString> = ["vault-server"].iter().map(OsString::from).collect();
        assert_eq!(apply(cmd(), argv.clone(), "serve").unwrap(), argv);
    }
}
