//! `perfhook completions SHELL` and `perfhook man`: shell completion scripts and a roff man
//! page, generated from the same argument definitions the binary parses.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::Cli;

/// Arguments of `completions`.
#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    #[arg(value_name = "SHELL")]
    pub shell: Shell,
}

pub(super) fn completions(args: &CompletionsArgs) -> anyhow::Result<ExitCode> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "perfhook", &mut script);
    std::io::stdout()
        .lock()
        .write_all(&script)
        .context("cannot write the completion script")?;
    Ok(ExitCode::SUCCESS)
}

/// The man page: perfhook(1) with every subcommand's options, one page in all.
pub(super) fn man() -> anyhow::Result<ExitCode> {
    let command = Cli::command();
    let mut page = Vec::new();
    let man = clap_mangen::Man::new(command.clone());
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    // One page for all: each subcommand is a section here, not a perfhook-NAME(1) page.
    for sub in command
        .get_subcommands()
        .filter(|sub| !sub.is_hide_set() && sub.get_name() != "help")
    {
        render_subcommand(&mut page, sub, "perfhook")?;
    }
    render_exit_status(&mut page)?;
    man.render_version_section(&mut page)?;
    std::io::stdout()
        .lock()
        .write_all(&page)
        .context("cannot write the man page")?;
    Ok(ExitCode::SUCCESS)
}

/// One `.SH` section per subcommand (and nested subcommands), with its usage and options.
fn render_subcommand(
    page: &mut Vec<u8>,
    command: &clap::Command,
    parent: &str,
) -> anyhow::Result<()> {
    let name = format!("{parent} {}", command.get_name());
    writeln!(page, ".SH \"{}\"", name.to_uppercase())?;
    if let Some(about) = command.get_about() {
        writeln!(page, "{}", escape(&about.to_string()))?;
    }
    let man = clap_mangen::Man::new(command.clone().bin_name(name.clone()));
    let mut options = Vec::new();
    man.render_synopsis_section(&mut options)?;
    man.render_options_section(&mut options)?;
    // Each section arrives as `.SH SYNOPSIS` / `.SH OPTIONS`; nest them under this command.
    let options = String::from_utf8_lossy(&options).replace(".SH ", ".SS ");
    page.extend_from_slice(options.as_bytes());
    for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        if sub.get_name() != "help" {
            render_subcommand(page, sub, &name)?;
        }
    }
    Ok(())
}

/// The exit codes of [`super::EXIT_CODES`] as a man page's EXIT STATUS list.
fn render_exit_status(page: &mut Vec<u8>) -> anyhow::Result<()> {
    writeln!(page, ".SH \"EXIT STATUS\"")?;
    for line in super::EXIT_CODES.lines().skip(1) {
        let (code, meaning) = line.trim().split_once(' ').unwrap_or((line.trim(), ""));
        writeln!(page, ".TP\n{code}\n{}", escape(meaning.trim()))?;
    }
    Ok(())
}

/// Text for roff: a leading `.` or `'` would be read as a request, `\` as an escape.
fn escape(text: &str) -> String {
    let text = text.replace('\\', "\\e");
    if text.starts_with(['.', '\'']) {
        format!("\\&{text}")
    } else {
        text
    }
}
