//! Fuzzing the branch-name validator against the real `git check-ref-format --branch`: on every
//! generated name, gantry and git agree, except where gantry is deliberately stricter (a leading
//! `-`, which could be read as an option, and `@` alone, git's shorthand for HEAD).
//!
//! Bounded for the normal test run; `PROPTEST_CASES=100000 cargo test -p gantry-git --test
//! refname_fuzz` fuzzes longer.

use gantry_git::validate_branch_name;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};

fn config(default_cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default_cases);
    Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..Config::default()
    }
}

fn git_accepts(name: &str) -> bool {
    // argv cannot carry a NUL; such a name is certainly not a branch.
    if name.contains('\0') {
        return false;
    }
    let tmp = std::env::temp_dir();
    std::process::Command::new("git")
        .args(["check-ref-format", "--branch", name])
        .current_dir(&tmp)
        .env("GIT_CEILING_DIRECTORIES", &tmp)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .map(|o| o.status.success())
        .unwrap_or_else(|e| panic!("running git check-ref-format: {e}"))
}

fn gantry_only(name: &str) -> bool {
    name.starts_with('-') || name == "@"
}

fn check(name: &str) -> Result<(), TestCaseError> {
    let ours = validate_branch_name(name).is_ok();
    if gantry_only(name) {
        prop_assert!(!ours, "{name:?} must be refused by gantry's own rules");
    } else {
        prop_assert_eq!(
            ours,
            git_accepts(name),
            "disagreement with git on {:?}",
            name
        );
    }
    Ok(())
}

/// Pieces that sit on the edges of git's rules, so that random names hit them often.
fn piece() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "a", "b", "x1", "ü", "日本", "-", "_", ".", "..", "/", "//", "@", "@{", "{", "}", "lock",
        ".lock", "~", "^", ":", "?", "*", "[", "]", "\\", " ", "\t", "\n", "\u{7f}", "\u{1}",
        "HEAD", "refs", "heads", "#", "%", "!", "'", "\"", "$", "=", "+",
    ])
}

proptest! {
    #![proptest_config(config(400))]

    #[test]
    fn agrees_with_git_on_edge_names(pieces in prop::collection::vec(piece(), 0..10)) {
        check(&pieces.concat())?;
    }
}

proptest! {
    #![proptest_config(config(150))]

    #[test]
    fn agrees_with_git_on_arbitrary_text(name in "\\PC{0,16}|[ -~]{0,24}") {
        check(&name)?;
    }

    #[test]
    fn never_panics_and_escapes_control_characters(name in any::<String>()) {
        if let Err(error) = validate_branch_name(&name) {
            let shown = error.to_string();
            prop_assert!(!shown.chars().any(|c| c.is_control() && c != ' '), "{shown:?}");
        }
    }
}
