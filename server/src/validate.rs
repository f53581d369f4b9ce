//! The cheap checks of the request path: only local facts (the request itself and the cached
//! branch rows), never git or the network. Each refusal has its own precise code.

use std::collections::{HashMap, HashSet};

use gantry_types::JobKind;
use gantry_types::rest::ActionRequest;

use crate::api::error::ApiError;
use crate::storage::BranchLink;

/// A validated action, ready to become a job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Action {
    pub kind: JobKind,
    pub branch: Option<String>,
    pub parent: Option<String>,
}

pub fn branch_name(field: &'static str, name: &str) -> Result<(), ApiError> {
    gantry_git::refname::validate_branch_name(name).map_err(|e| {
        ApiError::invalid(
            "invalid_branch_name",
            format!(
                "{field} {:?} is not a valid branch name: {e}",
                truncate(name)
            ),
        )
    })
}

fn truncate(s: &str) -> String {
    s.chars().take(120).collect()
}

pub fn org_name(name: &str) -> Result<(), ApiError> {
    plain_name(name).map_err(|()| {
        ApiError::invalid(
            "invalid_org_name",
            "organisation name must be 1-100 characters of letters, digits, '.', '_' or '-', not starting with '.' or '-'",
        )
    })
}

fn plain_name(name: &str) -> Result<(), ()> {
    let valid = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with(['.', '-'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid { Ok(()) } else { Err(()) }
}

pub fn repo_name(name: &str) -> Result<(), ApiError> {
    let valid = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with(['.', '-'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "invalid_repo_name",
            "repo name must be 1-100 characters of letters, digits, '.', '_' or '-', not starting with '.' or '-'",
        ))
    }
}

/// A kind of remote a repo may use. Git's `ext::` and `fd::` transports are never one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoteScheme {
    /// `https://`.
    Https,
    /// `ssh://` and scp-like `user@host:path`.
    Ssh,
    /// Plain `http://` (credentials and contents travel unencrypted): only when configured.
    Http,
    /// Local paths and `file://`: only when configured.
    File,
}

impl RemoteScheme {
    pub fn parse(name: &str) -> Option<RemoteScheme> {
        Some(match name.trim().to_ascii_lowercase().as_str() {
            "https" => RemoteScheme::Https,
            "ssh" => RemoteScheme::Ssh,
            "http" => RemoteScheme::Http,
            "file" => RemoteScheme::File,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RemoteScheme::Https => "https",
            RemoteScheme::Ssh => "ssh",
            RemoteScheme::Http => "http",
            RemoteScheme::File => "file",
        }
    }
}

/// The remote schemes a server accepts, which are also the only transports its git may use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemotePolicy {
    allowed: Vec<RemoteScheme>,
}

impl Default for RemotePolicy {
    /// `https` and `ssh`.
    fn default() -> Self {
        RemotePolicy::new([RemoteScheme::Https, RemoteScheme::Ssh])
    }
}

impl RemotePolicy {
    pub fn new(schemes: impl IntoIterator<Item = RemoteScheme>) -> RemotePolicy {
        let mut allowed = Vec::new();
        for scheme in schemes {
            if !allowed.contains(&scheme) {
                allowed.push(scheme);
            }
        }
        RemotePolicy { allowed }
    }

    /// This policy with local and `file://` remotes allowed too (or not).
    pub fn with_file(mut self, allow: bool) -> RemotePolicy {
        self.allowed.retain(|s| *s != RemoteScheme::File);
        if allow {
            self.allowed.push(RemoteScheme::File);
        }
        self
    }

    pub fn allows(&self, scheme: RemoteScheme) -> bool {
        self.allowed.contains(&scheme)
    }

    /// The transports git may use under this policy (its `protocol.<name>.allow` list).
    pub fn git_protocols(&self) -> Vec<&'static str> {
        self.allowed.iter().map(|s| s.as_str()).collect()
    }

    fn names(&self) -> String {
        self.git_protocols().join(", ")
    }
}

/// Checks a remote URL against the policy: `https://`, `ssh://` or scp-like `user@host:path`,
/// `http://` and local paths or `file://` only when configured. Never git's `ext::`/`fd::`
/// transports, any other `transport::address` form, or anything that could be read as an option.
pub fn remote_url(url: &str, policy: &RemotePolicy) -> Result<(), ApiError> {
    let invalid = |msg: String| Err(ApiError::invalid("invalid_remote_url", msg));
    if url.is_empty() || url.len() > 2048 {
        return invalid("remote_url must be 1-2048 characters".to_owned());
    }
    if url.starts_with('-') || url.chars().any(|c| c.is_control() || c == ' ') {
        return invalid(
            "remote_url must not start with '-' or contain spaces or control characters".to_owned(),
        );
    }
    let lower = url.to_ascii_lowercase();
    let scheme = if lower.starts_with("https://") {
        RemoteScheme::Https
    } else if lower.starts_with("ssh://") {
        RemoteScheme::Ssh
    } else if lower.starts_with("http://") {
        RemoteScheme::Http
    } else if lower.starts_with("file://") || url.starts_with('/') {
        RemoteScheme::File
    } else if url.contains("::") {
        return invalid("git transport helpers such as ext:: and fd:: are not allowed".to_owned());
    } else if let Some((host, path)) = url.split_once(':')
        && host.contains('@')
        && !host.contains('/')
        && !path.is_empty()
    {
        // scp-like syntax: user@host:path
        RemoteScheme::Ssh
    } else {
        return invalid(format!(
            "remote_url must be a URL of an allowed scheme ({}), or user@host:path for ssh",
            policy.names()
        ));
    };
    if policy.allows(scheme) {
        return Ok(());
    }
    let hint = match scheme {
        RemoteScheme::File => " (see --allow-file-remotes)",
        _ => " (see --remote-schemes)",
    };
    invalid(format!(
        "{} remotes are disabled on this server; allowed: {}{hint}",
        scheme.as_str(),
        policy.names()
    ))
}

pub fn idempotency_key(key: &str) -> Result<(), ApiError> {
    if !key.is_empty() && key.len() <= 255 && key.bytes().all(|b| (0x21..0x7f).contains(&b)) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1-255 visible ASCII characters",
        ))
    }
}

/// Checks an action against the request itself and, when the repo has a cached branch
/// projection, against those rows.
pub fn action(req: &ActionRequest, trunk: &str, links: &[BranchLink]) -> Result<Action, ApiError> {
    let kind: JobKind = req
        .kind
        .parse()
        .map_err(|e: gantry_types::UnknownJobKind| {
            ApiError::invalid("unknown_kind", e.to_string())
        })?;
    let branch = req.branch.as_deref().filter(|b| !b.is_empty());
    let parent = req.parent.as_deref().filter(|p| !p.is_empty());

    match (kind.requires_branch(), branch) {
        (true, None) => {
            return Err(ApiError::invalid(
                "missing_branch",
                format!("{kind} needs a branch"),
            ));
        }
        (false, Some(_)) => {
            return Err(ApiError::invalid(
                "unexpected_branch",
                format!("{kind} works on the whole repo and takes no branch"),
            ));
        }
        _ => {}
    }
    match (kind.requires_parent(), kind.accepts_parent(), parent) {
        (true, _, None) => {
            return Err(ApiError::invalid(
                "missing_parent",
                format!("{kind} needs a parent"),
            ));
        }
        (_, false, Some(_)) => {
            return Err(ApiError::invalid(
                "unexpected_parent",
                format!("{kind} takes no parent"),
            ));
        }
        _ => {}
    }
    if let Some(branch) = branch {
        branch_name("branch", branch)?;
    }
    if let Some(parent) = parent {
        branch_name("parent", parent)?;
    }
    if let (Some(branch), Some(parent)) = (branch, parent)
        && branch == parent
    {
        return Err(ApiError::invalid(
            "parent_is_branch",
            "a branch cannot be its own parent",
        ));
    }
    if let Some(branch) = branch {
        if branch == trunk && kind != JobKind::RegisterExistingBranch {
            return Err(ApiError::invalid(
                "branch_is_trunk",
                format!("{branch:?} is the trunk; it is never restacked or reparented"),
            ));
        }
        if kind == JobKind::RegisterExistingBranch && branch == trunk {
            return Err(ApiError::invalid(
                "branch_is_trunk",
                "the trunk is always tracked",
            ));
        }
    }

    if !links.is_empty() {
        check_against_cache(kind, branch, parent, trunk, links)?;
    }
    Ok(Action {
        kind,
        branch: branch.map(str::to_owned),
        parent: parent.map(str::to_owned),
    })
}

fn check_against_cache(
    kind: JobKind,
    branch: Option<&str>,
    parent: Option<&str>,
    trunk: &str,
    links: &[BranchLink],
) -> Result<(), ApiError> {
    let by_name: HashMap<&str, &BranchLink> = links.iter().map(|l| (l.name.as_str(), l)).collect();
    if let Some(branch) = branch
        && kind != JobKind::RegisterExistingBranch
    {
        let Some(link) = by_name.get(branch) else {
            return Err(ApiError::invalid(
                "unknown_branch",
                format!(
                    "branch {branch:?} is not in the repo's branch list (register it or sync first)"
                ),
            ));
        };
        if !link.tracked {
            return Err(ApiError::invalid(
                "branch_not_tracked",
                format!("branch {branch:?} is not part of a stack; register it first"),
            ));
        }
    }
    if let Some(parent) = parent {
        if parent != trunk && !by_name.contains_key(parent) {
            return Err(ApiError::invalid(
                "unknown_parent",
                format!("parent {parent:?} is neither the trunk nor a known branch"),
            ));
        }
        if kind == JobKind::ReparentBranch
            && let Some(branch) = branch
            && subtree(branch, links).contains(parent)
        {
            return Err(ApiError::invalid(
                "parent_in_subtree",
                format!(
                    "{parent:?} is stacked on {branch:?}; reparenting onto it would make a cycle"
                ),
            ));
        }
    }
    Ok(())
}

/// The branch and every tracked branch stacked above it.
pub fn subtree<'a>(root: &'a str, links: &'a [BranchLink]) -> HashSet<&'a str> {
    let mut children: HashMap<&str, Vec<&str>> = HashMap::new();
    for link in links.iter().filter(|l| l.tracked) {
        if let Some(parent) = &link.parent {
            children
                .entry(parent.as_str())
                .or_default()
                .push(link.name.as_str());
        }
    }
    let mut seen = HashSet::from([root]);
    let mut todo = vec![root];
    while let Some(name) = todo.pop() {
        for &child in children.get(name).map(Vec::as_slice).unwrap_or_default() {
            if seen.insert(child) {
                todo.push(child);
            }
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(name: &str, parent: &str) -> BranchLink {
        BranchLink {
            name: name.into(),
            parent: Some(parent.into()),
            tracked: true,
        }
    }

    fn req(kind: &str, branch: Option<&str>, parent: Option<&str>) -> ActionRequest {
        ActionRequest {
            kind: kind.into(),
            branch: branch.map(Into::into),
            parent: parent.map(Into::into),
        }
    }

    fn code(result: Result<Action, ApiError>) -> &'static str {
        result.err().map(|e| e.code).unwrap_or("ok")
    }

    #[test]
    fn each_invalid_action_gets_its_own_code() {
        let links = vec![
            link("a", "main"),
            link("b", "a"),
            link("c", "b"),
            link("x", "main"),
        ];
        let check = |kind, branch, parent| code(action(&req(kind, branch, parent), "main", &links));
        assert_eq!(check("explode", None, None), "unknown_kind");
        assert_eq!(check("rebase_branch", None, None), "missing_branch");
        assert_eq!(check("sync_repo", Some("a"), None), "unexpected_branch");
        assert_eq!(check("reparent_branch", Some("a"), None), "missing_parent");
        assert_eq!(
            check("rebase_branch", Some("a"), Some("main")),
            "unexpected_parent"
        );
        assert_eq!(
            check("rebase_branch", Some("--upload-pack=x"), None),
            "invalid_branch_name"
        );
        assert_eq!(
            check("rebase_branch", Some("a..b"), None),
            "invalid_branch_name"
        );
        assert_eq!(
            check("rebase_branch", Some("x.lock"), None),
            "invalid_branch_name"
        );
        assert_eq!(
            check("rebase_branch", Some("has space"), None),
            "invalid_branch_name"
        );
        assert_eq!(check("rebase_branch", Some("nope"), None), "unknown_branch");
        assert_eq!(
            check("reparent_branch", Some("a"), Some("a")),
            "parent_is_branch"
        );
        assert_eq!(
            check("reparent_branch", Some("a"), Some("nope")),
            "unknown_parent"
        );
        assert_eq!(
            check("reparent_branch", Some("a"), Some("c")),
            "parent_in_subtree"
        );
        assert_eq!(
            check("restack_subtree", Some("main"), None),
            "branch_is_trunk"
        );
        assert_eq!(check("reparent_branch", Some("c"), Some("x")), "ok");
        assert_eq!(
            check("register_existing_branch", Some("new/über"), None),
            "ok"
        );
        assert_eq!(check("sync_repo", None, None), "ok");
    }

    #[test]
    fn without_a_cached_projection_only_the_request_itself_is_checked() {
        assert_eq!(
            code(action(
                &req("rebase_branch", Some("anything"), None),
                "main",
                &[]
            )),
            "ok"
        );
    }

    #[test]
    fn remote_urls_are_allow_listed() {
        let default = RemotePolicy::default();
        let files = RemotePolicy::default().with_file(true);
        let all = RemotePolicy::new([
            RemoteScheme::Https,
            RemoteScheme::Ssh,
            RemoteScheme::Http,
            RemoteScheme::File,
        ]);
        assert!(remote_url("https://github.com/a/b.git", &default).is_ok());
        assert!(remote_url("git@github.com:a/b.git", &default).is_ok());
        assert!(remote_url("ssh://git@host/x", &default).is_ok());
        assert!(remote_url("http://host/x", &default).is_err());
        assert!(remote_url("http://host/x", &all).is_ok());
        assert!(remote_url("/tmp/remote.git", &default).is_err());
        assert!(remote_url("/tmp/remote.git", &files).is_ok());
        assert!(remote_url("file:///tmp/r", &files).is_ok());
        assert!(remote_url("file:///tmp/r", &default).is_err());
        assert!(remote_url("git://host/x", &all).is_err());
        for evil in [
            "ext::sh -c touch% /tmp/pwned",
            "ext::sh",
            "fd::17",
            "fd::0,1",
            "--upload-pack=evil",
            "-oProxyCommand=x",
            "",
            "transport::addr",
            "relative/path",
        ] {
            assert!(remote_url(evil, &all).is_err(), "{evil}");
        }
        assert_eq!(
            RemotePolicy::default().with_file(true).git_protocols(),
            ["https", "ssh", "file"]
        );
        assert_eq!(RemoteScheme::parse(" HTTPS "), Some(RemoteScheme::Https));
        assert_eq!(RemoteScheme::parse("ext"), None);
    }
}
