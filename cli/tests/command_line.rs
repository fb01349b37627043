//! The `jpki` command line without a card: the committed man page is the generated one, the
//! completion scripts are generated, every command has its `--help`, and usage errors exit 2.
//! (The commands against the virtual card are tested by the workspace's tests/jpki_command.rs.)

use std::path::Path;
use std::process::{Command, Output};

fn jpki(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jpki"))
        .args(args)
        .output()
        .expect("run jpki")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn committed_man_page_is_the_generated_one() {
    let out = jpki(&["generate", "man"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../man/jpki.1");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == text(&out.stdout),
        "{} differs from `jpki generate man`: regenerate it with\n  \
         cargo run -q -p jpki-cli -- generate man > man/jpki.1",
        path.display()
    );
    for section in ["SYNOPSIS", "COMMANDS", "EXIT STATUS", "FILES", "SEE ALSO"] {
        assert!(committed.contains(section), "{section}");
    }
    assert!(
        !committed.contains("generate"),
        "no hidden command in the man page"
    );
}

#[test]
fn completion_scripts() {
    for (shell, want) in [
        ("bash", "complete -F _jpki"),
        ("zsh", "#compdef jpki"),
        ("fish", "complete -c jpki"),
    ] {
        let out = jpki(&["generate", "completions", shell]);
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        assert!(script.contains(want), "{shell}: {want:?}");
        for word in ["virtual-card", "password-file", "auth-ca", "p11-kit"] {
            assert!(script.contains(word), "{shell} completes {word}");
        }
        assert!(!script.contains("generate"), "{shell}: no hidden command");
    }
    let out = jpki(&["generate", "completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn every_command_has_its_help() {
    for (args, usage) in [
        (&["--help"][..], "Usage: jpki <COMMAND>"),
        (&["help"], "Usage: jpki <COMMAND>"),
        (&["status", "--help"], "Usage: jpki status [OPTIONS]"),
        (&["cert", "--help"], "Usage: jpki cert <COMMAND>"),
        (
            &["cert", "export", "--help"],
            "Usage: jpki cert export [OPTIONS] <CERT>",
        ),
        (&["help", "cert", "export"], "Usage: jpki cert export"),
        (&["pin", "--help"], "Usage: jpki pin <COMMAND>"),
        (
            &["pin", "change", "-h"],
            "Usage: jpki pin change [OPTIONS] <PIN>",
        ),
        (
            &["register", "--help"],
            "Usage: jpki register [OPTIONS] <TARGET>",
        ),
        (
            &["unregister", "--help"],
            "Usage: jpki unregister [OPTIONS] <TARGET>",
        ),
        (
            &["virtual-card", "--help"],
            "Usage: jpki virtual-card [OPTIONS]",
        ),
    ] {
        let out = jpki(args);
        let help = text(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "jpki {args:?}");
        assert!(help.contains(usage), "jpki {args:?}: {usage:?} in\n{help}");
    }
    let top = text(&jpki(&["--help"]).stdout);
    for want in [
        "pin change",
        "cert export",
        "virtual-card",
        "Exit codes:",
        "9  PIN entry",
    ] {
        assert!(top.contains(want), "{want:?} in\n{top}");
    }
    let out = jpki(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).starts_with("jpki "));
}

/// Usage errors exit 2 (`exit::USAGE`) with a message on stderr and nothing on stdout.
#[test]
fn usage_errors_exit_2() {
    for args in [
        &[][..],
        &["frobnicate"],
        &["cert"],
        &["cert", "import"],
        &["cert", "export"],
        &["cert", "export", "everything"],
        &["cert", "export", "auth", "--bogus"],
        &["pin"],
        &["pin", "change", "admin"],
        &["pin", "change", "auth", "--pin-file"],
        &["status", "--password=JPKITEST1"],
        &["status", "--reader"],
        &["register"],
        &["register", "chrome"],
        &["unregister", "nss", "--module", "x.so"],
        &["virtual-card", "--port", "99999"],
        &["virtual-card", "--latency-ms", "-1"],
        &["virtual-card", "--fault", "no-such-fault"],
        &["generate"],
    ] {
        let out = jpki(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "jpki {args:?}: {}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "jpki {args:?}");
        assert!(!out.stderr.is_empty(), "jpki {args:?}");
    }
    let err = text(&jpki(&["virtual-card", "--fault", "no-such-fault"]).stderr);
    assert!(err.contains("no-such-fault"), "{err}");
}

/// As with the hand-written parser before: `--name=value`, options before or after the
/// argument, the last of a repeated option or of `--der`/`--pem` wins. (No card is needed to
/// see this: without a PC/SC service the command gets as far as looking for a reader, exit 3,
/// instead of a usage error, exit 2.)
#[test]
fn accepted_spellings() {
    for args in [
        &["status", "--reader=A", "--reader", "B", "--json"][..],
        &["status", "--password", "--password-file=/dev/null"],
        &[
            "cert",
            "export",
            "--der",
            "--pem",
            "auth",
            "-o",
            "/dev/null",
        ],
        &[
            "cert",
            "export",
            "sign-ca",
            "--out=/dev/null",
            "--reader",
            "X",
        ],
        &[
            "pin",
            "change",
            "--stdin",
            "--pin-file",
            "/dev/null",
            "sign",
        ],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_jpki"))
            .args(args)
            .env("PCSCLITE_CSOCK_NAME", "/nonexistent/pcscd.comm")
            .output()
            .expect("run jpki");
        assert_eq!(
            out.status.code(),
            Some(3),
            "jpki {args:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
}
