//! Logs (tracing) go to stderr; `-v` raises the level, `RUST_LOG` overrides.

use tracing_subscriber::EnvFilter;

pub fn init(verbose: u8) {
    let default = match verbose {
        // webrtc-rs warns about routine ICE events; users see ferry's own messages.
        0 => "ferry=warn",
        1 => "ferry=debug,warn",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
