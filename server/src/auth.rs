//! Bearer tokens: how they are made, stored (hashed) and turned into a [`Principal`].

use sha2::{Digest, Sha256};

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// GET endpoints and subscriptions.
    Read,
    /// Also actions, tasks, repos and cancel.
    Write,
    /// Also organisations and tokens.
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Some(match s {
            "read" => Scope::Read,
            "write" => Scope::Write,
            "admin" => Scope::Admin,
            _ => return None,
        })
    }
}

/// The identity behind a request: which token, in which organisation, allowed to do what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub token_id: String,
    pub org_id: String,
    pub scope: Scope,
}

impl Principal {
    pub fn can_write(&self) -> bool {
        self.scope >= Scope::Write
    }
}

/// Tokens are stored as their SHA-256, so a leaked database does not leak usable tokens.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new random token: 256 bits from two v4 UUIDs, with a recognisable prefix.
pub fn generate_token() -> String {
    format!(
        "gnt_{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashes_stable() {
        let a = generate_token();
        assert_ne!(a, generate_token());
        assert_eq!(hash_token(&a), hash_token(&a));
        assert_eq!(hash_token("x").len(), 64);
    }
}
