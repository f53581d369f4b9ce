//! The admin surface: organisations and their tokens (`/v1/orgs`, `/v1/tokens`). Only a token
//! with scope `admin` may call it. A token's secret appears exactly once, in the answer that
//! created it; the server keeps only its SHA-256.

use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// An organisation: the unit of visibility. A token sees only its organisation's repos, jobs,
/// branches, tasks and topics.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Org {
    pub id: String,
    pub name: String,
    pub created_at: Timestamp,
}

/// A token as the server describes it: never its secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct TokenInfo {
    pub id: String,
    pub org_id: String,
    /// `read` (GET and subscribe), `write` (also actions, tasks, repos, cancel) or `admin` (also
    /// organisations and tokens).
    pub scope: String,
    pub label: Option<String>,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// `POST /v1/orgs`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct CreateOrgRequest {
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct OrgResponse {
    pub org: Org,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct OrgsResponse {
    pub orgs: Vec<Org>,
}

/// `POST /v1/tokens`: `org` is the organisation's id or name; `scope` is `read` or `write`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct CreateTokenRequest {
    pub org: String,
    pub scope: String,
    #[serde(default)]
    pub label: Option<String>,
}

/// The answer to `POST /v1/tokens`: the secret, shown this once, and its description.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct CreatedToken {
    pub token: String,
    pub info: TokenInfo,
}

impl std::fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedToken")
            .field("token", &"***")
            .field("info", &self.info)
            .finish()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct TokenResponse {
    pub token: TokenInfo,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct TokensResponse {
    pub tokens: Vec<TokenInfo>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_reach_debug_output() {
        let created = CreatedToken {
            token: "gnt_secret-value".into(),
            info: TokenInfo {
                id: "t1".into(),
                org_id: "o1".into(),
                scope: "read".into(),
                label: None,
                created_at: chrono::DateTime::UNIX_EPOCH,
                revoked_at: None,
            },
        };
        let shown = format!("{created:?}");
        assert!(
            !shown.contains("secret-value") && shown.contains("t1"),
            "{shown}"
        );
        let repo = crate::rest::CreateRepoRequest {
            name: "r".into(),
            remote_url: "https://u:pw-secret@h/x".into(),
            trunk: None,
            webhook_secret: Some("wh-secret".into()),
        };
        let shown = format!("{repo:?}");
        assert!(
            !shown.contains("pw-secret") && !shown.contains("wh-secret"),
            "{shown}"
        );
    }
}
