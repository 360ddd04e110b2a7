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
}

impl Progress {
    /// `verb` is "sending" or "receiving". Hidden when stderr is not a
    /// terminal or with `--quiet`.
    pub fn new(verb: &str, quiet: bool) -> Progress {
        let visible = !quiet && std::io::stderr().is_terminal();
        // Drawn only from `start`, so it never paints over the offer or the question.
        let bar = ProgressBar::hidden();
        let style = ProgressStyle::with_template(&format!(
            "{verb} {{prefix}} {{msg:20!}} {{bar:30.cyan/blue}} {{bytes}}/{{total_bytes}} {{bytes_per_sec}} ETA {{eta}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        Progress {
            bar,
            quiet,
            visible,
        }
    }

    /// A line of status for people (stderr), above the bar.
    pub fn say(&self, line: &str) {
        if !self.quiet {
            self.bar.suspend(|| eprintln!("{line}"));
        }
    }

    /// The offer is accepted: size the bar. It is drawn from [`begin`](Self::begin).
    pub fn start(&mut self, total: u64, already: u64, path: &str) {
        self.set_path(path);
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

    pub fn set_path(&self, path: &str) {
        self.bar.set_prefix(path.to_string());
    }

    pub fn file(&self, name: &str) {
        self.bar.set_message(name.to_string());
    }

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

    pub fn abandon(&self) {
        self.bar.abandon();
    }
}

/// Closing figures, for people and for `--json`.
pub struct Summary {
    pub verb: &'static str,
    pub files: usize,
    pub bytes: u64,
    pub moved: u64,
    pub seconds: f64,
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
    let took = if seconds < 10.0 {
        format!("{seconds:.1} s")
    } else {
        HumanDuration(Duration::from_secs_f64(seconds)).to_string()
    };
    let rate = HumanBytes((moved as f64 / seconds) as u64);
    format!(" in {took} at {rate}/s")
}
