//! Organisations, tokens and scopes; origins and security headers; limits; and secrets that never
//! leave the server. Each test fails without the defence it names.

use std::time::{Duration, Instant};

use gantry_tests::ws::{Ended, WsClient};
use gantry_tests::{BinaryServer, TestServer, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_create_orgs_and_tokens_and_each_scope_gets_only_its_rights() {
    let server = TestServer::start().await;
    let admin = &server.api;
    let org = admin.create_org("acme").await;
    let (status, body) = admin.post("/v1/orgs", &json!({"name": "acme"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "org_exists");
    let (status, body) = admin.post("/v1/orgs", &json!({"name": "bad name"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "invalid_org_name");

    // Tokens by org name or id; the secret is in the answer once, and never in a listing.
    let (write_secret, write_id) = admin.create_token("acme", "write").await;
    let (read_secret, _) = admin.create_token(&org, "read").await;
    assert!(write_secret.starts_with("gnt_") && write_secret.len() > 60);
    for (body, code, status) in [
        (
            json!({"org": "acme", "scope": "admin"}),
            "invalid_scope",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"org": "acme", "scope": "root"}),
            "invalid_scope",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"org": "nope", "scope": "read"}),
            "org_not_found",
            StatusCode::NOT_FOUND,
        ),
    ] {
        let (got, answer) = admin.post("/v1/tokens", &body).await;
        assert_eq!(got, status, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{body}: {answer}");
    }
    let (status, list) = admin.get("/v1/tokens").await;
    assert_eq!(status, StatusCode::OK);
    let listed = list["tokens"].to_string();
    assert!(listed.contains(&write_id), "{listed}");
    assert!(!listed.contains(&write_secret) && !listed.contains(&read_secret));
    assert!(!listed.contains("hash"), "{listed}");
    let (status, orgs) = admin.get("/v1/orgs").await;
    assert_eq!(status, StatusCode::OK);
    assert!(orgs["orgs"].to_string().contains("acme"));

    // write: repos, actions, tasks, cancel; not orgs or tokens.
    let writer = admin.with_token(&write_secret);
    let repo = writer
        .create_repo("app", "https://example.invalid/app.git")
        .await;
    let job = writer
        .act(&repo, "rebase_branch", Some("feature"), None)
        .await;
    let (status, _) = writer
        .post(
            &format!("/v1/repos/{repo}/tasks"),
            &json!({"title": "t", "branch": "feature"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    for (path, body) in [
        ("/v1/orgs", json!({"name": "mine"})),
        ("/v1/tokens", json!({"org": "acme", "scope": "write"})),
    ] {
        let (status, answer) = writer.post(path, &body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {answer}");
        assert_eq!(answer["error"]["code"], "insufficient_scope");
    }
    let (status, _) = writer.get("/v1/tokens").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = writer.delete(&format!("/v1/tokens/{write_id}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // read: every GET and subscribe; no write of any kind.
    let reader = admin.with_token(&read_secret);
    let job_id = job["id"].as_str().unwrap();
    for path in [
        "/v1/repos".to_owned(),
        format!("/v1/repos/{repo}"),
        format!("/v1/repos/{repo}/jobs"),
        format!("/v1/repos/{repo}/branches"),
        format!("/v1/repos/{repo}/tasks"),
        format!("/v1/jobs/{job_id}"),
    ] {
        let (status, body) = reader.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    for (path, body) in [
        (
            "/v1/repos".to_owned(),
            json!({"name": "x", "remote_url": "https://h/x"}),
        ),
        (
            format!("/v1/repos/{repo}/actions"),
            json!({"kind": "sync_repo"}),
        ),
        (
            format!("/v1/repos/{repo}/tasks"),
            json!({"title": "t", "branch": "b"}),
        ),
        (format!("/v1/jobs/{job_id}/cancel"), json!({})),
        ("/v1/orgs".to_owned(), json!({"name": "r"})),
    ] {
        let (status, answer) = reader.post(&path, &body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {answer}");
    }
    let mut ws = WsClient::connect(&admin.base, &read_secret).await;
    let snapshot = ws.subscribe(&format!("repo/{repo}/jobs"), None).await;
    assert_eq!(snapshot["type"], "snapshot", "{snapshot}");

    // The admin lives in the default organisation: acme's repo is not its to see.
    let (_, repos) = admin.get("/v1/repos").await;
    assert_eq!(repos["repos"], json!([]));
}

/// Every way of naming another organisation's repo, job, branch, task or topic answers exactly
/// like an id that does not exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_organisations_ids_are_404_and_its_topics_invisible() {
    let server = TestServer::start().await;
    let admin = &server.api;
    admin.create_org("a").await;
    admin.create_org("b").await;
    let a = admin.with_token(&admin.create_token("a", "write").await.0);
    let b = admin.with_token(&admin.create_token("b", "write").await.0);
    let repo = a
        .create_repo("shared-name", "https://example.invalid/a.git")
        .await;
    let job = a.act(&repo, "rebase_branch", Some("block-iso"), None).await;
    let job_id = job["id"].as_str().unwrap().to_owned();
    let (_, task) = a
        .post(
            &format!("/v1/repos/{repo}/tasks"),
            &json!({"title": "t", "branch": "topic"}),
        )
        .await;
    assert!(task["task"]["id"].is_string(), "{task}");
    // Same name in b is fine: names are per organisation.
    let b_repo = b
        .create_repo("shared-name", "https://example.invalid/b.git")
        .await;

    let (unknown_status, unknown) = b
        .get("/v1/repos/00000000-0000-0000-0000-000000000000")
        .await;
    assert_eq!(unknown_status, StatusCode::NOT_FOUND);
    for path in [
        format!("/v1/repos/{repo}"),
        format!("/v1/repos/{repo}/jobs"),
        format!("/v1/repos/{repo}/branches"),
        format!("/v1/repos/{repo}/tasks"),
        format!("/v1/jobs/{job_id}"),
    ] {
        let (status, body) = b.get(&path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_eq!(
            body["error"]["code"]
                .as_str()
                .map(|c| c.ends_with("not_found")),
            Some(true),
            "{path}: {body} (compare {unknown})"
        );
    }
    for (path, body) in [
        (
            format!("/v1/repos/{repo}/actions"),
            json!({"kind": "sync_repo"}),
        ),
        (
            format!("/v1/repos/{repo}/tasks"),
            json!({"title": "t", "branch": "x"}),
        ),
        (format!("/v1/jobs/{job_id}/cancel"), json!({})),
    ] {
        let (status, answer) = b.post(&path, &body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {answer}");
    }
    let (_, listed) = b.get("/v1/repos").await;
    let ids: Vec<&str> = listed["repos"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(ids, [b_repo.as_str()]);
    // b's cancel did nothing to a's job.
    assert_eq!(a.job(&job_id).await["cancel_requested"], json!(false));

    let mut ws = WsClient::connect(&b.base, &b.token).await;
    for topic in [
        format!("repo/{repo}/jobs"),
        format!("repo/{repo}/branches"),
        format!("repo/{repo}/tasks"),
        format!("job/{job_id}"),
    ] {
        let answer = ws.subscribe(&topic, None).await;
        assert_eq!(answer["type"], "error", "{topic}: {answer}");
        assert_eq!(answer["code"], "topic_not_found", "{topic}: {answer}");
    }
    // `repos` is per organisation: b's snapshot and diffs carry only b's repos. a registers a
    // repo, then b does: the first diff b sees is its own.
    let snapshot = ws.subscribe("repos", None).await;
    assert_eq!(snapshot["type"], "snapshot");
    assert!(!snapshot.to_string().contains(&repo), "{snapshot}");
    let a_second = a
        .create_repo("later", "https://example.invalid/l.git")
        .await;
    let b_second = b
        .create_repo("later", "https://example.invalid/l2.git")
        .await;
    loop {
        let frame = ws.next().await;
        let text = frame.to_string();
        assert!(!text.contains(&a_second) && !text.contains(&repo), "{text}");
        if text.contains(&b_second) {
            break;
        }
    }
    server.release("iso");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_is_refused_and_its_sockets_close_with_4100_within_a_second() {
    let server = TestServer::start().await;
    let admin = &server.api;
    admin.create_org("r").await;
    let (secret, id) = admin.create_token("r", "write").await;
    let user = admin.with_token(&secret);
    // Cached by use: the revocation must invalidate the cache, not wait for it to expire.
    let (status, _) = user.get("/v1/repos").await;
    assert_eq!(status, StatusCode::OK);
    let mut sockets = Vec::new();
    for _ in 0..2 {
        let mut ws = WsClient::connect(&admin.base, &secret).await;
        assert_eq!(ws.subscribe("repos", None).await["type"], "snapshot");
        sockets.push(ws);
    }
    // Another token's socket stays open.
    let mut bystander = WsClient::connect(&admin.base, &admin.token).await;
    assert_eq!(bystander.subscribe("repos", None).await["type"], "snapshot");

    let started = Instant::now();
    let (status, revoked) = admin.delete(&format!("/v1/tokens/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert!(revoked["token"]["revoked_at"].is_string(), "{revoked}");
    for ws in &mut sockets {
        assert_eq!(ws.until_closed().await, Ended::Closed(Some(4100)));
    }
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(1), "closed after {elapsed:?}");

    let (status, body) = user.get("/v1/repos").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(
        WsClient::try_connect(&admin.base, Some(&secret), None)
            .await
            .err(),
        Some(401)
    );
    let (status, _) = admin.delete("/v1/tokens/no-such-token").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A second revocation keeps the first time.
    let (status, again) = admin.delete(&format!("/v1/tokens/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["token"]["revoked_at"], revoked["token"]["revoked_at"]);
    bystander.send(json!({"type": "ping", "id": 9})).await;
    assert_eq!(bystander.next().await["type"], "pong");
}

/// A token revoked by another node (here: straight in the shared database, as another node's
/// request would) is found by the periodic re-check: cache dropped, sockets closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_made_elsewhere_is_picked_up_by_the_periodic_recheck() {
    let server = TestServer::start_with(gantry_server::engine::HandlerRegistry::new(), |config| {
        config.token_recheck_interval = Duration::from_millis(200)
    })
    .await;
    let admin = &server.api;
    admin.create_org("n").await;
    let (secret, id) = admin.create_token("n", "read").await;
    let user = admin.with_token(&secret);
    assert_eq!(user.get("/v1/repos").await.0, StatusCode::OK);
    let mut ws = WsClient::connect(&admin.base, &secret).await;
    assert_eq!(ws.subscribe("repos", None).await["type"], "snapshot");

    let revoked = server
        .server()
        .app()
        .store
        .revoke_token(&id)
        .await
        .expect("revoke in the database")
        .expect("token exists");
    assert!(revoked.revoked_at.is_some());
    assert_eq!(ws.until_closed().await, Ended::Closed(Some(4100)));
    assert_eq!(user.get("/v1/repos").await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrades_check_the_origin() {
    let server = TestServer::start().await;
    let base = &server.api.base;
    let token = Some(server.api.token.as_str());
    let own = base.clone();
    // Not a browser: no Origin, allowed.
    assert!(WsClient::try_connect(base, token, None).await.is_ok());
    assert!(WsClient::try_connect(base, token, Some(&own)).await.is_ok());
    for evil in ["http://evil.example", "null", "http://127.0.0.1:1"] {
        assert_eq!(
            WsClient::try_connect(base, token, Some(evil)).await.err(),
            Some(403),
            "{evil}"
        );
    }

    let configured =
        TestServer::start_with(gantry_server::engine::HandlerRegistry::new(), |config| {
            config.ws.allowed_origins = vec!["https://dash.example.com".to_owned()]
        })
        .await;
    let base = &configured.api.base;
    let token = Some(configured.api.token.as_str());
    assert!(
        WsClient::try_connect(base, token, Some("https://dash.example.com"))
            .await
            .is_ok()
    );
    assert_eq!(
        WsClient::try_connect(base, token, Some(base)).await.err(),
        Some(403),
        "with a list, only the list"
    );
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} on {}", response.url()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_security_headers_and_the_dashboard_keeps_the_token_out_of_referer() {
    let server = TestServer::start().await;
    let api = &server.api;
    let http = reqwest::Client::new();
    for (path, auth) in [
        ("/v1/repos", true),
        ("/v1/repos", false),
        ("/v1/nothing", true),
        ("/healthz", false),
    ] {
        let mut request = http.get(format!("{}{path}", api.base));
        if auth {
            request = request.bearer_auth(&api.token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(header(&response, "x-content-type-options"), "nosniff");
        assert_eq!(header(&response, "x-frame-options"), "DENY");
        assert_eq!(header(&response, "referrer-policy"), "no-referrer");
        assert_eq!(header(&response, "cache-control"), "no-store");
        let csp = header(&response, "content-security-policy");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(csp.contains("default-src 'none'"), "{csp}");
    }
    // The dashboard keeps its own (less strict) policy; the token arrives in the fragment and is
    // never sent as a Referer.
    let page = http.get(format!("{}/", api.base)).send().await.unwrap();
    assert_eq!(header(&page, "referrer-policy"), "no-referrer");
    assert_eq!(header(&page, "x-content-type-options"), "nosniff");
    let csp = header(&page, "content-security-policy").to_owned();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<meta name="referrer" content="no-referrer">"#));
    let app_js = http
        .get(format!("{}/assets/app.js", api.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        app_js.contains("history.replaceState"),
        "the dashboard removes the token from the address bar"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_get_413_as_json() {
    let server = TestServer::start_with(gantry_server::engine::HandlerRegistry::new(), |config| {
        config.max_body_bytes = 4096
    })
    .await;
    let api = &server.api;
    let repo = api
        .create_repo("big", "https://example.invalid/b.git")
        .await;
    let padding = "x".repeat(8192);
    for path in [
        format!("/v1/repos/{repo}/actions"),
        "/v1/repos".to_owned(),
        format!("/v1/repos/{repo}/tasks"),
        "/v1/hooks/github".to_owned(),
        "/v1/orgs".to_owned(),
    ] {
        let (status, body) = api
            .post(&path, &json!({"kind": "sync_repo", "padding": padding}))
            .await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{path}: {body}");
        assert_eq!(body["error"]["code"], "body_too_large", "{path}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("4096 bytes"),
            "{body}"
        );
    }
    // Just under the limit is fine.
    let (status, _) = api
        .post(
            &format!("/v1/repos/{repo}/actions"),
            &json!({"kind": "sync_repo", "padding": "x".repeat(3000)}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_token_are_bounded() {
    let server = TestServer::start_with(gantry_server::engine::HandlerRegistry::new(), |config| {
        config.ws.max_connections_per_token = 2
    })
    .await;
    let api = &server.api;
    let token = Some(api.token.as_str());
    let first = WsClient::try_connect(&api.base, token, None).await.unwrap();
    let mut second = WsClient::try_connect(&api.base, token, None).await.unwrap();
    assert_eq!(
        WsClient::try_connect(&api.base, token, None).await.err(),
        Some(429)
    );
    // Another token has its own allowance.
    api.create_org("other").await;
    let (other, _) = api.create_token("other", "read").await;
    assert!(
        WsClient::try_connect(&api.base, Some(&other), None)
            .await
            .is_ok()
    );
    // A closed connection gives its slot back.
    drop(first);
    eventually("a slot to free up", || async {
        WsClient::try_connect(&api.base, token, None).await.ok()
    })
    .await;
    second.send(json!({"type": "ping", "id": 1})).await;
    assert_eq!(second.next().await["type"], "pong");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_over_the_rate_get_429_with_retry_after() {
    let server = TestServer::start_with(gantry_server::engine::HandlerRegistry::new(), |config| {
        config.accept_rate = 5
    })
    .await;
    let api = &server.api;
    let repo = api
        .create_repo("rate", "https://example.invalid/r.git")
        .await;
    let path = format!("/v1/repos/{repo}/actions");
    let mut limited = None;
    for i in 0..50 {
        let response = api
            .http
            .post(format!("{}{path}", api.base))
            .bearer_auth(&api.token)
            .json(&json!({"kind": "rebase_branch", "branch": format!("b{i}")}))
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(response);
            break;
        }
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
    let response = limited.expect("a request over 5/s was refused");
    let retry: u64 = header(&response, "retry-after").parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    // Reads are not limited, and neither is another token.
    assert_eq!(api.get("/v1/repos").await.0, StatusCode::OK);
    api.create_org("o").await;
    let (other, _) = api.create_token("o", "write").await;
    let other = api.with_token(&other);
    let (status, body) = other
        .post(
            "/v1/repos",
            &json!({"name": "x", "remote_url": "https://example.invalid/x.git"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // The bucket refills.
    eventually("the bucket to refill", || async {
        let (status, _) = api.post(&path, &json!({"kind": "sync_repo"})).await;
        (status == StatusCode::ACCEPTED).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_schemes_are_allow_listed_and_configurable() {
    let strict = TestServer::start_with(gantry_server::engine::HandlerRegistry::new(), |config| {
        config.allow_file_remotes = false
    })
    .await;
    for url in [
        "http://example.invalid/x.git",
        "file:///tmp/x.git",
        "/tmp/x.git",
        "ext::sh -c touch% /tmp/pwned",
        "fd::3",
        "git://example.invalid/x.git",
    ] {
        let (status, body) = strict
            .api
            .post("/v1/repos", &json!({"name": "x", "remote_url": url}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {body}");
        assert_eq!(body["error"]["code"], "invalid_remote_url", "{url}");
    }
    strict
        .api
        .create_repo("s", "ssh://git@example.invalid/x.git")
        .await;
    strict
        .api
        .create_repo("scp", "git@example.invalid:x.git")
        .await;

    let http = TestServer::start_with(gantry_server::engine::HandlerRegistry::new(), |config| {
        config.remote_schemes = vec![gantry_server::validate::RemoteScheme::Http];
        config.allow_file_remotes = false;
    })
    .await;
    http.api
        .create_repo("h", "http://example.invalid/x.git")
        .await;
    let (status, _) = http
        .api
        .post(
            "/v1/repos",
            &json!({"name": "s", "remote_url": "https://example.invalid/x.git"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

/// Defence in depth: a repo row whose remote is a local path (as if the validator had a hole)
/// still cannot make git use the file transport on a server that does not allow it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_itself_refuses_transports_outside_the_allow_list() {
    let remote = gantry_tests::gitrepo::Remote::new();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The real binary, whose git runner takes its transports from the server's policy.
    let server = BinaryServer::spawn_env(&data, &[], false, &[]).await;
    server.terminate().await;
    let store = gantry_server::storage::SqliteStore::open(&data.join("gantry.db"))
        .await
        .unwrap();
    let org = store.default_org_id().await.unwrap();
    let (repo, _) = store
        .create_repo(
            &org,
            "sneaky",
            &remote.url(),
            "main",
            gantry_server::storage::NewJob {
                repo_id: String::new(),
                kind: gantry_types::JobKind::SyncRepo,
                branch: None,
                parent: None,
                max_attempts: 1,
                idempotency_key: None,
            },
        )
        .await
        .unwrap();
    store.close().await;

    // Without --allow-file-remotes (the harness passes it; this server is started bare).
    let server = BinaryServer::spawn_strict(&data, &["--max-attempts", "1"]).await;
    let (_, jobs) = server.api.get(&format!("/v1/repos/{}/jobs", repo.id)).await;
    let job_id = jobs["jobs"][0]["id"].as_str().unwrap().to_owned();
    let job = server
        .api
        .wait_job(&job_id, "finished", |j| {
            j["status"] == "error" || j["status"] == "completed"
        })
        .await;
    assert_eq!(job["status"], "error", "{job}");
    let message = job["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("transport 'file' not allowed"),
        "{message}"
    );
    server.terminate().await;
}

/// Credentials in a remote URL reach git, and nothing else: not the REST row, not the WS rows,
/// not the job's error (git's stderr names the URL), not the log. Neither do tokens or webhook
/// secrets, even at trace level.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_leave_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = BinaryServer::spawn_env(
        &data,
        &["--max-attempts", "1"],
        false,
        &[("RUST_LOG", "trace")],
    )
    .await;
    let admin = &server.api;
    let password = "pw-9f8e7d6c5b4a";
    let webhook_secret = "whsec-0a1b2c3d4e5f";
    // Port 1 on loopback refuses at once: the sync fails fast, with git naming the URL.
    let url = format!("https://deploy:{password}@127.0.0.1:1/o/r.git");
    let (status, created) = admin
        .post(
            "/v1/repos",
            &json!({"name": "creds", "remote_url": url, "webhook_secret": webhook_secret}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let repo = created["repo"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created["repo"]["remote_url"],
        "https://***@127.0.0.1:1/o/r.git"
    );
    let job_id = created["job"]["id"].as_str().unwrap().to_owned();
    let job = admin.wait_status(&job_id, "error").await;
    let message = job["message"].as_str().unwrap();
    assert!(
        message.contains("127.0.0.1"),
        "git's error is kept: {message}"
    );

    admin.create_org("leak").await;
    let (token, _) = admin.create_token("leak", "write").await;
    // Tokens in the header and in the query (as browsers send them on WebSockets).
    let mut ws = WsClient::connect(&admin.base, &token).await;
    assert_eq!(ws.subscribe("repos", None).await["type"], "snapshot");
    let query = format!(
        "{}/v1/ws?access_token={}",
        admin.base.replacen("http", "ws", 1),
        admin.token
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(query).await.unwrap();
    use futures::SinkExt;
    socket
        .send(tokio_tungstenite::tungstenite::Message::Text(
            json!({"type": "subscribe", "id": 1, "topic": "repos"})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    let mut admin_ws = WsClient::connect(&admin.base, &admin.token).await;
    let snapshot = admin_ws.subscribe("repos", None).await;
    let (_, rest) = admin.get(&format!("/v1/repos/{repo}")).await;
    let (_, jobs) = admin.get(&format!("/v1/repos/{repo}/jobs")).await;
    let mut job_ws = WsClient::connect(&admin.base, &admin.token).await;
    let job_snapshot = job_ws.subscribe(&format!("job/{job_id}"), None).await;
    let shown = format!("{snapshot} {rest} {jobs} {job_snapshot} {created}");
    assert!(!shown.contains(password), "{shown}");
    assert!(!shown.contains(webhook_secret), "{shown}");
    assert_eq!(admin.get("/v1/nope").await.0, StatusCode::NOT_FOUND);
    let (status, _) = admin
        .with_token("gnt_wrong-token-value")
        .get("/v1/repos")
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let log = server.log();
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "trace logging is on"
    );
    for secret in [
        password,
        webhook_secret,
        token.as_str(),
        admin.token.as_str(),
        "gnt_wrong-token-value",
    ] {
        assert!(!log.contains(secret), "{secret} is in the log:\n{log}");
    }
    drop(socket);
    server.terminate().await;
}

/// `gantry org create` and `gantry token create|list|revoke`, through REST with the admin token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_manages_orgs_and_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let server = BinaryServer::spawn(dir.path(), &[]).await;
    let api = server.api.clone();
    let gantry = |args: &[&str]| {
        let output = std::process::Command::new(gantry_tests::gantry_binary())
            .args(args)
            .args(["--server", &api.base, "--token", &api.token])
            .env_remove("GANTRY_URL")
            .env_remove("GANTRY_TOKEN")
            .output()
            .expect("run gantry");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).trim().to_owned(),
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        )
    };
    let (ok, out, err) = gantry(&["org", "create", "acme"]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("\"name\": \"acme\""), "{out}");
    let (ok, token, err) = gantry(&["token", "create", "--org", "acme", "--scope", "read"]);
    assert!(ok, "{err}");
    assert!(token.starts_with("gnt_") && !token.contains(char::is_whitespace));
    assert!(err.contains("read token"), "{err}");
    let (ok, _, err) = gantry(&["token", "create", "--org", "acme", "--scope", "admin"]);
    assert!(!ok, "admin tokens are not handed out: {err}");
    let reader = api.with_token(&token);
    assert_eq!(reader.get("/v1/repos").await.0, StatusCode::OK);

    let (ok, list, _) = gantry(&["token", "list"]);
    assert!(ok);
    let line = list
        .lines()
        .find(|l| l.contains(" read ") && l.contains("active"))
        .unwrap_or_else(|| panic!("{list}"));
    let id = line.split_whitespace().next().unwrap().to_owned();
    assert!(!list.contains(&token), "a listing never shows a secret");
    let (ok, _, err) = gantry(&["token", "revoke", &id]);
    assert!(ok, "{err}");
    assert_eq!(reader.get("/v1/repos").await.0, StatusCode::UNAUTHORIZED);
    let (ok, list, _) = gantry(&["org", "list"]);
    assert!(ok && list.contains("acme"), "{list}");

    // A non-admin token is refused with the server's reason.
    let output = std::process::Command::new(gantry_tests::gantry_binary())
        .args([
            "org", "create", "nope", "--server", &api.base, "--token", &token,
        ])
        .env_remove("GANTRY_TOKEN")
        .output()
        .unwrap();
    assert!(!output.status.success());
    server.terminate().await;
}
