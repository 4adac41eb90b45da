//! The configuration reference of `docs/configuration.md`, rendered from the clap definitions
//! in [`crate::cli`], so that the page says what `--help` says: for every command, each setting's
//! flag, environment variable, default and help text. `tests/docs.rs` fails when the page and
//! the definitions disagree, and rewrites the block with `UPDATE_DOCS=1`.
//!
//! Defaults of secrets are never printed: an argument declared with `hide_default_value`, or
//! whose value is a [`Secret`], shows "hidden" instead.

use std::any::TypeId;

use clap::{Arg, ArgAction, Command, CommandFactory};

use crate::secret::Secret;

/// The line before the rendered block in `docs/configuration.md`.
pub const BEGIN: &str =
    "<!-- BEGIN configuration reference: generated from src/cli.rs by tests/docs.rs; do not edit by hand -->";
/// The line after it.
pub const END: &str = "<!-- END configuration reference -->";

/// The reference for `vod-ingest`'s own command line.
pub fn render() -> String {
    render_command(crate::cli::Cli::command())
}

/// The reference for any clap command: one section per subcommand (nested ones included),
/// each with a table of its settings.
pub fn render_command(mut cli: Command) -> String {
    cli.build();
    let mut out = String::new();
    let name = cli.get_name().to_owned();
    for sub in cli.get_subcommands() {
        render_subcommand(&mut out, &name, sub);
    }
    out
}

fn render_subcommand(out: &mut String, parent: &str, cmd: &Command) {
    let path = format!("{parent} {}", cmd.get_name());
    let args: Vec<&Arg> = cmd.get_arguments().filter(|a| shown(a)).collect();
    let subs: Vec<&Command> = cmd
        .get_subcommands()
        .filter(|s| s.get_name() != "help")
        .collect();
    if cmd.get_name() == "help" {
        return;
    }
    out.push_str(&format!("### `{path}`\n\n"));
    if let Some(about) = cmd.get_about() {
        out.push_str(&format!("{}\n\n", one_line(&about.to_string())));
    }
    if !args.is_empty() {
        out.push_str("| flag | environment | default | meaning |\n|---|---|---|---|\n");
        for arg in args {
            out.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                flag(arg),
                arg.get_env()
                    .map(|e| format!("`{}`", e.to_string_lossy()))
                    .unwrap_or_else(|| "—".into()),
                default(arg),
                help(arg),
            ));
        }
        out.push('\n');
    } else if subs.is_empty() {
        out.push_str("No settings.\n\n");
    }
    for sub in subs {
        render_subcommand(out, &path, sub);
    }
}

/// Arguments a user can set: not hidden, not clap's own `--help` / `--version`.
fn shown(arg: &Arg) -> bool {
    !arg.is_hide_set()
        && !matches!(
            arg.get_action(),
            ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong | ArgAction::Version
        )
}

fn flag(arg: &Arg) -> String {
    if arg.is_positional() {
        let name = arg
            .get_value_names()
            .and_then(|names| names.first())
            .map(|n| n.to_string())
            .unwrap_or_else(|| arg.get_id().to_string().to_ascii_uppercase());
        return format!("`<{name}>` (argument)");
    }
    let mut parts = Vec::new();
    if let Some(long) = arg.get_long() {
        parts.push(format!("`--{long}`"));
    }
    if let Some(short) = arg.get_short() {
        parts.push(format!("`-{short}`"));
    }
    parts.join(", ")
}

/// The default as `--help` would show it, unless it is a secret's.
fn default(arg: &Arg) -> String {
    let values = arg.get_default_values();
    if values.is_empty() {
        return "—".into();
    }
    if is_secret(arg) {
        return "hidden".into();
    }
    let joined = values
        .iter()
        .map(|v| v.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(",");
    if joined.is_empty() {
        "(empty)".into()
    } else {
        format!("`{}`", joined.replace('|', "\\|"))
    }
}

fn is_secret(arg: &Arg) -> bool {
    arg.is_hide_default_value_set() || arg.get_value_parser().type_id() == TypeId::of::<Secret>()
}

fn help(arg: &Arg) -> String {
    let text = arg
        .get_long_help()
        .or_else(|| arg.get_help())
        .map(|h| h.to_string())
        .unwrap_or_default();
    let mut text = table_cell(&one_line(&text));
    if matches!(arg.get_action(), ArgAction::SetTrue) {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str("(A switch: give the flag, or set the variable to `true`.)");
    }
    if text.is_empty() {
        "—".into()
    } else {
        text
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Text fit for a markdown table cell: `|` escaped everywhere, and `<` / `>` outside code
/// spans (where they would start HTML).
fn table_cell(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_code = false;
    for c in text.chars() {
        match c {
            '`' => {
                in_code = !in_code;
                out.push(c);
            }
            '|' => out.push_str("\\|"),
            '<' if !in_code => out.push_str("&lt;"),
            '>' if !in_code => out.push_str("&gt;"),
            _ => out.push(c),
        }
    }
    out
}

/// The page lacks a marker line the reference is written between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MissingMarker {
    #[error("the line {BEGIN:?} is missing")]
    Begin,
    #[error("the line {END:?} is missing (after {BEGIN:?})")]
    End,
}

/// `doc` with the text between [`BEGIN`] and [`END`] replaced by `rendered`; an error that says
/// what is missing when the markers are not there.
pub fn replace_block(doc: &str, rendered: &str) -> Result<String, MissingMarker> {
    let (before, rest) = doc.split_once(BEGIN).ok_or(MissingMarker::Begin)?;
    let (_, after) = rest.split_once(END).ok_or(MissingMarker::End)?;
    Ok(format!(
        "{before}{BEGIN}\n\n{}\n{END}{after}",
        rendered.trim_end()
    ))
}

/// The block between the markers, as [`replace_block`] writes it.
pub fn current_block(doc: &str) -> Option<&str> {
    let (_, rest) = doc.split_once(BEGIN)?;
    let (block, _) = rest.split_once(END)?;
    Some(block)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, clap::Parser)]
    #[command(name = "demo")]
    struct Demo {
        #[command(subcommand)]
        command: DemoCommand,
    }

    #[derive(Debug, clap::Subcommand)]
    enum DemoCommand {
        /// Serve things.
        Serve {
            /// Where to listen, e.g. <host>:<port> or `a|b`.
            #[arg(long, env = "DEMO_ADDR", default_value = "127.0.0.1:80")]
            addr: String,
            /// The key.
            #[arg(long, env = "DEMO_KEY", default_value = "s3cret-in-a-secret")]
            key: Secret,
            /// Another key.
            #[arg(long, default_value = "s3cret-hidden", hide_default_value = true)]
            other: String,
            /// Be loud.
            #[arg(long)]
            loud: bool,
            #[arg(long, hide = true)]
            internal: Option<String>,
            job_id: String,
        },
    }

    #[test]
    fn renders_flag_environment_default_and_help() {
        let text = render_command(Demo::command());
        assert!(text.contains("### `demo serve`\n\nServe things"), "{text}");
        assert!(
            text.contains("| `--addr` | `DEMO_ADDR` | `127.0.0.1:80` | Where to listen, e.g. &lt;host&gt;:&lt;port&gt; or `a\\|b` |"),
            "{text}"
        );
        assert!(
            text.contains("| `--loud` | — | `false` | Be loud (A switch"),
            "{text}"
        );
        assert!(
            text.contains("| `<JOB_ID>` (argument) | — | — | — |"),
            "{text}"
        );
        assert!(!text.contains("internal"), "{text}");
        assert!(!text.contains("--help"), "{text}");
    }

    #[test]
    fn defaults_of_secrets_are_never_printed() {
        let text = render_command(Demo::command());
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("| `--key` | `DEMO_KEY` | hidden |"), "{text}");
        assert!(text.contains("| `--other` | — | hidden |"), "{text}");
        let ours = render();
        assert!(!ours.contains("emulator-access-key-secret"), "{ours}");
    }

    #[test]
    fn every_command_and_variable_of_the_cli_is_in_the_reference() {
        let text = render();
        for section in [
            "`vod-ingest run`",
            "`vod-ingest emulator`",
            "`vod-ingest api-key create`",
        ] {
            assert!(text.contains(section), "{section} missing");
        }
        for env in [
            "DATABASE_URL",
            "VOD_INGEST_CONCURRENCY",
            "VOD_CALLBACK_AUTH_KEYS",
        ] {
            assert!(text.contains(&format!("`{env}`")), "{env} missing");
        }
    }

    #[test]
    fn the_block_is_replaced_between_its_markers_only() {
        let doc = format!("intro\n{BEGIN}\nold\n{END}\noutro\n");
        let new = replace_block(&doc, "new\n").unwrap();
        assert_eq!(new, format!("intro\n{BEGIN}\n\nnew\n{END}\noutro\n"));
        assert_eq!(current_block(&new), Some("\n\nnew\n"));
        assert!(replace_block("no markers", "x")
            .unwrap_err()
            .to_string()
            .contains("missing"));
    }
}
