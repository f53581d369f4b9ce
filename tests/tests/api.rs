//! The REST surface's answers to bad input: 401, 404 and a precise 422 for each invalid case.

use gantry_tests::TestServer;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_valid_token_get_401() {
    let server = TestServer::start().await;
    let anonymous = reqwest::Client::new();
    let url = format!("{}/v1/repos", server.api.base);
    let response = anonymous.get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");

    let (status, _) = server.api.with_token("not-a-token").get("/v1/repos").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let response = anonymous
        .get(&url)
        .header("Authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // The health check needs no token.
    let health = anonymous
        .get(format!("{}/healthz", server.api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ids_and_other_organisations_get_404() {
    let server = TestServer::start().await;
    let api = &server.api;
    let repo = api
        .create_repo("mine", "https://example.invalid/a.git")
        .await;
    for path in [
        "/v1/repos/nope",
        "/v1/repos/nope/jobs",
        "/v1/repos/nope/branches",
        "/v1/jobs/nope",
        "/v1/nothing",
    ] {
        let (status, body) = api.get(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert!(body["error"]["code"].is_string(), "{path}: {body}");
    }
    let (status, _) = api.post("/v1/jobs/nope/cancel", &json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A token of another organisation does not see this one's repo or its jobs.
    let store = &server.server().app().store;
    let other_org = store.create_org("other").await.unwrap();
    let token = "other-org-token";
    store
        .insert_token(
            &other_org,
            &gantry_server::auth::hash_token(token),
            gantry_server::auth::Scope::Write,
            "t",
        )
        .await
        .unwrap();
    let other = api.with_token(token);
    let (status, _) = other.get(&format!("/v1/repos/{repo}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, jobs) = api.get(&format!("/v1/repos/{repo}/jobs")).await;
    let job_id = jobs["jobs"][0]["id"].as_str().unwrap();
    let (status, _) = other.get(&format!("/v1/jobs/{job_id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = other
        .post(
            &format!("/v1/repos/{repo}/actions"),
            &json!({"kind": "sync_repo"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = other.get("/v1/repos").await;
    assert_eq!(list["repos"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_invalid_action_gets_422_with_its_code() {
    let server = TestServer::start().await;
    let api = &server.api;
    let repo = api.create_repo("v", "https://example.invalid/v.git").await;
    let path = format!("/v1/repos/{repo}/actions");
    let cases = [
        (json!({"kind": "explode"}), "unknown_kind"),
        (json!({"branch": "a"}), "invalid_body"),
        (json!({"kind": "rebase_branch"}), "missing_branch"),
        (
            json!({"kind": "reparent_branch", "branch": "a"}),
            "missing_parent",
        ),
        (
            json!({"kind": "sync_repo", "branch": "a"}),
            "unexpected_branch",
        ),
        (
            json!({"kind": "rebase_branch", "branch": "a", "parent": "b"}),
            "unexpected_parent",
        ),
        (
            json!({"kind": "rebase_branch", "branch": "--upload-pack=x"}),
            "invalid_branch_name",
        ),
        (
            json!({"kind": "rebase_branch", "branch": "a..b"}),
            "invalid_branch_name",
        ),
        (
            json!({"kind": "rebase_branch", "branch": "x.lock"}),
            "invalid_branch_name",
        ),
        (
            json!({"kind": "rebase_branch", "branch": "has space"}),
            "invalid_branch_name",
        ),
        (
            json!({"kind": "reparent_branch", "branch": "a", "parent": "a"}),
            "parent_is_branch",
        ),
        (
            json!({"kind": "restack_subtree", "branch": "main"}),
            "branch_is_trunk",
        ),
    ];
    for (body, code) in cases {
        let (status, answer) = api.post(&path, &body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{body}: {answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    let response = api
        .http
        .post(format!("{}{}", api.base, path))
        .bearer_auth(&api.token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_json");

    let (status, body) = api
        .post_with(
            &path,
            &json!({"kind": "sync_repo"}),
            &[("Idempotency-Key", "")],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "invalid_idempotency_key");

    // Nothing invalid was queued: only the repo's first sync exists.
    let (_, jobs) = api.get(&format!("/v1/repos/{repo}/jobs")).await;
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_repos_are_refused() {
    let server = TestServer::start_with(gantry_server::engine::HandlerRegistry::new(), |config| {
        config.allow_file_remotes = false
    })
    .await;
    let api = &server.api;
    let cases = [
        (
            json!({"name": "", "remote_url": "https://h/x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_repo_name",
        ),
        (
            json!({"name": "a b", "remote_url": "https://h/x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_repo_name",
        ),
        (
            json!({"name": "ok", "remote_url": "ext::sh -c x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_remote_url",
        ),
        (
            json!({"name": "ok", "remote_url": "/tmp/x.git"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_remote_url",
        ),
        (
            json!({"name": "ok", "remote_url": "https://h/x", "trunk": "a..b"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_branch_name",
        ),
    ];
    for (body, status, code) in cases {
        let (got, answer) = api.post("/v1/repos", &body).await;
        assert_eq!(got, status, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{body}: {answer}");
    }
    api.create_repo("ok", "https://h/x").await;
    let (status, body) = api
        .post(
            "/v1/repos",
            &json!({"name": "ok", "remote_url": "https://h/y"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "repo_exists");
}
