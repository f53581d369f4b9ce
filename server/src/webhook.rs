//! GitHub webhooks: verifying `X-Hub-Signature-256` and finding which repos a `push` concerns.
//!
//! Pure functions, so the verifier can be fuzzed and tested without a server.

use hmac::{KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = hmac::Hmac<Sha256>;

/// Whether `signature` (the header value, `sha256=<hex>`) is the HMAC-SHA256 of `body` under
/// `secret`. The comparison is constant-time.
pub fn verify_signature(secret: &[u8], body: &[u8], signature: &str) -> bool {
    let Some(hex_digest) = signature.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_digest) else {
        return false;
    };
    let Ok(mut mac) = HmacSha256::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// The signature header value GitHub would send for `body` under `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = match HmacSha256::new_from_slice(secret) {
        Ok(mac) => mac,
        // HMAC accepts keys of any length.
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Every URL a push payload names its repository by (clone, ssh, html, git), with and
/// without a `.git` suffix, so a repo registered by any of them is found.
pub fn repository_urls(payload: &serde_json::Value) -> Vec<String> {
    let repository = &payload["repository"];
    let mut urls = Vec::new();
    for field in ["clone_url", "ssh_url", "html_url", "git_url", "url"] {
        if let Some(url) = repository[field].as_str().filter(|u| !u.is_empty()) {
            let bare = url.strip_suffix(".git").unwrap_or(url);
            for candidate in [bare.to_owned(), format!("{bare}.git"), url.to_owned()] {
                if !urls.contains(&candidate) {
                    urls.push(candidate);
                }
            }
        }
    }
    urls
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_with_its_secret_and_body() {
        let body = br#"{"ref":"refs/heads/main"}"#;
        let signature = sign(b"s3cret", body);
        assert!(signature.starts_with("sha256="));
        assert!(verify_signature(b"s3cret", body, &signature));
        assert!(!verify_signature(b"other", body, &signature));
        assert!(!verify_signature(b"s3cret", b"{}", &signature));
        assert!(!verify_signature(b"s3cret", body, "sha1=abc"));
        assert!(!verify_signature(b"s3cret", body, "sha256=zz"));
        assert!(!verify_signature(b"s3cret", body, ""));
    }

    #[test]
    fn a_push_names_its_repo_by_several_urls() {
        let payload = serde_json::json!({"repository": {
            "clone_url": "https://github.com/o/r.git", "ssh_url": "git@github.com:o/r.git"}});
        let urls = repository_urls(&payload);
        for url in [
            "https://github.com/o/r.git",
            "https://github.com/o/r",
            "git@github.com:o/r.git",
        ] {
            assert!(urls.contains(&url.to_owned()), "{url} in {urls:?}");
        }
        assert!(repository_urls(&serde_json::json!({})).is_empty());
    }
}
