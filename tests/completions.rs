//! `rumor completions` and `rumor man`, read by the programs that use them:
//! the bash script is loaded into a real bash and asked to complete.

mod support;

use std::process::Command;

const RUMOR: &str = env!("CARGO_BIN_EXE_rumor");

/// The words bash's completion offers for the command line `words`, the
/// last word being the one under the cursor.
#[track_caller]
fn bash_complete(bash: &std::path::Path, words: &[&str]) -> Vec<String> {
    // The completion function takes (command, current word, previous word)
    // and reads COMP_WORDS/COMP_CWORD, as bash's `complete -F` calls it.
    let script = r#"
        set -e
        source <("$RUMOR" completions bash)
        COMP_WORDS=("$@")
        COMP_CWORD=$(( $# - 1 ))
        COMP_LINE="$*"
        COMP_POINT=${#COMP_LINE}
        _rumor rumor "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
        printf '%s\n' "${COMPREPLY[@]}"
    "#;
    let out = support::ok(
        Command::new(bash)
            .arg("-c")
            .arg(script)
            .arg("bash")
            .args(words)
            .env("RUMOR", RUMOR),
    );
    out.lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn bash_completes_subcommands_and_shells() {
    let Some(bash) = support::require("bash") else {
        return;
    };
    let mut offered = bash_complete(&bash, &["rumor", "re"]);
    offered.sort();
    assert!(offered.contains(&"renew".to_owned()), "{offered:?}");
    assert!(offered.iter().all(|w| w.starts_with("re")), "{offered:?}");
    // `rekey`, `report` and `retire` join when they exist; nothing else starts "re".
    assert!(
        offered
            .iter()
            .all(|w| w == "renew" || w == "rekey" || w == "report" || w == "retire"),
        "{offered:?}"
    );

    let mut shells = bash_complete(&bash, &["rumor", "completions", ""]);
    shells.retain(|w| !w.starts_with('-'));
    shells.sort();
    assert_eq!(shells, ["bash", "fish", "zsh"]);
}

#[test]
fn zsh_and_fish_scripts_are_written() {
    let zsh = support::ok(Command::new(RUMOR).args(["completions", "zsh"]));
    assert!(
        zsh.starts_with("#compdef rumor"),
        "{}",
        &zsh[..zsh.len().min(80)]
    );
    let fish = support::ok(Command::new(RUMOR).args(["completions", "fish"]));
    assert!(fish.contains("complete -c rumor") && fish.contains("renew"));
    // Parsed by the shells themselves where they are installed; neither is
    // one of the test command's checkers.
    for (shell, script) in [("zsh", &zsh), ("fish", &fish)] {
        if let Some(path) = support::tool(shell) {
            let checked = Command::new(path)
                .arg("-n")
                .arg("-c")
                .arg(script)
                .status()
                .unwrap();
            assert!(
                checked.success(),
                "{shell} -n rejects its completion script"
            );
        }
    }
    let out = Command::new(RUMOR)
        .args(["completions", "ksh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn man_page_is_roff_and_lists_the_commands() {
    let page = support::ok(Command::new(RUMOR).arg("man"));
    // A roff page: requests from the first line, the title header before
    // the first section.
    assert!(page.starts_with('.'), "{}", &page[..page.len().min(80)]);
    let header = page
        .lines()
        .position(|l| l.starts_with(".TH rumor 1"))
        .expect("no .TH header");
    let name = page
        .lines()
        .position(|l| l == ".SH NAME")
        .expect("no NAME section");
    assert!(header < name);
    for command in ["new", "renew", "check", "completions", "man"] {
        assert!(
            page.contains(&format!("rumor\\-{command}(1)")),
            "{command} missing"
        );
    }
    // Rendered by man itself where it is installed.
    if let Some(man) = support::tool("man") {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rumor.1");
        std::fs::write(&file, &page).unwrap();
        let text = support::ok(
            Command::new(man)
                .arg("-l")
                .arg(&file)
                .env("MANWIDTH", "80")
                .env("MAN_KEEP_FORMATTING", "0"),
        );
        assert!(
            text.contains("Provision the secrets of a fleet of edge devices"),
            "{text}"
        );
    }
}
