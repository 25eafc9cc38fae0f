//! `tcptape-record completions SHELL` and `tcptape-record man`, from the clap definitions.

use std::process::{Command, Output};

fn record(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tcptape-record"))
        .args(args)
        .output()
        .expect("tcptape-record runs")
}

#[test]
fn completions_and_man_pages_cover_the_options_and_subcommands() {
    for shell in ["bash", "zsh", "fish"] {
        let out = record(&["completions", shell]);
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        for word in ["check", "synth", "--port", "--max-size", "--stage"] {
            assert!(
                script.contains(word.trim_start_matches('-')),
                "{shell}: {word}"
            );
        }
    }
    let page = String::from_utf8(record(&["man"]).stdout).unwrap();
    assert!(
        page.contains(".TH tcptape\\-record 1") || page.contains(".TH tcptape-record 1"),
        "{page}"
    );
    assert!(page.contains("max\\-size"), "{page}");
    let check = String::from_utf8(record(&["man", "check"]).stdout).unwrap();
    assert!(check.contains("tcptape\\-record\\-check") || check.contains("tcptape-record-check"));
    assert_eq!(record(&["man", "nosuch"]).status.code(), Some(2));
}
