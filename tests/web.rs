//! The browser client's JavaScript unit tests (BLAKE3 and friends), run with
//! Node's built-in test runner so that `cargo test` covers them too.

use std::process::Command;

#[test]
fn javascript_unit_tests_pass() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("node")
        .args(["--test", "web/test/"])
        .current_dir(root)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `node` ({e}): install Node.js 20+ (apt-get install nodejs) to run the web tests"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "node --test web/test/ failed:\n{stdout}\n{stderr}"
    );
    // Guard against a runner that found nothing to run.
    let passed = stdout
        .lines()
        .find_map(|l| l.strip_prefix("# pass "))
        .and_then(|n| n.trim().parse::<u32>().ok())
        .unwrap_or(0);
    assert!(
        passed >= 10,
        "expected the web tests to run, got:\n{stdout}"
    );
}
