//! The browser client's files, embedded at compile time by `build.rs`, and
//! the warp filter that serves them.

use warp::http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use warp::http::Response;
use warp::Filter;

include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

/// What the page may do. Scripts, styles and workers come only from this
/// server; WebSockets may go to any rendezvous a ticket names; images may be
/// `data:` (the QR code) or `blob:`; nothing may frame the page.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data: blob:; connect-src 'self' ws: wss:; worker-src 'self'; \
    frame-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// The bytes and media type served for a request path (`""` is the page).
pub fn asset(path: &str) -> Option<(&'static [u8], &'static str)> {
    let name = if path.is_empty() { "index.html" } else { path };
    let body = ASSETS.iter().find(|(n, _)| *n == name)?.1;
    Some((body, media_type(name)))
}

fn media_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("webmanifest") => "application/manifest+json",
        _ => "application/octet-stream",
    }
}

/// `GET /` and `GET /<file>` for the embedded files; other paths fall through.
pub fn files() -> impl Filter<Extract = (Response<&'static [u8]>,), Error = warp::Rejection> + Clone
{
    warp::get()
        .and(warp::path::tail())
        .and_then(|tail: warp::path::Tail| async move {
            let (body, media) = asset(tail.as_str()).ok_or_else(warp::reject::not_found)?;
            let mut response = Response::new(body);
            let headers = response.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(media));
            // Always revalidate: a page from an older ferry must not talk to a
            // newer one from the cache.
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            headers.insert("content-security-policy", HeaderValue::from_static(CSP));
            headers.insert(
                "x-content-type-options",
                HeaderValue::from_static("nosniff"),
            );
            headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
            headers.insert(
                "cross-origin-opener-policy",
                HeaderValue::from_static("same-origin"),
            );
            Ok::<_, warp::Rejection>(response)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_file_is_embedded() {
        let (page, media) = asset("").expect("index.html is embedded");
        assert!(media.starts_with("text/html"));
        assert!(!page.is_empty());
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if name.ends_with(".js") || name.ends_with(".html") || name.ends_with(".css") {
                assert!(asset(&name).is_some(), "web/{name} is not embedded");
            }
        }
        assert!(asset("../Cargo.toml").is_none());
        assert!(asset("test/blake3.test.mjs").is_none());
    }
}
