//! `veil`: the command line. The only crate that touches files and the terminal.

use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod check_cmd;

const ABOUT: &str = "Veil compiles and runs private machine-learning inference.

A model file (`*.veil`) names the parties, declares which inputs are private to
which party, and the operations to compute. Veil checks it, chooses for every
operation between Paillier encryption and additive secret sharing, and runs the
parties so that each learns only its own inputs and the outputs addressed to it.";

const AFTER_HELP: &str = "Examples:
  veil check models/logreg_100.veil        check a model and print a summary
  veil check models/*.veil                 check several models at once
  veil explain E0201                       explain a diagnostic code

Language reference: docs/language.md";

#[derive(Parser)]
#[command(name = "veil", version, about = ABOUT, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check model files: syntax, names, parties, shapes and visibility.
    #[command(
        after_help = "Exit status: 0 when every file is valid (warnings allowed), 1 otherwise.
All errors of a file are reported in one run, with the place and, where there
is one, the fix.

Examples:
  veil check models/logreg_100.veil
  veil check models/*.veil"
    )]
    Check {
        /// Model files to check.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Print the syntax tree of a model file (for debugging the grammar).
    Parse {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Explain a diagnostic code such as E0201.
    Explain {
        #[arg(value_name = "CODE")]
        code: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { files } => check_cmd::check_files(&files),
        Command::Parse { file } => check_cmd::parse_file(&file),
        Command::Explain { code } => {
            match grammar::Code::parse(&code) {
                Some(c) => {
                    println!("{}: {}", c.as_str(), c.explain());
                    ExitCode::SUCCESS
                }
                None => {
                    eprintln!("error: `{code}` is not a Veil diagnostic code (they look like E0201 or W0001)");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Read a model file, with an error message that names the file.
pub fn read_source(path: &Path) -> Result<String, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "`{}` is not UTF-8 text (invalid byte at offset {})",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })
}
