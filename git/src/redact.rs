//! Removing credentials from URLs wherever they might be shown: a remote URL in a row, the
//! arguments of a failed git command, or git's standard error (`fatal: unable to access
//! 'https://user:secret@host/x/'`).
//!
//! The rule: in `scheme://userinfo@host...`, the userinfo of an `http(s)` (or any non-ssh) URL is
//! replaced whole by `***` (a lone user there is usually a token); for `ssh://user:pass@host` only
//! the password goes, since an ssh user name (`git`) is not a secret. Scp-like `user@host:path`
//! cannot carry a password and is left alone.

use std::borrow::Cow;

/// What replaces a credential.
pub const REDACTED: &str = "***";

/// `text` with the credentials of every `scheme://user:pass@host` URL in it replaced by `***`.
/// Borrows when there is nothing to redact.
pub fn redact_credentials(text: &str) -> Cow<'_, str> {
    if !text.contains("://") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at);
        out.push_str(before);
        out.push_str("://");
        let after = &after[3..];
        let scheme = scheme_before(before);
        // The authority ends at the path, query, fragment, or anything that cannot be in a URL.
        let end = after
            .find(|c: char| {
                matches!(c, '/' | '?' | '#' | '\'' | '"' | '<' | '>' | '`' | '\\')
                    || c.is_whitespace()
                    || c.is_control()
            })
            .unwrap_or(after.len());
        let authority = &after[..end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                let ssh = scheme.eq_ignore_ascii_case("ssh")
                    || scheme.eq_ignore_ascii_case("git+ssh")
                    || scheme.eq_ignore_ascii_case("ssh+git");
                match userinfo.split_once(':') {
                    Some((user, _password)) if ssh => {
                        out.push_str(user);
                        out.push(':');
                        out.push_str(REDACTED);
                        changed = true;
                    }
                    None if ssh => out.push_str(userinfo),
                    _ => {
                        out.push_str(REDACTED);
                        changed = true;
                    }
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(text)
    }
}

/// The URL scheme that ends at the end of `before` (`https` in `... 'https`).
fn scheme_before(before: &str) -> &str {
    let start = before
        .char_indices()
        .rev()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
        .map_or(0, |(i, c)| i + c.len_utf8());
    &before[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_go_everything_else_stays() {
        let cases = [
            (
                "https://user:s3cret@github.com/o/r.git",
                "https://***@github.com/o/r.git",
            ),
            ("https://TOKEN@github.com/o/r", "https://***@github.com/o/r"),
            ("http://u:p@h:8080", "http://***@h:8080"),
            ("ssh://git@host/x.git", "ssh://git@host/x.git"),
            ("ssh://git:pw@host/x.git", "ssh://git:***@host/x.git"),
            ("git@github.com:o/r.git", "git@github.com:o/r.git"),
            ("https://github.com/o/r.git", "https://github.com/o/r.git"),
            (
                "fatal: unable to access 'https://a:b@h/x/': Could not resolve host: h",
                "fatal: unable to access 'https://***@h/x/': Could not resolve host: h",
            ),
            (
                "two https://a:b@h and HTTPS://c@d/e",
                "two https://***@h and HTTPS://***@d/e",
            ),
            ("https://h/path@not-userinfo", "https://h/path@not-userinfo"),
            ("https://p@ss:w@rd@host/x", "https://***@host/x"),
            ("", ""),
            ("://@", "://***@"),
        ];
        for (input, want) in cases {
            assert_eq!(redact_credentials(input), want, "{input}");
        }
    }

    #[test]
    fn nothing_to_redact_borrows() {
        assert!(matches!(
            redact_credentials("https://h/x"),
            Cow::Borrowed(_)
        ));
    }
}
