//! `jpki generate man` and `jpki generate completions SHELL` (hidden): the man page and the
//! shell completion scripts, generated from the clap declarations in `cli.rs`.
//!
//! The man page is one page for every command, as before (`man jpki`): NAME, SYNOPSIS and
//! DESCRIPTION of the program, then each command's synopsis, description and options, all
//! rendered by clap_mangen. Only the EXIT STATUS (from [`crate::util::exit::TABLE`]), FILES and
//! SEE ALSO sections are written here, with roff, since clap has no notion of them. The
//! committed `man/jpki.1` is this output (`cli/tests/generated.rs` fails when it differs).

use crate::cli::{Cli, Generate};
use crate::util::{exit, Fail};
use clap::CommandFactory;
use clap_mangen::Man;
use roff::{bold, italic, roman, Roff};
use std::io::Write;

/// Runs `jpki generate ...`: writes to standard output.
pub fn run(what: Generate) -> Result<u8, Fail> {
    let text = match what {
        Generate::Man => man_page(),
        Generate::Completions { shell } => {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut completed_command(), "jpki", &mut buf);
            String::from_utf8(buf).expect("completion scripts are UTF-8")
        }
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Fail::new(exit::FAILURE, format!("standard output: {e}")))?;
    Ok(0)
}

/// The command line that the completion scripts complete: `jpki` without the hidden commands
/// (clap_complete would offer them).
fn completed_command() -> clap::Command {
    let full = Cli::command();
    let mut cmd = clap::Command::new("jpki")
        .about(crate::cli::ABOUT)
        .version(env!("CARGO_PKG_VERSION"));
    for arg in full.get_arguments() {
        cmd = cmd.arg(arg.clone());
    }
    for sub in full.get_subcommands().filter(|s| !s.is_hide_set()) {
        cmd = cmd.subcommand(sub.clone());
    }
    cmd
}

/// The commands a user runs (`jpki status`, `jpki cert export`, ...), in declaration order:
/// the leaves of the command tree, without the hidden ones and clap's `help`.
fn leaves(cmd: &clap::Command, out: &mut Vec<clap::Command>) {
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        if sub.has_subcommands() {
            leaves(sub, out);
        } else {
            out.push(sub.clone());
        }
    }
}

/// One section of clap_mangen's output, without roff's preamble (written once, at the top of
/// the page) and without the section's `.SH` heading line.
fn section_body(man: &Man, render: fn(&Man, &mut dyn Write) -> std::io::Result<()>) -> String {
    let mut buf = Vec::new();
    render(man, &mut buf).expect("rendering to memory");
    let text = String::from_utf8(buf).expect("roff of UTF-8 text is UTF-8");
    let mut lines = without_preamble(&text);
    assert!(
        lines.next().is_some_and(|l| l.starts_with(".SH ")),
        "clap_mangen starts each section with .SH: {text}"
    );
    lines.map(|l| format!("{l}\n")).collect()
}

/// The lines of rendered roff after the preamble that roff writes first.
fn without_preamble(text: &str) -> std::str::Lines<'_> {
    let mut lines = text.lines();
    for preamble in [".ie \\n(.g .ds Aq \\(aq", ".el .ds Aq '"] {
        assert_eq!(lines.next(), Some(preamble), "roff's preamble");
    }
    lines
}

/// Roff built here, without the preamble.
fn roff_text(roff: &Roff) -> String {
    without_preamble(&roff.render())
        .map(|l| format!("{l}\n"))
        .collect()
}

/// One line of the SYNOPSIS: the command, its arguments with their possible values, its options
/// with their values (`-h|--help` only for `jpki` itself). clap_mangen's own synopsis leaves the
/// options' values out.
fn synopsis_line(cmd: &clap::Command) -> Vec<roff::Inline> {
    let name = cmd.get_bin_name().unwrap_or(cmd.get_name());
    let mut line = vec![bold(name)];
    let args: Vec<&clap::Arg> = cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set() && (a.get_id() != "help" || cmd.has_subcommands()))
        .collect();
    for arg in args.iter().filter(|a| a.is_positional()) {
        line.push(roman(" "));
        let values = arg.get_possible_values();
        let values: Vec<_> = values.iter().filter(|v| !v.is_hide_set()).collect();
        if values.is_empty() {
            line.push(italic(value_name(arg)));
        }
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                line.push(roman("|"));
            }
            line.push(bold(v.get_name()));
        }
    }
    for arg in args.iter().filter(|a| !a.is_positional()) {
        line.push(roman(" ["));
        if let Some(short) = arg.get_short() {
            line.push(bold(format!("-{short}")));
            if arg.get_long().is_some() {
                line.push(roman("|"));
            }
        }
        if let Some(long) = arg.get_long() {
            line.push(bold(format!("--{long}")));
        }
        if arg.get_action().takes_values() {
            line.push(roman(" "));
            line.push(italic(value_name(arg)));
        }
        line.push(roman("]"));
        if matches!(arg.get_action(), clap::ArgAction::Append) {
            line.push(roman("..."));
        }
    }
    if cmd.has_subcommands() {
        line.push(roman(" "));
        line.push(italic("command"));
    }
    line
}

fn value_name(arg: &clap::Arg) -> String {
    match arg.get_value_names() {
        Some(names) => names
            .iter()
            .map(|n| n.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        None => arg.get_id().as_str().to_uppercase(),
    }
}

/// The man page `jpki.1`.
pub fn man_page() -> String {
    let mut top = Cli::command();
    top.build();
    let mut commands = Vec::new();
    leaves(&top, &mut commands);
    let man = |cmd: clap::Command| {
        // One page: no "-h, --help" under every command (the page says it once).
        Man::new(cmd.mut_arg("help", |a| a.hide(true)))
            .title("JPKI")
            .section("1")
            .source(format!("jpki-pkcs11 {}", env!("CARGO_PKG_VERSION")))
            .manual("User Commands")
    };
    let top_man = man(top.clone());

    // roff's preamble, then the title: written here since roff drops the empty date argument.
    let mut page = Roff::new().render();
    page.push_str(&format!(
        ".TH JPKI 1 \"\" \"jpki-pkcs11 {}\" \"User Commands\"\n",
        env!("CARGO_PKG_VERSION")
    ));
    page.push_str(".SH NAME\n");
    page.push_str(&section_body(&top_man, Man::render_name_section));

    let mut synopsis = Roff::new();
    synopsis.control("SH", ["SYNOPSIS"]);
    for (i, cmd) in commands.iter().chain([&top]).enumerate() {
        if i > 0 {
            synopsis.control("br", []);
        }
        synopsis.text(synopsis_line(cmd));
    }
    page.push_str(&roff_text(&synopsis));

    page.push_str(".SH DESCRIPTION\n");
    page.push_str(&section_body(&top_man, Man::render_description_section));
    page.push_str(&roff_text(Roff::new().control("PP", []).text([
        roman("Each command has its own help: "),
        bold("jpki "),
        italic("command"),
        bold(" --help"),
        roman("."),
    ])));

    page.push_str(".SH COMMANDS\n");
    for cmd in &commands {
        let name = cmd.get_bin_name().unwrap_or(cmd.get_name()).to_string();
        page.push_str(&roff_text(Roff::new().control("SS", [name.as_str()])));
        let m = man(cmd.clone());
        page.push_str(&section_body(&m, Man::render_description_section));
        if cmd.get_arguments().any(|a| !a.is_hide_set()) {
            page.push_str(&section_body(&m, Man::render_options_section));
        }
    }

    let mut tail = Roff::new();
    tail.control("SH", ["EXIT STATUS"]);
    for (code, what) in exit::TABLE {
        tail.control("TP", [])
            .text([bold(code.to_string())])
            .text([roman(format!(
                "{}{}.",
                what[..1].to_uppercase(),
                &what[1..]
            ))]);
    }
    tail.control("SH", ["FILES"])
        .control("TP", [])
        .text([italic("<libdir>/pkcs11/libjpki_pkcs11.so")])
        .text([roman("The PKCS#11 module.")])
        .control("TP", [])
        .text([
            italic("/etc/jpki-pkcs11.toml"),
            roman(", "),
            italic("~/.config/jpki-pkcs11/config.toml"),
            roman(", "),
            bold("$JPKI_PKCS11_CONF"),
        ])
        .text([roman(
            "The module's configuration (logging, tokens shown, RSA-PSS, pinentry, signing programs), applied in \
             this order. On macOS the first two are /Library/Application Support/jpki-pkcs11/config.toml \
             and ~/Library/Application Support/jpki-pkcs11/config.toml; on Windows \
             %PROGRAMDATA%\\jpki-pkcs11\\config.toml and %APPDATA%\\jpki-pkcs11\\config.toml.",
        )]);
    tail.control("SH", ["SEE ALSO"]);
    let see_also = [
        ("pkcs11-tool", "1"),
        ("modutil", "1"),
        ("p11-kit", "8"),
        ("pinentry", "1"),
    ];
    for (i, (name, section)) in see_also.iter().enumerate() {
        let sep = if i + 1 < see_also.len() { "," } else { "" };
        tail.text([bold(*name), roman(format!("({section}){sep}"))]);
    }
    page.push_str(&roff_text(&tail));
    page
}
