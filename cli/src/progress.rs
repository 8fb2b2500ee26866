//! A progress bar for long runs, on a terminal only: the parties count
//! their work in `runtime::exec::Progress`; this shows it (indicatif).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use runtime::exec::Progress;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Runs `work` with a progress bar on standard error (a terminal only, and
/// only once the work has taken a second: short runs stay quiet). `party`
/// counts its steps (`None`: the first computing party).
pub fn with_progress<T>(party: Option<u32>, work: impl FnOnce(Option<Arc<Progress>>) -> T) -> T {
    if !std::io::stderr().is_terminal() {
        return work(None);
    }
    let progress = Arc::new(Progress {
        party,
        ..Progress::default()
    });
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let shown = &progress;
        let finished = &done;
        s.spawn(move || show(shown, finished));
        let out = work(Some(progress.clone()));
        done.store(true, Ordering::Relaxed);
        out
    })
}

fn show(p: &Progress, done: &AtomicBool) {
    let start = Instant::now();
    let mut bar: Option<ProgressBar> = None;
    let style = ProgressStyle::with_template(
        "{prefix:>13} [{bar:24}] {pos}/{len} {msg} ({elapsed}, {eta} left)",
    )
    .expect("a valid template")
    .progress_chars("=> ");
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        let (total, at) = (
            p.encrypt_total.load(Ordering::Relaxed),
            p.encrypt_done.load(Ordering::Relaxed),
        );
        let (ot_total, ot_at) = (
            p.ot_total.load(Ordering::Relaxed),
            p.ot_done.load(Ordering::Relaxed),
        );
        let (prefix, message, total, at) = if total > 0 && at < total {
            ("preprocessing", "ciphertexts", total, at)
        } else if ot_total > 0 && ot_at < ot_total {
            ("preprocessing", "pieces of OT", ot_total, ot_at)
        } else {
            (
                "running",
                "steps",
                p.steps_total.load(Ordering::Relaxed),
                p.steps_done.load(Ordering::Relaxed),
            )
        };
        // Nothing to show yet, or not for long enough.
        if total == 0 || start.elapsed() < Duration::from_secs(1) {
            continue;
        }
        let b = bar.get_or_insert_with(|| {
            let b = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            b.set_style(style.clone());
            b
        });
        if b.prefix() != prefix {
            b.set_prefix(prefix);
            b.set_message(message);
            b.reset_eta();
        }
        b.set_length(total);
        b.set_position(at);
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
}

/// Rows done in a run in chunks, on a terminal (and not with `--quiet`):
/// rows, rows per second and the time left, from the share of the input
/// read so far.
pub struct Rows {
    bar: Option<ProgressBar>,
    start: Instant,
}

impl Rows {
    pub fn new(quiet: bool) -> Rows {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::with_draw_target(Some(1000), ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template("{prefix:>9} [{bar:24}] {msg}")
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            b.set_prefix("scoring");
            b
        });
        Rows {
            bar,
            start: Instant::now(),
        }
    }

    /// `rows` done, `fraction` of the input read (where known).
    pub fn update(&self, rows: u64, fraction: Option<f64>) {
        let Some(b) = &self.bar else { return };
        let secs = self.start.elapsed().as_secs_f64();
        let rate = rows as f64 / secs.max(1e-9);
        let mut msg = format!("{rows} rows, {rate:.0} rows/s");
        if let Some(f) = fraction.filter(|f| *f > 0.0) {
            b.set_position((f.min(1.0) * 1000.0) as u64);
            let left = secs * (1.0 - f.min(1.0)) / f;
            msg += &format!(", {left:.0} s left");
        }
        b.set_message(msg);
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
