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

/// Allows `https://`, `http://`, `ssh://`, scp-like `user@host:path`, and local paths or
/// `file://` only when configured. Never git's `ext::`/`fd::` transports or anything that could
/// be read as an option.
pub fn remote_url(url: &str, allow_file: bool) -> Result<(), ApiError> {
    let invalid = |msg: &str| Err(ApiError::invalid("invalid_remote_url", msg.to_owned()));
    if url.is_empty() || url.len() > 2048 {
        return invalid("remote_url must be 1-2048 characters");
    }
    if url.starts_with('-') || url.chars().any(|c| c.is_control() || c == ' ') {
        return invalid(
            "remote_url must not start with '-' or contain spaces or control characters",
        );
    }
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("http://") || lower.starts_with("ssh://")
    {
        return Ok(());
    }
    if lower.starts_with("file://") || url.starts_with('/') {
        return if allow_file {
            Ok(())
        } else {
            invalid(
                "local and file:// remotes are disabled on this server (see --allow-file-remotes)",
            )
        };
    }
    if url.contains("::") {
        return invalid("git transport helpers such as ext:: and fd:: are not allowed");
    }
    // scp-like syntax: user@host:path
    if let Some((host, path)) = url.split_once(':')
        && host.contains('@')
        && !host.contains('/')
        && !path.is_empty()
    {
        return Ok(());
    }
    invalid("remote_url must be an https://, http://, ssh:// or user@host:path URL")
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
        assert!(remote_url("https://github.com/a/b.git", false).is_ok());
        assert!(remote_url("git@github.com:a/b.git", false).is_ok());
        assert!(remote_url("ssh://git@host/x", false).is_ok());
        assert!(remote_url("/tmp/remote.git", false).is_err());
        assert!(remote_url("/tmp/remote.git", true).is_ok());
        assert!(remote_url("file:///tmp/r", true).is_ok());
        assert!(remote_url("ext::sh -c touch% /tmp/pwned", true).is_err());
        assert!(remote_url("fd::17", true).is_err());
        assert!(remote_url("--upload-pack=evil", true).is_err());
        assert!(remote_url("", true).is_err());
    }
}
