//! The REST client behind `gantry repo` and `gantry act`.

use anyhow::{Context, bail};
use gantry_types::admin::{
    CreateOrgRequest, CreateTokenRequest, CreatedToken, OrgResponse, OrgsResponse, TokenResponse,
    TokensResponse,
};
use gantry_types::rest::{
    ActionRequest, CreateRepoRequest, CreateRepoResponse, ErrorBody, JobResponse, ReposResponse,
};
use serde::de::DeserializeOwned;

use super::{ActArgs, ClientArgs};

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    fn new(args: &ClientArgs) -> anyhow::Result<Client> {
        let Some(token) = args.token.clone() else {
            bail!(
                "no token: pass --token or set GANTRY_TOKEN (the server prints one at first start)"
            );
        };
        Ok(Client {
            http: reqwest::Client::new(),
            base: args.server.trim_end_matches('/').to_owned(),
            token,
        })
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<T> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("cannot reach the gantry server at {}", self.base))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .context("reading the server's answer")?;
        if status.is_success() {
            return serde_json::from_slice(&body)
                .context("the server's answer is not what this client expects");
        }
        match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(err) => bail!("{} ({}): {}", status, err.error.code, err.error.message),
            Err(_) => bail!("{}: {}", status, String::from_utf8_lossy(&body)),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }
}

pub async fn repo_add(
    args: &ClientArgs,
    name: &str,
    remote_url: &str,
    trunk: &str,
) -> anyhow::Result<()> {
    let client = Client::new(args)?;
    let body = CreateRepoRequest {
        name: name.to_owned(),
        remote_url: remote_url.to_owned(),
        trunk: Some(trunk.to_owned()),
        webhook_secret: None,
    };
    let created: CreateRepoResponse = client
        .send(client.http.post(client.url("/v1/repos")).json(&body))
        .await?;
    println!("{}", serde_json::to_string_pretty(&created)?);
    eprintln!(
        "registered {} ({}); first sync queued as job {}",
        created.repo.name, created.repo.id, created.job.id
    );
    Ok(())
}

pub async fn repo_list(args: &ClientArgs) -> anyhow::Result<()> {
    let client = Client::new(args)?;
    let list: ReposResponse = client
        .send(client.http.get(client.url("/v1/repos")))
        .await?;
    println!(
        "{:<38} {:<24} {:<10} {:<8} REMOTE",
        "ID", "NAME", "TRUNK", "SYNC"
    );
    for repo in list.repos {
        println!(
            "{:<38} {:<24} {:<10} {:<8} {}",
            repo.id,
            repo.name,
            repo.trunk,
            repo.branch_sync_status.as_str(),
            repo.remote_url
        );
    }
    Ok(())
}

pub async fn act(args: &ActArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.client)?;
    let body = ActionRequest {
        kind: args.kind.clone(),
        branch: args.branch.clone(),
        parent: args.parent.clone(),
    };
    let path = format!("/v1/repos/{}/actions", urlencode(&args.repo));
    let mut request = client.http.post(client.url(&path)).json(&body);
    if let Some(key) = &args.idempotency_key {
        request = request.header("Idempotency-Key", key);
    }
    let accepted: JobResponse = client.send(request).await?;
    if args.follow {
        eprintln!(
            "accepted: job {} is {}; following it",
            accepted.job.id, accepted.job.status
        );
        return super::follow::follow(&args.client, accepted.job).await;
    }
    println!("{}", serde_json::to_string_pretty(&accepted.job)?);
    eprintln!(
        "accepted: job {} is {}",
        accepted.job.id, accepted.job.status
    );
    Ok(())
}

/// Percent-encodes a path segment (repo names are plain, but ids typed by hand may not be).
fn urlencode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub async fn org_create(args: &ClientArgs, name: &str) -> anyhow::Result<()> {
    let client = Client::new(args)?;
    let body = CreateOrgRequest {
        name: name.to_owned(),
    };
    let created: OrgResponse = client
        .send(client.http.post(client.url("/v1/orgs")).json(&body))
        .await?;
    println!("{}", serde_json::to_string_pretty(&created.org)?);
    eprintln!(
        "created organisation {} ({})",
        created.org.name, created.org.id
    );
    Ok(())
}

pub async fn org_list(args: &ClientArgs) -> anyhow::Result<()> {
    let client = Client::new(args)?;
    let list: OrgsResponse = client.send(client.http.get(client.url("/v1/orgs"))).await?;
    println!("{:<38} NAME", "ID");
    for org in list.orgs {
        println!("{:<38} {}", org.id, org.name);
    }
    Ok(())
}

/// Prints the new token's secret alone on stdout (for `$(gantry token create ...)`), and what it
/// is on stderr.
pub async fn token_create(
    args: &ClientArgs,
    org: &str,
    scope: &str,
    label: Option<&str>,
) -> anyhow::Result<()> {
    let client = Client::new(args)?;
    let body = CreateTokenRequest {
        org: org.to_owned(),
        scope: scope.to_owned(),
        label: label.map(str::to_owned),
    };
    let created: CreatedToken = client
        .send(client.http.post(client.url("/v1/tokens")).json(&body))
        .await?;
    println!("{}", created.token);
    eprintln!(
        "created {} token {} in organisation {}; the secret above is shown only this once",
        created.info.scope, created.info.id, created.info.org_id
    );
    Ok(())
}

pub async fn token_list(args: &ClientArgs) -> anyhow::Result<()> {
    let client = Client::new(args)?;
    let list: TokensResponse = client
        .send(client.http.get(client.url("/v1/tokens")))
        .await?;
    println!(
        "{:<38} {:<38} {:<6} {:<8} LABEL",
        "ID", "ORG", "SCOPE", "STATE"
    );
    for token in list.tokens {
        println!(
            "{:<38} {:<38} {:<6} {:<8} {}",
            token.id,
            token.org_id,
            token.scope,
            if token.revoked_at.is_some() {
                "revoked"
            } else {
                "active"
            },
            token.label.unwrap_or_default()
        );
    }
    Ok(())
}

pub async fn token_revoke(args: &ClientArgs, id: &str) -> anyhow::Result<()> {
    let client = Client::new(args)?;
    let path = format!("/v1/tokens/{}", urlencode(id));
    let revoked: TokenResponse = client.send(client.http.delete(client.url(&path))).await?;
    println!("{}", serde_json::to_string_pretty(&revoked.token)?);
    eprintln!("revoked token {}", revoked.token.id);
    Ok(())
}
