//! Logs (tracing) go to stderr; `-v` raises the level, `-q` keeps errors
//! only, `RUST_LOG` overrides both.
//!
//! At the default level a log line is for people, like every other message:
//! "warning: cannot fsync folder /x (dir=/x)", no timestamp, colour only
//! on a terminal. `-v` adds timestamps and levels for debugging.

use std::fmt;
use std::io::IsTerminal;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// Installs the stderr subscriber once per process: warnings from ferry
/// by default, ferry's debug logs with `-v`, everything's with `-vv`,
/// errors only with `quiet`; `RUST_LOG`, when set, decides instead.
pub fn init(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        // webrtc-rs warns about routine ICE events; users see ferry's own messages.
        (false, 0) => "ferry=warn",
        (false, 1) => "ferry=debug,warn",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let ansi = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false);
    let _ = if verbose == 0 {
        builder.event_format(Plain { ansi }).try_init()
    } else {
        builder.try_init()
    };
}

/// "warning: MESSAGE (key=value, ...)".
struct Plain {
    ansi: bool,
}

impl<S, N> FormatEvent<S, N> for Plain
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let (word, colour) = match *event.metadata().level() {
            Level::ERROR => ("error", "31"),
            Level::WARN => ("warning", "33"),
            Level::INFO => ("note", "0"),
            _ => ("debug", "2"),
        };
        if self.ansi {
            write!(writer, "\x1b[{colour}m{word}:\x1b[0m ")?;
        } else {
            write!(writer, "{word}: ")?;
        }
        ctx.format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}
