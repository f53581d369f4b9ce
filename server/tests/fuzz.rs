//! Property tests with bounded case counts (part of the normal test run) for the decoders that
//! face untrusted input: the WebSocket message decoder, the action validator and the webhook
//! verifier. The REST body decoders are fuzzed through a real server in
//! `tests/tests/fuzz.rs`; the branch-name validator against git in `git/tests/refname_fuzz.rs`.
//!
//! `PROPTEST_CASES=100000 cargo test -p gantry-server --test fuzz` fuzzes longer.

use gantry_server::storage::BranchLink;
use gantry_server::webhook::{repository_urls, sign, verify_signature};
use gantry_server::ws::decode;
use gantry_types::rest::ActionRequest;
use gantry_types::ws::{ClientMessage, Cursor};
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

/// Any JSON value, nested a little.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "\\PC{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "subscribe",
            "unsubscribe",
            "ping",
            "repos",
            "repo/x/jobs",
            "job/",
            "",
        ])
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "type", "id", "topic", "since", "epoch", "position", "kind", "x"
                ]),
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

fn client_message() -> impl Strategy<Value = ClientMessage> {
    let id = prop::option::of(any::<u64>());
    let topic = "\\PC{0,20}";
    let since = prop::option::of(
        ("\\PC{0,8}", any::<i64>()).prop_map(|(epoch, position)| Cursor { epoch, position }),
    );
    prop_oneof![
        (id.clone(), topic, since).prop_map(|(id, topic, since)| ClientMessage::Subscribe {
            id,
            topic,
            since
        }),
        (id.clone(), topic).prop_map(|(id, topic)| ClientMessage::Unsubscribe { id, topic }),
        id.prop_map(|id| ClientMessage::Ping { id }),
    ]
}

const DECODE_CODES: [&str; 3] = ["invalid_json", "unknown_type", "invalid_message"];

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn ws_decoder_is_total_on_arbitrary_text(text in "\\PC{0,64}|[{}\\[\\]\":,a-z0-9 ]{0,64}") {
        match decode(&text) {
            Ok(_) => prop_assert!(serde_json::from_str::<Value>(&text).is_ok()),
            Err(error) => {
                prop_assert!(DECODE_CODES.contains(&error.code), "{error:?}");
                prop_assert!(!error.message.is_empty());
            }
        }
    }

    #[test]
    fn ws_decoder_answers_json_with_a_precise_code_and_the_id(value in json_value()) {
        let text = value.to_string();
        match decode(&text) {
            Ok(message) => {
                // Found by this property: serde also reads a tagged enum from an array.
                prop_assert!(value.is_object(), "only objects are messages: {text}");
                let kind = value.get("type").and_then(Value::as_str);
                let expected = match &message {
                    ClientMessage::Subscribe { .. } => "subscribe",
                    ClientMessage::Unsubscribe { .. } => "unsubscribe",
                    ClientMessage::Ping { .. } => "ping",
                };
                prop_assert_eq!(kind, Some(expected));
            }
            Err(error) => {
                prop_assert!(DECODE_CODES.contains(&error.code), "{error:?}");
                if !value.is_object() {
                    prop_assert_eq!(error.code, "invalid_json");
                }
                let kind = value.get("type").and_then(Value::as_str);
                if let Some(kind) = kind
                    && !["subscribe", "unsubscribe", "ping"].contains(&kind)
                {
                    prop_assert_eq!(error.code, "unknown_type");
                }
                // The id is echoed whenever the frame had a readable one.
                prop_assert_eq!(error.id, value.get("id").and_then(Value::as_u64));
            }
        }
    }

    #[test]
    fn ws_decoder_round_trips_every_valid_message(message in client_message()) {
        let text = serde_json::to_string(&message).expect("serialise");
        prop_assert_eq!(decode(&text), Ok(message));
    }

    #[test]
    fn action_validation_is_total_and_only_passes_valid_names(
        kind in prop::sample::select(vec![
            "sync_repo", "restack_repo", "restack_subtree", "rebase_branch", "reparent_branch",
            "register_existing_branch", "explode", "",
        ]),
        branch in prop::option::of("\\PC{0,12}|[a-c./@{}-]{0,8}"),
        parent in prop::option::of("\\PC{0,12}|[a-c./@{}-]{0,8}"),
        cached in any::<bool>(),
    ) {
        let links = if cached {
            vec![
                BranchLink { name: "a".into(), parent: Some("main".into()), tracked: true },
                BranchLink { name: "b".into(), parent: Some("a".into()), tracked: true },
            ]
        } else {
            Vec::new()
        };
        let req = ActionRequest {
            kind: kind.to_owned(),
            branch: branch.clone(),
            parent: parent.clone(),
        };
        match gantry_server::validate::action(&req, "main", &links) {
            Ok(action) => {
                for name in action.branch.iter().chain(action.parent.iter()) {
                    prop_assert!(gantry_git::validate_branch_name(name).is_ok(), "{name:?}");
                }
                if action.branch.is_some() {
                    prop_assert_ne!(action.branch, action.parent);
                }
            }
            Err(error) => {
                prop_assert_eq!(error.status.as_u16(), 422);
                prop_assert!(!error.message.is_empty());
            }
        }
    }

    #[test]
    fn a_webhook_verifies_only_under_its_secret_and_body(
        secret in prop::collection::vec(any::<u8>(), 0..80),
        body in prop::collection::vec(any::<u8>(), 0..300),
        other in prop::collection::vec(any::<u8>(), 0..80),
        flip in any::<prop::sample::Index>(),
    ) {
        let signature = sign(&secret, &body);
        prop_assert!(verify_signature(&secret, &body, &signature));
        if other != secret {
            prop_assert!(!verify_signature(&other, &body, &signature));
        }
        if !body.is_empty() {
            let mut tampered = body.clone();
            let i = flip.index(tampered.len());
            tampered[i] ^= 0x01;
            prop_assert!(!verify_signature(&secret, &tampered, &signature));
        }
        // Any other spelling of the digest fails.
        let mut wrong = signature.clone();
        let last = wrong.pop().unwrap_or('0');
        wrong.push(if last == '0' { '1' } else { '0' });
        prop_assert!(!verify_signature(&secret, &body, &wrong));
        prop_assert!(!verify_signature(&secret, &body, &signature.replacen("sha256=", "sha1=", 1)));
    }

    #[test]
    fn the_webhook_verifier_is_total_on_arbitrary_headers(
        header in "\\PC{0,80}|sha256=[0-9a-fA-F]{0,70}",
        body in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        // A forged header never verifies (the chance of guessing an HMAC is nil).
        prop_assert!(!verify_signature(b"secret", &body, &header));
    }

    #[test]
    fn repository_urls_is_total_on_any_payload(payload in json_value()) {
        let wrapped = json!({"repository": payload.clone()});
        for value in [payload, wrapped] {
            for url in repository_urls(&value) {
                prop_assert!(!url.is_empty());
            }
        }
    }
}
