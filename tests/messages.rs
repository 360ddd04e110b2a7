//! What ferry says when something is wrong: one line, each cause said once,
//! names with control characters shown escaped, and what to do next.

mod common;

use common::*;

/// `ferry ARGS` to completion; returns its exit code and stderr.
fn fails(args: &[&str]) -> (Option<i32>, String) {
    let out = run(ferry().args(args));
    (out.status.code(), out.stderr)
}

#[test]
fn local_problems_are_one_line_said_once() {
    let src = tempdir();
    let file = src.path().join("f");
    write(&file, b"x");
    // A cause that the message already holds is not repeated
    // ("Not a directory (os error 20): Not a directory (os error 20)").
    let (code, err) = fails(&["send", &format!("{}/x", path_str(&file))]);
    assert_eq!(code, Some(1));
    assert_eq!(
        err,
        format!(
            "error: cannot read {}/x: not a directory\n",
            path_str(&file)
        )
    );

    // A newline in a name is shown as \n, on the one line, with the reason once.
    let docs = src.path().join("docs");
    write(&docs.join("new\nline.txt"), b"x");
    let (code, err) = fails(&["send", path_str(&docs)]);
    assert_eq!(code, Some(1));
    assert_eq!(
        err,
        format!(
            "error: cannot send {}/new\\nline.txt: its name has a control character; rename it to send it\n",
            path_str(&docs)
        )
    );

    // A name Windows would read as a drive is refused on every system, and says why.
    let drive = src.path().join("a:b.txt");
    write(&drive, b"x");
    let (code, err) = fails(&["send", path_str(&drive)]);
    assert_eq!(code, Some(1));
    assert_eq!(
        err,
        format!(
            "error: cannot send {}: it starts with a letter and a colon, which Windows reads as a drive; rename it to send it\n",
            path_str(&drive)
        )
    );
}

#[test]
fn a_spent_ticket_says_the_sender_has_finished() {
    let src = tempdir();
    write(&src.path().join("x"), b"x");
    let sender = send(&[path_str(&src.path().join("x"))], None);
    let ticket = sender.ticket.clone();
    let dst = tempdir();
    assert!(receive(&sender.ticket, &["--out", path_str(dst.path())])
        .status
        .success());
    assert!(sender.wait().status.success());
    let again = tempdir();
    let out = receive(&ticket, &["--out", path_str(again.path())]);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr
            .starts_with("error: the sender has finished or stopped: nothing answers at ws://")
            && out.stderr.ends_with("any more; ask for a new ticket\n")
            && out.stderr.lines().count() == 1,
        "{}",
        out.stderr
    );
}

#[test]
fn every_help_lists_the_exit_codes() {
    for cmd in [
        &["--help"][..],
        &["send", "--help"],
        &["receive", "--help"],
        &["serve", "--help"],
    ] {
        let out = run(ferry().args(cmd));
        assert!(out.status.success(), "{cmd:?}");
        assert!(
            out.stdout
                .contains("Exit codes: 0 done, 1 failed, 2 usage error or bad ticket, 130 interrupted (Ctrl-C)"),
            "{cmd:?}: {}",
            out.stdout
        );
    }
    let out = run(ferry().args(["send", "--help"]));
    assert!(out
        .stdout
        .contains("`-` reads standard input as one stream (needs --name)"));
}
