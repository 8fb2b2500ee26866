//! `--max-memory`: how much memory a run may take, checked against the
//! runtime's estimate ([`runtime::exec::memory`]) before anything large is
//! allocated, so that a run too large for the machine is refused with an
//! error that says what it needs, what the limit is and what to do, rather
//! than killed by the allocator halfway through.

use clap::Args;
use compiler::ir::CheckedModel;
use plan::Plan;
use runtime::exec::memory::{bytes_text, estimate};
use std::collections::BTreeMap;

/// The largest `--batch` and `--batches` take (2^40): far beyond any
/// machine's memory, so a size the memory check refuses, yet small enough
/// that no size computation on it can overflow.
pub const MAX_BATCH: u64 = 1 << 40;

/// The limit where the machine's memory cannot be read.
const FALLBACK_LIMIT: u64 = 8 << 30;

#[derive(Args, Debug, Clone, Default)]
pub struct MemoryArgs {
    /// The most memory this run may take, such as 16GiB, 512MiB or 1.5G (K, M, G,
    /// T are powers of 1024, with or without `iB`/`B`; a plain number is bytes).
    /// Veil estimates what a run needs before it starts and refuses a run above
    /// the limit. Default: half of this machine's memory (or of the container's
    /// limit), or 8 GiB where it cannot be read.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_memory: Option<u64>,
}

impl MemoryArgs {
    /// The limit in bytes, and where it comes from, for messages.
    pub fn limit(&self) -> (u64, String) {
        match self.max_memory {
            Some(b) => (b, "--max-memory".into()),
            None => match physical_memory() {
                Some(m) => (m / 2, format!("half of this machine's {}", bytes_text(m))),
                None => (
                    FALLBACK_LIMIT,
                    "the default where this machine's memory cannot be read".into(),
                ),
            },
        }
    }
}

/// `16GiB`, `512M`, `1.5 g`, `1000000`: bytes, with binary units.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => {
            return Err(format!(
                "`{s}` is not a size: give a number with an optional unit, such as 16GiB, 512MiB or 1.5G"
            ))
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a size: expected a number first, such as 16GiB"))?;
    let bytes = value * (1u64 << shift) as f64;
    if bytes < 1.0 {
        return Err(format!("`{s}`: the limit must be at least 1 byte"));
    }
    if bytes >= u64::MAX as f64 {
        return Err(format!("`{s}` is too large (the most is 16 EiB)"));
    }
    Ok(bytes as u64)
}

/// The memory this process may use: the machine's (`MemTotal` in
/// `/proc/meminfo`), or a container's smaller limit (cgroup v2
/// `memory.max`). `None` where neither can be read (not Linux).
pub fn physical_memory() -> Option<u64> {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| meminfo_total(&t));
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok());
    match (total, cgroup) {
        (Some(t), Some(c)) => Some(t.min(c)),
        (t, c) => t.or(c),
    }
}

/// `MemTotal:  24683784 kB` in bytes.
fn meminfo_total(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut words = line.split_whitespace().skip(1);
    let n: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") => n.checked_mul(1024),
        None => Some(n),
        Some(_) => None,
    }
}

/// Where the sizes of a run come from, for the hint on a refusal.
pub enum Sizes {
    /// `--batch`/`--batches`: every symbolic dimension is this size.
    Batch { flag: &'static str },
    /// The data's own sizes.
    Data,
}

/// Bytes the plaintext reference interpreter holds: every value of the
/// model, in f64.
fn reference_bytes(model: &CheckedModel, dims: &BTreeMap<String, usize>) -> u64 {
    use compiler::ir::Dim;
    model
        .values()
        .iter()
        .map(|v| {
            v.shape.0.iter().fold(8u64, |a, d| {
                a.saturating_mul(match d {
                    Dim::Known(n) => *n,
                    Dim::Symbol(s) => dims.get(s).map_or(1, |&n| n as u64),
                })
            })
        })
        .fold(0, u64::saturating_add)
}

/// Bytes of a run of every party in this process: the parties, the
/// caller's copy of the inputs and, with a `reference` model, the
/// plaintext reference's values. `Err` when a shape cannot even be counted.
pub fn in_process_bytes(
    plan: &Plan,
    dims: &BTreeMap<String, usize>,
    reference: Option<&CheckedModel>,
) -> Result<(u64, String), String> {
    let e = estimate(plan, dims, None).map_err(|e| e.message)?;
    let mut parts: Vec<String> = e
        .parties
        .iter()
        .enumerate()
        .filter(|(_, m)| m.total() > 0)
        .map(|(p, m)| format!("{} {}", plan.party_name(p as u32), bytes_text(m.total())))
        .collect();
    let mut own = e.inputs;
    if let Some(model) = reference {
        own = own.saturating_add(reference_bytes(model, dims));
    }
    parts.push(format!(
        "{} {}",
        if reference.is_some() {
            "inputs and reference"
        } else {
            "inputs"
        },
        bytes_text(own)
    ));
    Ok((e.parties_total().saturating_add(own), parts.join(", ")))
}

/// Checks a run of every party of `plan` in this process (`veil run`,
/// `veil bench`) at the sizes `dims` against the limit. On refusal the
/// error says what the run needs, the limit, and what to do: a smaller
/// batch (the largest that fits, when there is one) or a higher limit.
pub fn check_in_process(
    plan: &Plan,
    dims: &BTreeMap<String, usize>,
    reference: Option<&CheckedModel>,
    args: &MemoryArgs,
    sizes: Sizes,
) -> Result<(), String> {
    let (limit, source) = args.limit();
    let (need, parts) = in_process_bytes(plan, dims, reference)?;
    if need <= limit {
        return Ok(());
    }
    let at: Vec<String> = dims.iter().map(|(k, v)| format!("{k} = {v}")).collect();
    let at = if at.is_empty() {
        String::new()
    } else {
        format!(" at {}", at.join(", "))
    };
    let mut help = Vec::new();
    let fits = |size: usize| {
        in_process_bytes(plan, &plan.dims_at(size), reference).is_ok_and(|(b, _)| b <= limit)
    };
    let largest = if dims.is_empty() || !fits(1) {
        None
    } else {
        // The largest size that fits (the plan was compiled for `dims`;
        // at another size it may differ a little, hence "about").
        let (mut lo, mut hi) = (1usize, dims.values().copied().max().unwrap_or(1));
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if fits(mid) {
                lo = mid
            } else {
                hi = mid
            }
        }
        Some(lo)
    };
    match (largest, &sizes) {
        (None, _) => help.push(
            "the model's fixed dimensions alone need more than the limit: check its shapes".into(),
        ),
        (Some(n), Sizes::Batch { flag }) => {
            help.push(format!("use a smaller batch (about {flag} {n} fits)"))
        }
        (Some(n), Sizes::Data) => help.push(format!(
            "split the data into batches of about {n} rows and run each"
        )),
    }
    let physical = physical_memory();
    let mut raise = format!(
        "raise the limit with --max-memory {}",
        size_arg(need.saturating_add(need / 10))
    );
    if physical.is_some_and(|m| need > m) {
        raise += &format!(
            " (more than this machine's {}, so it would swap or be killed)",
            bytes_text(physical.unwrap_or(0))
        );
    }
    help.push(raise);
    Err(format!(
        "this run needs an estimated {}{at} ({parts}), more than the limit of {} ({source})\n\
         help: {}",
        bytes_text(need),
        bytes_text(limit),
        help.join(", or ")
    ))
}

/// A size as `--max-memory` takes it, rounded up to a whole unit.
fn size_arg(bytes: u64) -> String {
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if bytes >= 1 << shift {
            return format!("{}{unit}", bytes.div_ceil(1 << shift));
        }
    }
    format!("{bytes}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("16GiB"), Ok(16 << 30));
        assert_eq!(parse_size("16 gb"), Ok(16 << 30));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("2TiB"), Ok(2 << 40));
        for bad in [
            "",
            "G",
            "-1G",
            "0",
            "1.2.3G",
            "16 GHz",
            "nan",
            "99999999999T",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_machines_memory_is_read_from_meminfo() {
        let text = "MemTotal:       24683784 kB\nMemFree:          752060 kB\n";
        assert_eq!(meminfo_total(text), Some(24683784 * 1024));
        assert_eq!(meminfo_total("MemFree: 1 kB\n"), None);
        assert_eq!(meminfo_total("MemTotal: lots\n"), None);
        if cfg!(target_os = "linux") {
            assert!(physical_memory().is_some_and(|m| m > 1 << 20));
        }
    }

    #[test]
    fn a_suggested_limit_rounds_up() {
        assert_eq!(size_arg(45 << 30), "45GiB");
        assert_eq!(size_arg((45 << 30) + 1), "46GiB");
        assert_eq!(size_arg(3 << 20), "3MiB");
        assert_eq!(size_arg(500), "500");
    }
}
