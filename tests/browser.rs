//! The browser client's JavaScript: its unit tests (web/test/, in Node) and its
//! end-to-end tests in headless Chromium against the real CLI and itself
//! (web/e2e/, driven by playwright-core). Both run under Node's built-in test
//! runner so that `cargo test` covers them. Without Node.js, npm or Chromium
//! these fail with how to install them; they never skip.

use std::process::Command;
use std::sync::Once;

/// Installs web/'s pinned npm packages (jsQR, playwright-core) once.
fn npm_packages() {
    static NPM: Once = Once::new();
    NPM.call_once(|| {
        let web = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
        if web.join("node_modules/playwright-core").exists()
            && web.join("node_modules/jsqr").exists()
        {
            return;
        }
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&web)
            .status()
            .unwrap_or_else(|e| panic!("cannot run `npm` ({e}): install Node.js 20+ and npm"));
        assert!(status.success(), "`npm ci` in web/ failed");
    });
}

/// Runs `node --test ARGS` from the repository root; returns its TAP output
/// after checking that it passed, ran at least `min_pass` tests and skipped none.
fn node_tests(args: &[&str], min_pass: u32) -> String {
    npm_packages();
    let out = Command::new("node")
        .arg("--test")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("FERRY_BIN", env!("CARGO_BIN_EXE_ferry"))
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `node` ({e}): install Node.js 20+ (apt-get install nodejs npm)")
        });
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "node --test {args:?} failed:\n{stdout}\n{stderr}"
    );
    let count = |key: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|n| n.trim().parse::<u32>().ok())
            .unwrap_or(0)
    };
    // Guard against a runner that found nothing to run.
    assert!(
        count("# pass ") >= min_pass,
        "expected at least {min_pass} tests to pass:\n{stdout}"
    );
    assert_eq!(count("# skipped "), 0, "no test may be skipped:\n{stdout}");
    stdout
}

#[test]
fn javascript_unit_tests() {
    node_tests(&["web/test/"], 50);
}

#[test]
fn browser_end_to_end() {
    // One browser test at a time: each moves hundreds of MiB on 2 cores.
    // Screenshots of each state land in target/screenshots.
    node_tests(&["--test-concurrency=1", "web/e2e/"], 14);
}
