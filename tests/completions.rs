//! Shell completions and man pages from the real `vault-cli`: the bash script is valid
//! bash and completes commands when bash runs it; zsh and fish scripts name every command;
//! `man --out DIR` writes a page for every command and subcommand `--help` lists.

use std::collections::BTreeSet;
use std::process::Command;

use vault_tests::{Out, bin, run};

fn cli(args: &[&str]) -> Out {
    run(Command::new(bin("vault-cli")).args(args).env_clear())
}

/// Every command path (`["case", "create"]`, ...) that `--help` lists, recursively, with
/// its one-line description.
fn commands(prefix: &[String]) -> Vec<(Vec<String>, String)> {
    let mut args: Vec<&str> = prefix.iter().map(String::as_str).collect();
    args.push("--help");
    let help = cli(&args).ok();
    let mut found = Vec::new();
    let Some((_, list)) = help.split_once("Commands:\n") else { return found };
    for line in list.lines().take_while(|l| l.starts_with("  ")) {
        let line = line.trim();
        let (name, about) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        if name == "help" {
            continue;
        }
        let mut path = prefix.to_vec();
        path.push(name.to_owned());
        found.push((path.clone(), about.trim().to_owned()));
        found.extend(commands(&path));
    }
    found
}

#[test]
fn bash_completions_are_valid_bash_and_complete_commands_and_flags() {
    let script = cli(&["completions", "bash"]).ok();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault-cli.bash");
    std::fs::write(&path, &script).unwrap();
    let syntax = Command::new("bash").arg("-n").arg(&path).output().unwrap();
    assert!(syntax.status.success(), "bash -n: {}", String::from_utf8_lossy(&syntax.stderr));

    // What bash offers after `vault-cli WORD<TAB>`, with the script loaded as bash would.
    let complete = |line: &str| -> BTreeSet<String> {
        let words: Vec<&str> = line.split(' ').collect();
        let shell = format!(
            "source {script}; COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}; \
             f=$(complete -p vault-cli | sed -n 's/.* -F \\([^ ]*\\) .*/\\1/p'); [ -n \"$f\" ] || exit 9; \
             \"$f\" vault-cli '{cur}' '{prev}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script = path.display(),
            words = words.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(" "),
            cword = words.len() - 1,
            cur = words[words.len() - 1],
            prev = words[words.len() - 2],
        );
        let out = Command::new("bash").args(["-c", &shell]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().lines().filter(|l| !l.is_empty()).map(str::to_owned).collect()
    };
    assert_eq!(complete("vault-cli ca"), BTreeSet::from(["case".to_owned()]));
    let case = complete("vault-cli case ");
    for sub in ["create", "approve", "close", "show", "list"] {
        assert!(case.contains(sub), "`vault-cli case <TAB>` offers {case:?}");
    }
    let fetch = complete("vault-cli fetch --");
    for flag in ["--reason", "--out", "--server", "--ca-cert"] {
        assert!(fetch.contains(flag), "`vault-cli fetch --<TAB>` offers {fetch:?}");
    }
    // Two levels down, and a command whose name has a hyphen (clap-rs/clap#6421).
    assert!(complete("vault-cli case create --").contains("--kind"));
    assert!(complete("vault-cli case release-hold --").contains("--reason"));
    // A word no command starts with completes to nothing.
    assert!(complete("vault-cli zz").is_empty());
}

#[test]
fn zsh_and_fish_completions_name_every_command() {
    let all = commands(&[]);
    assert!(all.len() > 30, "found only {} commands in --help", all.len());
    let zsh = cli(&["completions", "zsh"]).ok();
    assert!(zsh.starts_with("#compdef vault-cli"), "{}", &zsh[..100.min(zsh.len())]);
    let fish = cli(&["completions", "fish"]).ok();
    for (path, _) in &all {
        let name = path.last().unwrap();
        assert!(zsh.contains(&format!("'{name}:")), "zsh completions lack {path:?}");
        assert!(fish.contains(&format!("-a \"{name}\"")), "fish completions lack {path:?}");
    }
}

#[test]
fn fail_completions_for_an_unknown_shell_is_a_usage_error() {
    cli(&["completions", "tcsh"]).usage("invalid value 'tcsh'");
}

#[test]
fn man_writes_a_page_for_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man1");
    let listed = cli(&["man", "--out", out.to_str().unwrap()]).ok();
    let written: BTreeSet<String> =
        std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(listed.lines().count(), written.len(), "stdout names each page it wrote: {listed}");

    let top = std::fs::read_to_string(out.join("vault-cli.1")).unwrap();
    assert!(top.starts_with(".ie \\n(.g .ds Aq") || top.contains(".TH vault-cli 1"), "{}", &top[..200]);
    let all = commands(&[]);
    let mut expected = BTreeSet::from(["vault-cli.1".to_owned()]);
    for (path, about) in &all {
        let page = format!("vault-cli-{}.1", path.join("-"));
        let text = std::fs::read_to_string(out.join(&page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(&format!(".TH vault-cli-{} 1", path.join("-"))), "{page}: no title");
        // The page describes the command as its help does (in roff, '-' and '\'' are escaped).
        let first_words: String = about.split(' ').take(3).collect::<Vec<_>>().join(" ");
        let plain = text.replace("\\-", "-").replace("\\*(Aq", "'");
        assert!(plain.contains(&first_words), "{page} lacks {first_words:?}");
        expected.insert(page);
    }
    assert_eq!(written, expected);
}

#[test]
fn fail_man_into_a_file_says_so_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    cli(&["man", "--out", file.to_str().unwrap()]).error("cannot create");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");
}
