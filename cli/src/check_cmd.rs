//! `veil check` and `veil parse`.

use crate::read_source;
use compiler::ir::{CheckedModel, Role};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub fn check_files(files: &[PathBuf]) -> ExitCode {
    let mut failed = 0;
    for path in files {
        if !check_file(path) {
            failed += 1;
        }
    }
    if failed > 0 {
        if files.len() > 1 {
            eprintln!("error: {failed} of {} files failed to check", files.len());
        }
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn check_file(path: &Path) -> bool {
    let source = match read_source(path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return false;
        }
    };
    let result = compiler::check_source_with(&source, &|f| crate::data::read_ranges(path, f));
    let name = path.display().to_string();
    let mut diagnostics = result.diagnostics;
    // A valid model also goes through every check `veil compile` makes
    // before it weighs costs (overflow, leaks, approximations, error bounds),
    // with compile's default options.
    if let Some(model) = &result.model {
        match compiler::analyse(model, &compiler::Options::default()) {
            Ok(d) => diagnostics.extend(d),
            Err(e) => {
                eprint!("{}", crate::render(&diagnostics, &name, &source));
                eprint!("{}", crate::compile_cmd::internal_error(&e, &name));
                return false;
            }
        }
        diagnostics.sort_by_key(|d| d.primary_span().map_or(0, |s| s.start));
    }
    eprint!("{}", crate::render(&diagnostics, &name, &source));
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    match result.model {
        Some(model) if errors == 0 => {
            println!("ok: {name}: {}", summary(&model));
            true
        }
        _ => {
            eprintln!(
                "error: `{name}` has {errors} error{}",
                if errors == 1 { "" } else { "s" }
            );
            false
        }
    }
}

/// One line: parties, inputs, outputs, operation count.
pub fn summary(m: &CheckedModel) -> String {
    let parties: Vec<&str> = m
        .parties()
        .iter()
        .filter(|p| p.role == Role::Compute)
        .map(|p| p.name.as_str())
        .collect();
    let dealer = match m.dealer() {
        Some(d) => format!(" + dealer {}", m.party(d).name),
        None => String::new(),
    };
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    format!(
        "model {}: parties {}{dealer}; {}, {}, {}",
        m.name(),
        parties.join(", "),
        plural(m.input_count(), "input"),
        plural(m.outputs().len(), "output"),
        plural(m.operation_count(), "operation"),
    )
}

pub fn parse_file(path: &Path) -> ExitCode {
    let source = match read_source(path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match grammar::parse(&source) {
        Ok(ast) => {
            print!("{}", grammar::ast_to_text(&ast));
            ExitCode::SUCCESS
        }
        Err(diags) => {
            eprint!(
                "{}",
                crate::render(&diags, &path.display().to_string(), &source)
            );
            ExitCode::FAILURE
        }
    }
}
