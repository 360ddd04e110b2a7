//! Progress and human output on stderr. The only module that uses indicatif.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{HumanBytes, HumanDuration, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// What the user sees while a transfer runs. Owned by the driver task.
pub struct Progress {
    bar: ProgressBar,
    quiet: bool,
    /// Draw the bar (stderr is a terminal and not --quiet).
    visible: bool,
    verb: &'static str,
}

fn bar_style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// The size of an offer in words: "12.00 MiB", "a stream of unknown
/// length", or "12.00 MiB and a stream of unknown length".
pub fn offer_size(manifest: &crate::proto::Manifest) -> String {
    let known = HumanBytes(manifest.total_bytes());
    match (manifest.has_stream(), manifest.total_bytes()) {
        (true, 0) => "a stream of unknown length".into(),
        (true, _) => format!("{known} and a stream of unknown length"),
        (false, _) => known.to_string(),
    }
}

impl Progress {
    /// `verb` is "sending" or "receiving". Hidden when stderr is not a
    /// terminal or with `--quiet`.
    pub fn new(verb: &'static str, quiet: bool) -> Progress {
        let visible = !quiet && std::io::stderr().is_terminal();
        // Drawn only from `begin`, so it never paints over the offer or the question.
        let bar = ProgressBar::hidden();
        bar.set_style(bar_style(&format!(
            "{verb} {{prefix}} {{msg:20!}} {{bar:30.cyan/blue}} {{bytes}}/{{total_bytes}} {{bytes_per_sec}} ETA {{eta}}"
        )));
        Progress {
            bar,
            quiet,
            visible,
            verb,
        }
    }

    /// A line of status for people (stderr), above the bar.
    pub fn say(&self, line: &str) {
        if !self.quiet {
            self.bar.suspend(|| eprintln!("{line}"));
        }
    }

    /// The offer is accepted: size the bar (`None`: a stream, whose end
    /// nobody knows, gets a count and a rate but no total or ETA). It is
    /// drawn from [`begin`](Self::begin).
    pub fn start(&mut self, total: Option<u64>, already: u64, path: &str) {
        self.set_path(path);
        let Some(total) = total else {
            self.bar.set_style(bar_style(&format!(
                "{} {{prefix}} {{msg:20!}} {{bytes}} {{bytes_per_sec}}",
                self.verb
            )));
            return;
        };
        self.bar.set_length(total);
        self.bar.set_position(already);
        if already > 0 && already >= total {
            self.say(&format!(
                "all {} is already here and re-verified; confirming with the sender",
                HumanBytes(total)
            ));
        } else if already > 0 {
            self.say(&format!(
                "resuming from {} of {}",
                HumanBytes(already),
                HumanBytes(total)
            ));
        }
    }

    /// The first payload byte: draw the bar, its rate and ETA counted from
    /// now (not from the time the receiver spent at its prompt).
    pub fn begin(&mut self) {
        self.bar.reset_elapsed();
        self.bar.reset_eta();
        if self.visible {
            self.bar
                .set_draw_target(ProgressDrawTarget::stderr_with_hz(8));
        }
    }

    /// Shows the network path (`direct`, `relay`, ...) after the verb, in
    /// the bar's line.
    pub fn set_path(&self, path: &str) {
        self.bar.set_prefix(path.to_string());
    }

    /// Shows `name` as the file being transferred now.
    pub fn file(&self, name: &str) {
        self.bar.set_message(name.to_string());
    }

    /// Counts `bytes` more payload as moved.
    pub fn advance(&self, bytes: u64) {
        self.bar.inc(bytes);
    }

    /// Clear the bar and print the closing summary.
    pub fn finish(&self, summary: &Summary) {
        self.bar.finish_and_clear();
        if self.quiet {
            return;
        }
        let path = match summary.path.as_str() {
            "relay" => "relayed through a TURN server".to_string(),
            other => format!("{other} path"),
        };
        eprintln!(
            "{} {} file{}, {}{} ({path})",
            summary.verb,
            summary.files,
            if summary.files == 1 { "" } else { "s" },
            HumanBytes(summary.bytes),
            timing(summary.moved, summary.seconds),
        );
        if summary.moved == 0 && summary.bytes > 0 {
            eprintln!(
                "  nothing needed to move: it was all already there, verified block by block"
            );
        } else if summary.moved < summary.bytes {
            eprintln!(
                "  {} moved this run; the rest was already there, verified",
                HumanBytes(summary.moved)
            );
        }
    }

    /// Stops the bar where it stands, left on screen: the transfer failed.
    pub fn abandon(&self) {
        self.bar.abandon();
    }
}

/// Closing figures, for people and for `--json`.
pub struct Summary {
    /// "sent" or "received", the first word of the closing line.
    pub verb: &'static str,
    /// Files in the offer (folders not counted).
    pub files: usize,
    /// Size of the transfer in bytes, resumed bytes included.
    pub bytes: u64,
    /// Payload bytes that crossed the channels in this run.
    pub moved: u64,
    /// Seconds from the first payload byte.
    pub seconds: f64,
    /// The network path: `direct`, `srflx`, `relay` or `unknown`.
    pub path: String,
}

/// " in 1.4 s at 71.2 MiB/s": the bytes this run moved, timed from its first
/// one. Nothing for a run that moved nothing; no rate for one too quick to
/// time honestly.
fn timing(moved: u64, seconds: f64) -> String {
    if moved == 0 {
        return String::new();
    }
    if seconds < 0.1 {
        return " in under 0.1 s".into();
    }
    // A rate is only worth saying for a transfer big enough to measure.
    let show_rate = moved >= 1 << 20;
    let took = if seconds < 10.0 {
        format!("{seconds:.1} s")
    } else {
        HumanDuration(Duration::from_secs_f64(seconds)).to_string()
    };
    if !show_rate {
        return format!(" in {took}");
    }
    let rate = HumanBytes((moved as f64 / seconds) as u64);
    format!(" in {took} at {rate}/s")
}
