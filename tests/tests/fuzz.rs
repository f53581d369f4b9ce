//! Fuzzing the REST body decoders through a real server: arbitrary bytes and arbitrary JSON
//! posted to every endpoint that reads a body get an answer in our error shape with a 4xx status
//! (or a success for a valid body), never a 5xx, never a hang, and the server stays up.
//!
//! Bounded for the normal test run; `PROPTEST_CASES=20000` fuzzes longer.

use std::sync::OnceLock;

use gantry_tests::TestServer;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};
use serde_json::{Value, json};

fn config(default_cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default_cases);
    Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..Config::default()
    }
}

struct Fixture {
    runtime: tokio::runtime::Runtime,
    server: TestServer,
    paths: Vec<String>,
}

/// One server for all cases (started once; proptest cases are synchronous).
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let (server, paths) = runtime.block_on(async {
            let server =
                TestServer::start_with(gantry_server::engine::HandlerRegistry::new(), |config| {
                    config.accept_rate = 0
                })
                .await;
            let repo = server
                .api
                .create_repo("fuzz", "https://example.invalid/f.git")
                .await;
            let paths = vec![
                "/v1/repos".to_owned(),
                format!("/v1/repos/{repo}/actions"),
                format!("/v1/repos/{repo}/tasks"),
                "/v1/orgs".to_owned(),
                "/v1/tokens".to_owned(),
                "/v1/hooks/github".to_owned(),
            ];
            (server, paths)
        });
        Fixture {
            runtime,
            server,
            paths,
        }
    })
}

fn post(path_index: usize, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    let fx = fixture();
    let path = &fx.paths[path_index % fx.paths.len()];
    let api = &fx.server.api;
    fx.runtime.block_on(async {
        let response = api
            .http
            .post(format!("{}{path}", api.base))
            .bearer_auth(&api.token)
            .header("content-type", content_type)
            .header("x-github-event", "push")
            .body(body)
            .send()
            .await
            .expect("the server answers");
        let status = response.status().as_u16();
        let bytes = response.bytes().await.expect("body");
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| json!({"not_json": String::from_utf8_lossy(&bytes)}));
        (status, value)
    })
}

fn check(status: u16, body: &Value) -> Result<(), TestCaseError> {
    prop_assert!(status < 500, "server error {status}: {body}");
    if status >= 400 {
        let code = body["error"]["code"].as_str().unwrap_or_default();
        prop_assert!(!code.is_empty(), "{status} without an error code: {body}");
        prop_assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{body}"
        );
    }
    Ok(())
}

/// JSON objects with the fields the bodies use, holding values of any type.
fn body_like() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "\\PC{0,40}".prop_map(Value::String),
        prop::sample::select(vec![
            "sync_repo",
            "restack_subtree",
            "reparent_branch",
            "main",
            "a..b",
            "--upload-pack=x",
            "https://h/x.git",
            "ext::sh",
            "read",
            "write",
            "admin",
            "default",
        ])
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    let value = leaf.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    prop::collection::btree_map(
        prop::sample::select(vec![
            "kind",
            "branch",
            "parent",
            "name",
            "remote_url",
            "trunk",
            "title",
            "allow_shared_branch",
            "org",
            "scope",
            "label",
            "webhook_secret",
            "repository",
        ]),
        value,
        0..6,
    )
    .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn arbitrary_bytes_get_a_clear_4xx(
        path in any::<usize>(),
        body in prop::collection::vec(any::<u8>(), 0..200),
        content_type in prop::sample::select(vec![
            "application/json", "text/plain", "application/json; charset=utf-8", "",
        ]),
    ) {
        let (status, answer) = post(path, content_type, body);
        check(status, &answer)?;
    }

    #[test]
    fn arbitrary_json_bodies_are_answered_without_server_errors(
        path in any::<usize>(),
        body in body_like(),
    ) {
        let (status, answer) = post(path, "application/json", body.to_string().into_bytes());
        check(status, &answer)?;
    }
}
