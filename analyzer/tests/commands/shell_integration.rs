//! `tcptape completions SHELL` and `tcptape man`: generated from the same definitions as
//! `--help`, so every subcommand and option is there; the bash script parses.

use std::process::{Command, Output};

fn tcptape(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tcptape"))
        .args(args)
        .output()
        .expect("tcptape runs")
}

const SUBCOMMANDS: [&str; 8] = [
    "info",
    "report",
    "diff",
    "replay",
    "export",
    "anonymize",
    "completions",
    "man",
];

#[test]
fn completions_name_every_subcommand_and_the_bash_script_parses() {
    for shell in ["bash", "zsh", "fish"] {
        let out = tcptape(&["completions", shell]);
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        for sub in SUBCOMMANDS {
            assert!(script.contains(sub), "{shell}: {sub} missing");
        }
        assert!(
            script.contains("allow-undecided"),
            "{shell}: diff's options missing"
        );
    }
    let script = tcptape(&["completions", "bash"]).stdout;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tcptape.bash");
    std::fs::write(&path, script).unwrap();
    let check = Command::new("bash")
        .arg("-n")
        .arg(&path)
        .output()
        .expect("bash runs");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let bad = tcptape(&["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn man_pages_cover_the_program_and_each_subcommand() {
    let page = String::from_utf8(tcptape(&["man"]).stdout).unwrap();
    assert!(page.contains(".TH tcptape 1"), "{page}");
    for sub in SUBCOMMANDS {
        assert!(page.contains(sub), "{sub} missing from tcptape(1)");
    }
    let diff = String::from_utf8(tcptape(&["man", "diff"]).stdout).unwrap();
    assert!(
        diff.contains(".TH tcptape\\-diff 1") || diff.contains(".TH tcptape-diff 1"),
        "{diff}"
    );
    assert!(diff.contains("allow\\-undecided"), "{diff}");
    let out = tcptape(&["man", "nosuch"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("known: info, report"));
}
