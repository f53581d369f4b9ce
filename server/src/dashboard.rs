//! The browser dashboard: the files of `web-client/`, embedded into the binary at compile time and
//! served at `/` (the page) and `/assets/*` (its ES modules, stylesheet and icon).
//!
//! Nothing is built: the dashboard is plain JavaScript modules, so `cargo run` alone serves it.
//! Every response carries a strict Content-Security-Policy (no inline script or style, sockets
//! and fetches to this origin only), `nosniff`, `Referrer-Policy: no-referrer` (the token lives in
//! the URL fragment on first load and must never leak), and an ETag so that `no-cache`
//! revalidation costs a 304.

use axum::Router;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

/// The policy of every dashboard response.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'self'; connect-src 'self' ws: wss:; \
     img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'";

/// One embedded file: the path it is served at, its media type and its bytes.
pub struct Asset {
    pub path: &'static str,
    /// The file's name inside `web-client/`.
    pub file: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

macro_rules! assets {
    ($(($path:literal, $file:literal, $type:expr)),* $(,)?) => {
        &[$(Asset {
            path: $path,
            file: $file,
            content_type: $type,
            body: include_bytes!(concat!("../../web-client/", $file)),
        }),*]
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file the dashboard ships. A test checks that each module and stylesheet of `web-client/`
/// is listed here, so a new module cannot be forgotten.
pub static ASSETS: &[Asset] = assets![
    ("/", "index.html", "text/html; charset=utf-8"),
    ("/assets/style.css", "style.css", "text/css; charset=utf-8"),
    ("/assets/favicon.svg", "favicon.svg", "image/svg+xml"),
    ("/assets/app.js", "app.js", JS),
    ("/assets/api.js", "api.js", JS),
    ("/assets/live.js", "live.js", JS),
    ("/assets/dom.js", "dom.js", JS),
    ("/assets/format.js", "format.js", JS),
    ("/assets/stack.js", "stack.js", JS),
    ("/assets/dialogs.js", "dialogs.js", JS),
    ("/assets/repos-view.js", "repos-view.js", JS),
    ("/assets/repo-view.js", "repo-view.js", JS),
    ("/assets/job-view.js", "job-view.js", JS),
];

/// The routes of the dashboard, to merge into the API router.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    ASSETS.iter().fold(Router::new(), |router, asset| {
        let etag = etag(asset.body);
        router.route(
            asset.path,
            get(move |headers: HeaderMap| async move { respond(asset, &etag, &headers) }),
        )
    })
}

fn etag(body: &[u8]) -> HeaderValue {
    let digest = Sha256::digest(body);
    HeaderValue::from_str(&format!("\"{}\"", hex::encode(&digest[..12])))
        .expect("a hex ETag is a valid header value")
}

/// The answer for one asset: the file, or 304 when the client's copy is current.
pub fn respond(asset: &Asset, etag: &HeaderValue, request: &HeaderMap) -> Response {
    let fresh = request
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.trim_start_matches("W/").as_bytes() == etag.as_bytes()
        });
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(CONTENT_TYPE, HeaderValue::from_static(asset.content_type))],
            asset.body,
        )
            .into_response()
    };
    let headers = response.headers_mut();
    headers.insert(ETAG, etag.clone());
    // The files change with the binary, not with a fingerprinted name: always revalidate.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE),
    );
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asset(path: &str) -> &'static Asset {
        ASSETS.iter().find(|a| a.path == path).expect("asset")
    }

    #[test]
    fn the_page_carries_the_security_headers() {
        let page = asset("/");
        let response = respond(page, &etag(page.body), &HeaderMap::new());
        assert_eq!(response.status(), StatusCode::OK);
        let h = response.headers();
        assert_eq!(h[CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(h[CONTENT_SECURITY_POLICY], CONTENT_SECURITY_POLICY_VALUE);
        assert_eq!(h[X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[REFERRER_POLICY], "no-referrer");
        assert_eq!(h[CACHE_CONTROL], "no-cache");
        let html = std::str::from_utf8(page.body).unwrap();
        assert!(html.contains(r#"<meta name="referrer" content="no-referrer">"#));
        assert!(!html.contains("<style"), "inline styles break the CSP");
    }

    #[test]
    fn a_current_copy_is_answered_with_304() {
        let app = asset("/assets/app.js");
        let tag = etag(app.body);
        let mut request = HeaderMap::new();
        request.insert(IF_NONE_MATCH, tag.clone());
        let response = respond(app, &tag, &request);
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(response.headers()[ETAG], tag);
        request.insert(IF_NONE_MATCH, HeaderValue::from_static("\"other\""));
        let response = respond(app, &tag, &request);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[CONTENT_TYPE], JS);
    }

    /// Every shipped file of `web-client/` is embedded, and every embedded path is unique.
    #[test]
    fn every_dashboard_file_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../web-client");
        let shipped = ["js", "css", "html", "svg"];
        for entry in std::fs::read_dir(&dir).expect("web-client/") {
            let path = entry.expect("entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let is_shipped = path.is_file()
                && path
                    .extension()
                    .is_some_and(|e| shipped.contains(&e.to_string_lossy().as_ref()));
            if is_shipped {
                assert!(
                    ASSETS.iter().any(|a| a.file == name),
                    "web-client/{name} is not embedded in dashboard::ASSETS"
                );
            }
        }
        let mut paths: Vec<_> = ASSETS.iter().map(|a| a.path).collect();
        paths.sort_unstable();
        paths.dedup();
        assert_eq!(paths.len(), ASSETS.len());
    }
}
