//! `veil`: the command line. The only crate that touches files and the terminal.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::OnceLock;

/// mimalloc keeps freed memory for reuse: the runtime allocates and frees
/// large tensors every round, and the system allocator hands each back to
/// the kernel, paying a page fault per page on the next allocation.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_decommits` in mimalloc v3's `mimalloc.h` (libmimalloc-sys
/// names only some options; a test checks the index still holds this
/// option's documented default).
const MI_OPTION_PURGE_DECOMMITS: libmimalloc_sys::mi_option_t = 5;

/// Freed memory that mimalloc purges goes back with `MADV_FREE` instead of
/// being decommitted: the kernel reclaims it only under memory pressure, so
/// a tensor allocated where a freed one was does not fault in and zero every
/// page again. Measured on `veil bench` (10,000 rows): with decommitting,
/// about half of the invocations took 2,100-2,900 page faults and 1.3 s of
/// CPU instead of about 370 and 0.8 s (see BENCHMARKS.md).
///
/// And no transparent huge pages for this process: mimalloc asks for them
/// on its arenas (`MADV_HUGEPAGE`), and then a thread's first allocations
/// fault in and zero whole 2 MiB pages. `veil serve` starts threads for
/// each session, and `perf` showed a third of its CPU in the kernel's
/// `clear_page_erms`. Measured with `MIMALLOC_ALLOW_THP=1` against `=0`
/// (which has mimalloc make the same `prctl`), alternating, load 5–7:
/// `benches/serve_load.sh 16 40` 236–288 against 436–526 predictions/s,
/// p99 546–724 against 71–117 ms; `veil bench models/logreg_100.veil
/// --modes dealer --batches 10000` 168–185 k against 197–203 k rows/s.
fn tune_allocator() {
    // SAFETY: sets a plain integer option; mimalloc reads options lazily and
    // accepts changes at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DECOMMITS, 0) };
    // SAFETY: a process attribute, no pointers; failure (an old kernel)
    // leaves huge pages on, which is only slower.
    #[cfg(target_os = "linux")]
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

mod bench_cmd;
mod certs_cmd;
mod check_cmd;
mod compile_cmd;
mod data;
mod import_cmd;
mod limits;
mod paillier_cmd;
mod party_cmd;
mod plan_file;
mod predict_cmd;
mod progress;
mod run_cmd;
mod serve_cmd;
mod stream;

const ABOUT: &str = "Veil compiles and runs private machine-learning inference.

A model file (`*.veil`) names the parties, declares which inputs are private to
which party, and the operations to compute. Veil checks it, chooses for every
operation between Paillier encryption and additive secret sharing, and runs the
parties so that each learns only its own inputs and the outputs addressed to it.";

const AFTER_HELP: &str = "Examples:
  veil run models/logreg_100.veil --demo   run the talk's workload on random data
  veil check models/logreg_100.veil        check a model and print a summary
  veil check models/*.veil                 check several models at once
  veil compile models/logreg_100.veil      show the protocol chosen for each operation
  veil compile models/logreg_100.veil --emit plan --network wan
  veil explain E0201                       explain a diagnostic code
  veil --color always check m.veil 2>&1 | less -R   keep the colours in a pager

Language reference: docs/language.md";

#[derive(Parser)]
#[command(name = "veil", version, about = ABOUT, after_help = AFTER_HELP)]
struct Cli {
    /// When to colour diagnostics: `auto` colours them on a terminal unless the
    /// NO_COLOR environment variable is set (https://no-color.org).
    #[arg(
        long,
        value_enum,
        value_name = "WHEN",
        default_value = "auto",
        global = true
    )]
    color: ColorWhen,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ColorWhen {
    /// On a terminal, unless NO_COLOR is set or TERM is `dumb`.
    Auto,
    /// Always, even into a file or a pipe (and despite NO_COLOR).
    Always,
    /// Never.
    Never,
}

/// The colour diagnostics get, decided once in `main`.
static COLOR: OnceLock<grammar::Color> = OnceLock::new();

/// `--color` and the environment: NO_COLOR (set and not empty) and TERM=dumb
/// turn `auto` off; an explicit `--color` wins over both.
fn color_for(
    when: ColorWhen,
    terminal: bool,
    no_color: Option<&std::ffi::OsStr>,
    term: Option<&std::ffi::OsStr>,
) -> grammar::Color {
    let on = match when {
        ColorWhen::Always => true,
        ColorWhen::Never => false,
        ColorWhen::Auto => {
            terminal && no_color.is_none_or(|v| v.is_empty()) && term.is_none_or(|t| t != "dumb")
        }
    };
    if on {
        grammar::Color::Ansi
    } else {
        grammar::Color::Plain
    }
}

/// Diagnostics as text for standard error, coloured as `--color` decided.
pub fn render(diagnostics: &[grammar::Diagnostic], file_name: &str, source: &str) -> String {
    let color = COLOR.get().copied().unwrap_or_default();
    grammar::render_with(diagnostics, file_name, source, color)
}

#[derive(Subcommand)]
enum Command {
    /// Check model files: syntax, names, shapes, and every check compile makes before weighing costs.
    #[command(
        after_help = "Exit status: 0 when every file is valid (warnings allowed), 1 otherwise.
All errors of a file are reported in one run, with the place and, where there
is one, the fix. A file that passes also compiles with `veil compile`'s
default options: check runs the same range analysis, leak check (E0302),
polynomial fits and protocol feasibility, with the model's dealer and
symbolic dimensions assumed to be 1000.

Examples:
  veil check models/logreg_100.veil
  veil check models/*.veil"
    )]
    Check {
        /// Model files to check.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Compile a model: choose a protocol per operation and emit the plan.
    #[command(
        after_help = "By default prints the report: for every operation the protocol chosen,
why, its estimated time, bytes and rounds, the runner-up, the totals, and
what each party gets to see.

Examples:
  veil compile models/logreg_100.veil
  veil compile models/logreg_100.veil --network wan --assume batch=10000
  veil compile models/logreg_100.veil --no-dealer --emit plan
  veil compile models/mlp.veil --emit dot -o mlp.dot && dot -Tpng mlp.dot > mlp.png
  veil compile models/logreg_100.veil --emit json -o logreg.plan.json"
    )]
    Compile(compile_cmd::CompileArgs),
    /// Compile a model and run every party privately in this process.
    #[command(
        after_help = "Inputs are bound by name to files (.csv, .json or .npy), or to `-` for
standard input; the batch size comes from the data. A CSV file may start with
a header row naming its columns; --id-column NAME sets that column aside as
row IDs and writes it first in every output CSV whose rows are its rows.
Each party's outputs are printed, or written with --output DIR (all files or
none; output CSVs have a header row), or printed as JSON with `-o -`. With
--demo, random inputs of the declared shapes and ranges are generated, and
the private result is compared with the plaintext reference interpreter;
--check does the same on the given inputs. With --plan, a plan file written
by `veil compile --emit json` runs instead of a model file (no --demo or
--check: a plan has no reference).

Examples:
  veil run models/logreg_100.veil --demo
  veil run models/logreg_100.veil --demo --batch 1000 --stats
  veil run models/logreg_100.veil --input x=client.csv --input w=w.json --input b=b.json -o out/
  veil run models/logreg_100.veil -i x=client.csv -i w=w.json -i b=b.json --check
  veil run models/logreg_100.veil -i x=client.csv --id-column id -i w=w.json -i b=b.json -o out/
  gunzip -c client.csv.gz | veil run models/logreg_100.veil -i x=- -i w=w.json -i b=b.json -o -
  veil run models/credit_2p.veil --demo --key-bits 2048
  veil compile models/logreg_100.veil --emit json -o logreg.plan.json
  veil run --plan logreg.plan.json -i x=client.csv -i w=w.json -i b=b.json"
    )]
    Run(run_cmd::RunArgs),
    /// Benchmark a model: time, throughput, traffic, rounds and error per batch size and mode.
    #[command(
        after_help = "Every measurement runs all parties in this process (one thread each) on
random inputs of the declared shapes and ranges, and compares the outputs
with the plaintext reference (max err). bytes/pred counts every byte every
party sent. With `--transport tcp` the parties talk over loopback TCP with
mutual TLS, as `veil party` does; `seconds` excludes connecting.

Examples:
  veil bench models/logreg_100.veil
  veil bench models/logreg_100.veil --modes dealer --batches 1,10000 --repeat 5
  veil bench models/logreg_100.veil --modes dealer --transport memory,tcp
  veil bench models/logreg_100.veil --modes two-party,hybrid --batches 1,100 --key-bits 2048 --json out.jsonl"
    )]
    Bench(bench_cmd::BenchArgs),
    /// Run one party of a model over the network (mutual TLS over TCP).
    #[command(
        after_help = "Every party runs `veil party` with the same model and flags (or the same
plan file, --plan), the same session id and deployment file (parties.toml: each party's name, address and pinned
certificate; see docs/deployment.md). The parties may start in any order.
A failure (a peer stops, times out, sends a malformed frame, or has another
plan, session or certificate) stops the party with an error and no output.

Examples:
  veil certs --out certs client server helper
  veil party models/logreg_100.veil --as server --config certs/parties.toml -i w=w.json -i b=b.json
  veil party models/logreg_100.veil --as helper --config certs/parties.toml
  veil party models/logreg_100.veil --as client --config certs/parties.toml -i x=x.csv -o out/
  veil party --plan logreg.plan.json --as helper --config certs/parties.toml"
    )]
    Party(party_cmd::PartyArgs),
    /// Serve one party of a model (the model owner, or the dealer) to many clients.
    #[command(
        after_help = "The deployment file lists the service's parties: the model owner and, if the
plan has one, the dealer. The model's other computing party is the client
(`veil predict`), authenticated by a certificate signed by --client-ca and
not named in --deny (read again on SIGHUP). Sessions run concurrently, each
with a fresh id and fresh correlations; one log line per session on
standard error. SIGTERM stops accepting, lets the sessions in flight finish
(--drain-timeout) and exits 0. See docs/deployment.md.

Examples:
  veil certs --out svc lab helper && veil certs --out ca --new-ca
  veil certs --out clients --ca ca --client alice
  veil serve models/relu_classifier.veil --as helper --config svc/parties.toml --client-ca ca/ca.crt
  veil serve models/relu_classifier.veil --as lab --config svc/parties.toml --client-ca ca/ca.crt \
      -i w1=w1.json -i b1=b1.json -i w2=w2.json --metrics 127.0.0.1:9100"
    )]
    Serve(serve_cmd::ServeArgs),
    /// Ask a `veil serve` service for predictions on this client's inputs.
    #[command(
        after_help = "Runs the data owner's side of a session (or one per row with --per-row,
all over one connection) and writes its outputs atomically. A `busy`
answer is retried (--retries).

Examples:
  veil predict models/relu_classifier.veil --config svc/parties.toml \
      --cert clients/alice.crt --key clients/alice.key -i x=x.csv -o out/
  veil predict models/relu_classifier.veil --config svc/parties.toml --server 127.0.0.1:8443 \
      --cert clients/alice.crt --key clients/alice.key -i x=x.csv --per-row -o out/"
    )]
    Predict(predict_cmd::PredictArgs),
    /// Create a self-signed certificate and key per party, and the parties.toml that pins them;
    /// or a client CA and client certificates for `veil serve`.
    #[command(
        after_help = "Writes DIR/NAME.crt (the certificate, which the other parties pin),
DIR/NAME.key (its private key, readable by the owner only) for every party,
and DIR/parties.toml naming every party with its address, certificate and
key, ready for `veil party --config DIR/parties.toml`. Every file is written
atomically, and none is replaced without --force (an empty parties.toml
excepted). Standard output lists what was written.

Examples:
  veil certs --out certs client server helper
  veil certs --out certs client server helper --host 10.0.0.5 --base-port 9000
  veil certs --out certs client server --force      replace the files in certs/
  veil certs --out ca --new-ca                       a client CA for `veil serve --client-ca`
  veil certs --out clients --ca ca --client alice    a client certificate signed by that CA"
    )]
    Certs(certs_cmd::CertsArgs),
    /// Import a trained ONNX model (PyTorch, scikit-learn, Keras exports) as a model file and weights.
    #[command(
        after_help = "Writes DIR/model.veil, a readable model file whose lines name the ONNX
nodes they come from, and DIR/<weight>.npy for each of the model owner's
weights (owner-only files). The graph's data inputs and outputs keep their
ONNX names, made identifiers. Constants the model owner holds are folded at
import: Gemm transposes and scales, BatchNormalization into the Conv or Gemm
before it, a Scaler into the first layer. An op that cannot be translated
exactly is an error naming the op, the node and the opset; the generated
model is checked before anything is written. Data ranges come from
--calibrate samples (widened by 10% of their span), --range, or a default of
[-8, 8] with a warning: the runtime refuses data outside them.
See docs/import.md for the supported ops.

Examples:
  veil import model.onnx -o imported/ --calibrate X=train_sample.npy
  veil import lenet.onnx -o lenet/ --range input_1=0:1 --no-dealer
  veil run imported/model.veil --inputs imported/ -i X=x.npy -o out/"
    )]
    Import(import_cmd::ImportArgs),
    /// Paillier keys and encrypted numbers, compatible with python-paillier's pheutil.
    #[command(subcommand, after_help = paillier_cmd::AFTER_HELP)]
    Paillier(paillier_cmd::PaillierCmd),
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
    tune_allocator();
    let cli = Cli::parse();
    {
        use std::io::IsTerminal as _;
        let color = color_for(
            cli.color,
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR").as_deref(),
            std::env::var_os("TERM").as_deref(),
        );
        COLOR.set(color).expect("set once");
    }
    match cli.command {
        Command::Check { files } => check_cmd::check_files(&files),
        Command::Compile(args) => compile_cmd::run(&args),
        Command::Run(args) => run_cmd::run(&args),
        Command::Bench(args) => bench_cmd::run(&args),
        Command::Party(args) => party_cmd::run(&args),
        Command::Certs(args) => certs_cmd::run(&args),
        Command::Import(args) => import_cmd::run(&args),
        Command::Serve(args) => serve_cmd::run(&args),
        Command::Predict(args) => predict_cmd::run(&args),
        Command::Paillier(c) => match paillier_cmd::run(c) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Parse { file } => check_cmd::parse_file(&file),
        Command::Explain { code } => {
            match grammar::Code::parse(&code) {
                Some(c) => {
                    print!("{}", explain(c));
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

/// `veil explain CODE`: the code's long form; for the codes about calling
/// builtins, followed by every builtin's forms (from the compiler's registry).
fn explain(code: grammar::Code) -> String {
    use grammar::Code;
    let mut text = format!("{}: {}\n", code.as_str(), code.explain());
    if matches!(
        code,
        Code::UnknownFunction | Code::BadArguments | Code::UnknownArgument
    ) {
        text += "\nThe builtins:\n";
        for b in compiler::BUILTINS {
            for f in b.forms {
                text += &format!("  {}\n      {}\n", f.call, compiler::builtins::plain(f.doc));
            }
        }
    }
    text
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

/// Who may read a file Veil writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// The usual permissions (the umask decides).
    Public,
    /// The owner only (mode 0600 on Unix): keys. The temporary file is
    /// created with that mode, so a key is never readable by others, not
    /// even briefly.
    Private,
}

/// The temporary file `path` is first written to: beside it, so the final
/// rename stays on one file system.
pub(crate) fn temp_beside(path: &Path) -> Result<PathBuf, String> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| format!("`{}` is not a file path", path.display()))?;
    Ok(dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    )))
}

/// Creates `tmp` (never reusing an existing file), writes `bytes` and
/// flushes them to disk.
fn write_new(tmp: &Path, bytes: &[u8], access: Access) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    if access == Access::Private {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = access;
    let mut f = opts.open(tmp)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Write a file so that readers never see it half-written: write a
/// temporary file beside it, flush it to disk, then rename it into place.
pub fn write_atomically(path: &Path, bytes: &[u8], access: Access) -> Result<(), String> {
    let tmp = temp_beside(path)?;
    write_new(&tmp, bytes, access)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!("cannot write `{}`: {e}", path.display())
        })
}

/// Write several files so that either all of them appear or none: every
/// file goes to a temporary beside its target first; only when all are
/// written, and no target is a directory, are they renamed into place. If a
/// rename still fails, the files already renamed are rolled back, so every
/// earlier file is as it was.
pub fn write_all_atomically(files: &[(PathBuf, Vec<u8>)]) -> Result<(), String> {
    write_all_atomically_as(files, Access::Public)
}

/// As [`write_all_atomically`], each file created with `access`.
pub fn write_all_atomically_as(files: &[(PathBuf, Vec<u8>)], access: Access) -> Result<(), String> {
    let mut temps: Vec<(PathBuf, &Path)> = Vec::new();
    let cleanup = |temps: &[(PathBuf, &Path)]| {
        for (t, _) in temps {
            let _ = std::fs::remove_file(t);
        }
    };
    for (path, bytes) in files {
        let tmp = temp_beside(path).inspect_err(|_| cleanup(&temps))?;
        if let Err(e) = write_new(&tmp, bytes, access) {
            let _ = std::fs::remove_file(&tmp);
            cleanup(&temps);
            return Err(format!("cannot write `{}`: {e}", path.display()));
        }
        temps.push((tmp, path));
    }
    if let Some((_, path)) = temps.iter().find(|(_, p)| p.is_dir()) {
        cleanup(&temps);
        return Err(format!(
            "cannot write `{}`: it is a directory (remove it, or write elsewhere); no file was written",
            path.display()
        ));
    }
    commit_all(&temps)
}

/// Rename each staged temporary onto its target, all or none. An existing
/// target is first kept under a second name (a hard link, or a copy where
/// links are not supported), so that a failed rename can put back every
/// file replaced before it.
pub(crate) fn commit_all(staged: &[(PathBuf, &Path)]) -> Result<(), String> {
    let mut done: Vec<(&Path, Option<PathBuf>)> = Vec::new();
    for (k, (tmp, path)) in staged.iter().enumerate() {
        let step = || -> std::io::Result<Option<PathBuf>> {
            let backup = match std::fs::symlink_metadata(path) {
                Ok(_) => {
                    let b = tmp.with_extension("old");
                    if std::fs::hard_link(path, &b).is_err() {
                        std::fs::copy(path, &b)?;
                    }
                    Some(b)
                }
                Err(_) => None,
            };
            std::fs::rename(tmp, path).inspect_err(|_| {
                if let Some(b) = &backup {
                    let _ = std::fs::remove_file(b);
                }
            })?;
            Ok(backup)
        };
        match step() {
            Ok(backup) => done.push((path, backup)),
            Err(e) => {
                let mut lost = Vec::new();
                for (path, backup) in done.iter().rev() {
                    let undone = match backup {
                        Some(b) => std::fs::rename(b, path),
                        None => std::fs::remove_file(path),
                    };
                    if undone.is_err() {
                        lost.push(match backup {
                            Some(b) => format!(
                                "; `{}` could not be restored: its earlier content is in `{}`",
                                path.display(),
                                b.display()
                            ),
                            None => format!("; `{}` could not be removed", path.display()),
                        });
                    }
                }
                for (t, _) in &staged[k..] {
                    let _ = std::fs::remove_file(t);
                }
                return Err(if lost.is_empty() {
                    format!(
                        "cannot write `{}`: {e}; no file was written",
                        path.display()
                    )
                } else {
                    format!("cannot write `{}`: {e}{}", path.display(), lost.concat())
                });
            }
        }
    }
    for (_, backup) in done {
        if let Some(b) = backup {
            let _ = std::fs::remove_file(b);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("veil-main-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// `veil explain` lists every builtin (and every form of it) under the
    /// codes about calls, from the registry, so the list cannot miss one.
    #[test]
    fn explain_lists_every_builtin_under_the_codes_about_calls() {
        use grammar::Code;
        for code in [
            Code::UnknownFunction,
            Code::BadArguments,
            Code::UnknownArgument,
        ] {
            let text = explain(code);
            assert!(text.starts_with(&format!("{}: ", code.as_str())), "{text}");
            for b in compiler::BUILTINS {
                for f in b.forms {
                    assert!(
                        text.contains(&format!("  {}\n", f.call)),
                        "{code:?} misses {}",
                        f.call
                    );
                }
            }
        }
        assert!(explain(Code::UnknownFunction).contains("  min(a, b)\n      elementwise minimum"));
        let other = explain(Code::MatMulMismatch);
        assert_eq!(
            other,
            format!("E0202: {}\n", Code::MatMulMismatch.explain())
        );
    }

    /// Issue 14, defect 5: a rename that fails after others succeeded puts
    /// every replaced file back and removes every new one.
    #[test]
    fn colour_follows_the_flag_the_terminal_and_no_color() {
        use grammar::Color::{Ansi, Plain};
        let set = Some(std::ffi::OsStr::new("1"));
        let empty = Some(std::ffi::OsStr::new(""));
        let dumb = Some(std::ffi::OsStr::new("dumb"));
        let xterm = Some(std::ffi::OsStr::new("xterm-256color"));
        assert_eq!(color_for(ColorWhen::Auto, true, None, xterm), Ansi);
        assert_eq!(color_for(ColorWhen::Auto, false, None, xterm), Plain);
        assert_eq!(color_for(ColorWhen::Auto, true, set, xterm), Plain);
        // NO_COLOR counts only when not empty.
        assert_eq!(color_for(ColorWhen::Auto, true, empty, xterm), Ansi);
        assert_eq!(color_for(ColorWhen::Auto, true, None, dumb), Plain);
        assert_eq!(color_for(ColorWhen::Always, false, set, dumb), Ansi);
        assert_eq!(color_for(ColorWhen::Never, true, None, xterm), Plain);
    }

    #[test]
    fn a_failed_commit_restores_every_earlier_file() {
        let dir = scratch("commit");
        let (a, b, c) = (dir.join("a.csv"), dir.join("b.json"), dir.join("c.csv"));
        std::fs::write(&a, "old a\n").unwrap();
        std::fs::create_dir(&b).unwrap();
        // Staged as `write_all_atomically` stages, then committed without its
        // check for directories, so that the last rename is what fails.
        let staged: Vec<(PathBuf, &Path)> = [(&c, "new c"), (&a, "new a"), (&b, "new b")]
            .into_iter()
            .map(|(path, text)| {
                let tmp = temp_beside(path).unwrap();
                write_new(&tmp, text.as_bytes(), Access::Public).unwrap();
                (tmp, path.as_path())
            })
            .collect();
        let err = commit_all(&staged).unwrap_err();
        assert!(
            err.contains("b.json") && err.contains("no file was written"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "old a\n");
        assert!(b.is_dir());
        assert_eq!(
            names_in(&dir),
            ["a.csv", "b.json"],
            "no new file, temporary or backup"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn writing_all_replaces_every_file_and_leaves_nothing_else() {
        let dir = scratch("all");
        let (a, b) = (dir.join("a.csv"), dir.join("b.json"));
        std::fs::write(&a, "old a\n").unwrap();
        write_all_atomically(&[
            (a.clone(), b"new a\n".to_vec()),
            (b.clone(), b"{}\n".to_vec()),
        ])
        .unwrap();
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "new a\n");
        assert_eq!(std::fs::read_to_string(&b).unwrap(), "{}\n");
        assert_eq!(names_in(&dir), ["a.csv", "b.json"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_purge_decommits_index_is_that_option() {
        use libmimalloc_sys::{mi_option_get, mi_option_set};
        // mimalloc.h (v3): purge_decommits defaults to 1, and its neighbours
        // arena_eager_commit (4) and allow_large_os_pages (6) to 2 and 0; a
        // shifted enum would not show this pattern.
        unsafe {
            if std::env::var_os("MIMALLOC_PURGE_DECOMMITS").is_none() {
                assert_eq!(mi_option_get(MI_OPTION_PURGE_DECOMMITS), 1);
            }
            assert_eq!(mi_option_get(MI_OPTION_PURGE_DECOMMITS - 1), 2);
            assert_eq!(mi_option_get(MI_OPTION_PURGE_DECOMMITS + 1), 0);
        }
        tune_allocator();
        assert_eq!(unsafe { mi_option_get(MI_OPTION_PURGE_DECOMMITS) }, 0);
        unsafe { mi_option_set(MI_OPTION_PURGE_DECOMMITS, 1) };
    }
}
