//! Branch-name validation without running git, so the server can refuse a bad name in the
//! request path (no process, no I/O) and the engine can trust every name it puts on a command
//! line.
//!
//! The rules are git's `check-ref-format --branch` rules for `refs/heads/<name>`, plus two
//! of gantry's own: a name may not start with `-` (so it can never be read as an option) and
//! may not be `@` alone (git's shorthand for `HEAD` in revision syntax, which git 2.47 still
//! accepts as a branch name).

use std::fmt;

/// Why a branch name was refused. The message is meant for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid branch name '{name}': {reason}")]
pub struct InvalidBranchName {
    /// The refused name, with control characters escaped so it can be shown safely.
    pub name: String,
    /// A human sentence saying which rule the name breaks, e.g. "branch name contains '..'".
    pub reason: String,
}

/// Checks that `refs/heads/<name>` is a valid branch ref and that `name` cannot be mistaken
/// for a command-line option. Pure: no I/O.
pub fn validate_branch_name(name: &str) -> Result<(), InvalidBranchName> {
    match first_violation(name) {
        None => Ok(()),
        Some(reason) => Err(InvalidBranchName {
            name: name.escape_debug().to_string(),
            reason: reason.to_string(),
        }),
    }
}

/// A rule a name can break, rendered as the human reason.
enum Violation {
    Empty,
    LeadingDash,
    AtAlone,
    Head,
    Control,
    Space,
    Char(char),
    DotDot,
    AtBrace,
    LeadingSlash,
    TrailingSlash,
    DoubleSlash,
    TrailingDot,
    ComponentDot,
    ComponentLock,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Empty => f.write_str("branch name is empty"),
            Violation::LeadingDash => f.write_str("branch name starts with '-'"),
            Violation::AtAlone => f.write_str("branch name is '@'"),
            Violation::Head => f.write_str("branch name is 'HEAD'"),
            Violation::Control => f.write_str("branch name contains a control character"),
            Violation::Space => f.write_str("branch name contains a space"),
            Violation::Char(c) => write!(f, "branch name contains '{c}'"),
            Violation::DotDot => f.write_str("branch name contains '..'"),
            Violation::AtBrace => f.write_str("branch name contains '@{'"),
            Violation::LeadingSlash => f.write_str("branch name starts with '/'"),
            Violation::TrailingSlash => f.write_str("branch name ends with '/'"),
            Violation::DoubleSlash => f.write_str("branch name contains '//'"),
            Violation::TrailingDot => f.write_str("branch name ends with '.'"),
            Violation::ComponentDot => f.write_str("a path component starts with '.'"),
            Violation::ComponentLock => f.write_str("a path component ends with '.lock'"),
        }
    }
}

fn first_violation(name: &str) -> Option<Violation> {
    if name.is_empty() {
        return Some(Violation::Empty);
    }
    if name.starts_with('-') {
        return Some(Violation::LeadingDash);
    }
    if name == "@" {
        return Some(Violation::AtAlone);
    }
    // `--branch` refuses refs/heads/HEAD: it would shadow HEAD in every revision lookup.
    if name == "HEAD" {
        return Some(Violation::Head);
    }
    for c in name.chars() {
        if c.is_ascii_control() {
            return Some(Violation::Control);
        }
        if c == ' ' {
            return Some(Violation::Space);
        }
        if matches!(c, '~' | '^' | ':' | '?' | '*' | '[' | '\\') {
            return Some(Violation::Char(c));
        }
    }
    if name.contains("..") {
        return Some(Violation::DotDot);
    }
    if name.contains("@{") {
        return Some(Violation::AtBrace);
    }
    if name.starts_with('/') {
        return Some(Violation::LeadingSlash);
    }
    if name.ends_with('/') {
        return Some(Violation::TrailingSlash);
    }
    if name.contains("//") {
        return Some(Violation::DoubleSlash);
    }
    if name.ends_with('.') {
        return Some(Violation::TrailingDot);
    }
    for component in name.split('/') {
        if component.starts_with('.') {
            return Some(Violation::ComponentDot);
        }
        if component.ends_with(".lock") {
            return Some(Violation::ComponentLock);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names that are refused only by gantry's own extra rules, not by git.
    fn gantry_only(name: &str) -> bool {
        name.starts_with('-') || name == "@"
    }

    const TRICKY: &[&str] = &[
        "--upload-pack=x",
        "-x",
        "a..b",
        "x.lock",
        "a/b.lock/c",
        "a.lock.b",
        "has space",
        " lead",
        "a/.b",
        ".a",
        "a//b",
        "@",
        "@@",
        "a@",
        "a@b",
        "a@{1}",
        "@{-1}",
        "ü/ok",
        "feature/über-fix",
        "trailing/",
        "/leading",
        ".",
        "a.",
        "foo./bar",
        "foo/..",
        "HEAD",
        "head",
        "refs/heads/x",
        "",
        "a~1",
        "a^",
        "a:b",
        "a?",
        "a*",
        "a[",
        "a\\b",
        "a{",
        "a}",
        "a/-b",
        "tab\there",
        "nl\nhere",
        "del\u{7f}x",
        "nul\u{0}x",
        "stack/1-api",
        "x/.lock",
        ".lock",
    ];

    #[test]
    fn agrees_with_git_check_ref_format() {
        let git = ["/usr/local/bin/git", "/usr/bin/git"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or("git");
        for name in TRICKY {
            let ours = validate_branch_name(name).is_ok();
            // git cannot even receive a NUL in argv; it is certainly not a valid ref.
            let theirs = if name.contains('\0') {
                false
            } else {
                std::process::Command::new(git)
                    .args(["check-ref-format", "--branch", name])
                    .current_dir(std::env::temp_dir())
                    .env("GIT_CEILING_DIRECTORIES", std::env::temp_dir())
                    .output()
                    .unwrap()
                    .status
                    .success()
            };
            if gantry_only(name) {
                assert!(!ours, "{name:?} must be refused by gantry's extra rules");
            } else {
                assert_eq!(ours, theirs, "disagreement with git on {name:?}");
            }
        }
    }

    #[test]
    fn reasons_are_human() {
        let reason = |n: &str| validate_branch_name(n).unwrap_err().reason;
        assert_eq!(reason("a..b"), "branch name contains '..'");
        assert_eq!(reason("--upload-pack=x"), "branch name starts with '-'");
        assert_eq!(reason("x.lock"), "a path component ends with '.lock'");
        assert_eq!(reason("has space"), "branch name contains a space");
        assert_eq!(reason("a//b"), "branch name contains '//'");
        assert_eq!(reason("a@{1}"), "branch name contains '@{'");
        assert_eq!(reason(""), "branch name is empty");
        assert!(validate_branch_name("feature/über-fix").is_ok());
    }

    #[test]
    fn escapes_control_characters_in_the_message() {
        let err = validate_branch_name("a\u{1b}[31mred").unwrap_err();
        assert!(!err.to_string().contains('\u{1b}'));
    }
}
