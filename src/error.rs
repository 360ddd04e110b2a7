//! The errors callers match on, and how any error reaches a person: one
//! line, and an exit code.

/// Ctrl-C, or the user interrupting otherwise: exit code 130.
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
pub struct Interrupted;

/// The user's interrupt wins over whatever else failed meanwhile: Ctrl-C
/// also stops the built-in rendezvous and the peer, and their errors
/// ("the server is shutting down", a lost peer) can arrive first.
pub fn interrupt_wins<T>(
    cancel: &tokio_util::sync::CancellationToken,
    result: anyhow::Result<T>,
) -> anyhow::Result<T> {
    match result {
        Err(_) if cancel.is_cancelled() => Err(Interrupted.into()),
        other => other,
    }
}

/// The peer went away without a word (killed, or the network path died).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PeerLost(pub String);

/// A mistake in what the user typed: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// An error and its causes as one line for people: a cause whose text the
/// line already holds is not repeated (a message that embeds its source
/// would otherwise say it twice), and control characters from file names
/// are shown escaped, never printed raw.
pub fn error_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Exit code for an error that ended a command.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if err.downcast_ref::<Interrupted>().is_some() {
        130
    } else if err.downcast_ref::<UsageError>().is_some()
        || err.downcast_ref::<crate::signal::TicketError>().is_some()
    {
        2
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::error_line;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read x: {0}")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn an_error_line_says_each_cause_once_and_escapes_control_characters() {
        let io = std::io::Error::other("disk on fire");
        let e = anyhow::Error::new(Outer(io)).context("sending a\nb");
        assert_eq!(error_line(&e), "sending a\\nb: cannot read x: disk on fire");
        let plain = anyhow::anyhow!("first").context("second");
        assert_eq!(error_line(&plain), "second: first");
    }
}
