//! Files of any size in chunks of rows (issue 22): which plans can run in
//! chunks ([`row_dim`]), how many rows a chunk takes ([`chunk_rows`]), the
//! streaming readers ([`Source`]) and the staged output files
//! ([`StagedOutputs`]). `run_cmd` drives them: chunk k binds the same plan
//! with the row dimension at the chunk's size and runs it with fresh
//! correlations; inputs without the row dimension are read once.

use crate::data::{self, CsvRows, Layout, NpyHeader};
use plan::{Plan, Tensor};
// Which plans run in chunks, and how `veil party` sessions agree on them:
// shared with the Python module's `veil.party`.
pub use runtime::exec::chunks::{agree_chunking, next_rows, row_dim};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};

/// Rows per chunk by default, memory allowing. Measured on LR-100 with a
/// dealer, 10^6 rows from a .npy file, release build, this 2-core machine
/// under other load (`veil run ... --chunk-rows N`, rows/s): 1,024: 135 k;
/// 2,048: 177–184 k; 4,096: 115–200 k (178, 200 and 178 k in three of
/// four runs); 8,192: 100 k; 16,384: 99–131 k; 65,536: 92 k. Chunks past a
/// few thousand rows lose cache locality (the registers of a chunk outgrow
/// the caches), smaller ones pay the per-chunk setup (threads, the
/// dealer's seed, a session) more often. Peak RSS at 4,096 rows: 121–126 MB.
pub const THROUGHPUT_ROWS: usize = 4096;

/// The memory chunks are sized within when `--max-memory` is not given:
/// 1 GiB, well above what [`THROUGHPUT_ROWS`] rows need for the bundled
/// models (the runtime's estimate for LR-100 in process, every party, the
/// inputs and the reference counted, is 156 MiB at 16,384 rows, about
/// 9.7 KiB a row, so 4,096 rows need about 40 MiB), so chunks are smaller
/// only for much wider models, and a run stays under the 1 GB.
pub const DEFAULT_BUDGET: u64 = 1 << 30;

/// The rows of a chunk: `--chunk-rows`, or [`THROUGHPUT_ROWS`] when that
/// fits `budget` (what `bytes_at(rows)` says a run of that many rows
/// needs), or else the largest that does. `Err` when not even one row fits.
pub fn chunk_rows(
    asked: Option<usize>,
    budget: u64,
    bytes_at: &dyn Fn(usize) -> Option<u64>,
) -> Result<usize, String> {
    if let Some(n) = asked {
        return Ok(n);
    }
    let fits = |n: usize| bytes_at(n).is_some_and(|b| b <= budget);
    if fits(THROUGHPUT_ROWS) {
        return Ok(THROUGHPUT_ROWS);
    }
    if !fits(1) {
        return Err(format!(
            "not even a chunk of one row fits in {}",
            runtime::exec::memory::bytes_text(budget)
        ));
    }
    let (mut lo, mut hi) = (1usize, THROUGHPUT_ROWS);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fits(mid) {
            lo = mid
        } else {
            hi = mid
        }
    }
    Ok(lo)
}

/// How many chunks run at once: two (chunk k+1's preprocessing and
/// reading overlap chunk k's online phase) when two chunks of `bytes`
/// fit the budget, else one.
pub fn pipeline_depth(bytes: Option<u64>, budget: u64) -> usize {
    match bytes.and_then(|b| b.checked_mul(2)) {
        Some(two) if two <= budget => 2,
        _ => 1,
    }
}

/// One chunk of an input: its values (rows first), where they sit in the
/// file (so errors name the line and column), and the chunk's row IDs.
pub struct Chunk {
    pub tensor: Tensor,
    pub layout: Layout,
    /// The flat index of the chunk's first value in the whole file, for
    /// positions of .npy and JSON values (CSV layouts name lines directly).
    pub offset: usize,
    pub ids: Option<Vec<String>>,
}

impl Chunk {
    pub fn rows(&self) -> usize {
        self.tensor.shape.first().copied().unwrap_or(1)
    }
}

/// An input read a chunk of rows at a time: CSV (a file or standard
/// input) line by line, a `.npy` file by reading the rows of each chunk,
/// and anything else (JSON, `.npy` on standard input) whole, then cut into
/// chunks.
pub enum Source {
    Csv {
        reader: Box<dyn BufRead + Send>,
        csv: CsvRows,
        line: usize,
        buf: String,
        read: u64,
        size: Option<u64>,
    },
    Npy {
        reader: BufReader<File>,
        header: NpyHeader,
        row_values: usize,
        done: usize,
        bytes: Vec<u8>,
    },
    Whole {
        loaded: data::Loaded,
        done: usize,
    },
}

impl Source {
    /// Opens `path` as [`data::load`] would read it.
    pub fn open(
        path: &Path,
        stdin_format: Option<data::Format>,
        id_column: Option<&str>,
    ) -> Result<Source, String> {
        let name = data::describe(path);
        let whole = || {
            data::load(path, stdin_format, id_column)
                .map(|loaded| Source::Whole { loaded, done: 0 })
        };
        if data::is_stdin(path) {
            return Source::stdin(stdin_format, id_column);
        }
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        let open = || File::open(path).map_err(|e| format!("cannot read {name}: {e}"));
        match ext.as_str() {
            "csv" | "txt" => {
                let f = open()?;
                let size = f.metadata().ok().map(|m| m.len());
                Ok(Source::Csv {
                    reader: Box::new(BufReader::with_capacity(1 << 20, f)),
                    csv: CsvRows::new(id_column),
                    line: 0,
                    buf: String::new(),
                    read: 0,
                    size,
                })
            }
            "npy" => {
                let mut f = open()?;
                let len = f
                    .metadata()
                    .map_err(|e| format!("cannot read {name}: {e}"))?
                    .len();
                let mut head = Vec::new();
                (&mut f)
                    .take(NpyHeader::MAX_LEN as u64)
                    .read_to_end(&mut head)
                    .map_err(|e| format!("cannot read {name}: {e}"))?;
                let header = NpyHeader::parse(&head).map_err(|e| format!("{name}: {e}"))?;
                header
                    .check_len(len - header.data_start as u64)
                    .map_err(|e| format!("{name}: {e}"))?;
                let row_values = header.shape.iter().skip(1).product::<usize>();
                if header.shape.is_empty() {
                    return whole();
                }
                let mut f = f;
                use std::io::Seek as _;
                f.seek(std::io::SeekFrom::Start(header.data_start as u64))
                    .map_err(|e| format!("cannot read {name}: {e}"))?;
                Ok(Source::Npy {
                    reader: BufReader::with_capacity(1 << 20, f),
                    header,
                    row_values,
                    done: 0,
                    bytes: Vec::new(),
                })
            }
            _ => whole(),
        }
    }

    /// Standard input: CSV is read line by line as a file is; JSON and
    /// `.npy` whole. The format is `stdin_format` or sniffed from the first
    /// bytes that are not white space.
    fn stdin(
        stdin_format: Option<data::Format>,
        id_column: Option<&str>,
    ) -> Result<Source, String> {
        use std::io::IsTerminal as _;
        let fail = |e: std::io::Error| format!("cannot read standard input: {e}");
        let mut stdin = std::io::stdin();
        if stdin.is_terminal() {
            eprintln!("reading an input from standard input: type or paste it, then Ctrl-D");
        }
        // Enough of the start to tell the format by.
        let mut head: Vec<u8> = Vec::new();
        let mut block = [0u8; 8192];
        while stdin_format.is_none()
            && head.len() < (1 << 16)
            // (a byte-order mark's bytes are past ASCII)
            && head.iter().all(|b| b.is_ascii_whitespace() || *b >= 0x80)
        {
            let n = stdin.read(&mut block).map_err(fail)?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&block[..n]);
        }
        let format = stdin_format.unwrap_or_else(|| data::sniff(&head));
        let mut reader = std::io::Cursor::new(head).chain(stdin);
        if matches!(format, data::Format::Csv) {
            return Ok(Source::Csv {
                reader: Box::new(BufReader::with_capacity(1 << 20, reader)),
                csv: CsvRows::new(id_column),
                line: 0,
                buf: String::new(),
                read: 0,
                size: None,
            });
        }
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).map_err(fail)?;
        let loaded = data::parse(&bytes, format, &data::describe(Path::new("-")), id_column)?;
        Ok(Source::Whole { loaded, done: 0 })
    }

    /// How far through the file the reader is (0 to 1), where known.
    pub fn fraction(&self) -> Option<f64> {
        match self {
            Source::Csv { read, size, .. } => size.map(|s| *read as f64 / s.max(1) as f64),
            Source::Npy { header, done, .. } => Some(*done as f64 / header.shape[0].max(1) as f64),
            Source::Whole { loaded, done } => {
                Some(*done as f64 / loaded.tensor.shape.first().copied().unwrap_or(1).max(1) as f64)
            }
        }
    }

    /// The total rows, where known before reading them (not for CSV).
    pub fn total_rows(&self) -> Option<usize> {
        match self {
            Source::Csv { .. } => None,
            Source::Npy { header, .. } => header.shape.first().copied(),
            Source::Whole { loaded, .. } => Some(loaded.tensor.shape.first().copied().unwrap_or(1)),
        }
    }

    /// The next chunk of at most `rows` rows; `None` at the end of the file
    /// (a file without any data row is an error at the first chunk).
    pub fn next(&mut self, rows: usize) -> Result<Option<Chunk>, String> {
        match self {
            Source::Csv {
                reader,
                csv,
                line,
                buf,
                read,
                ..
            } => {
                let mut values = Vec::new();
                let mut lines = Vec::with_capacity(rows);
                let mut ids = Vec::new();
                while lines.len() < rows {
                    buf.clear();
                    let n = reader
                        .read_line(buf)
                        .map_err(|e| format!("cannot read line {}: {e}", *line + 1))?;
                    if n == 0 {
                        break;
                    }
                    *read += n as u64;
                    *line += 1;
                    let text = if *line == 1 {
                        buf.strip_prefix('\u{feff}').unwrap_or(buf)
                    } else {
                        buf.as_str()
                    };
                    if let Some(id) = csv.line(*line, text, &mut values)? {
                        lines.push(*line);
                        ids.extend(id);
                    }
                }
                if lines.is_empty() {
                    return if csv.rows == 0 {
                        Err(csv.no_rows().into())
                    } else {
                        Ok(None)
                    };
                }
                let columns = csv.columns()?;
                let tensor = Tensor::new(vec![lines.len(), columns.len()], values)?;
                Ok(Some(Chunk {
                    tensor,
                    layout: Layout::Csv { lines, columns },
                    offset: 0,
                    ids: csv.has_ids().then_some(ids),
                }))
            }
            Source::Npy {
                reader,
                header,
                row_values,
                done,
                bytes,
            } => {
                let total = header.shape[0];
                let take = rows.min(total - *done);
                if take == 0 {
                    return if total == 0 {
                        Err("no data rows".into())
                    } else {
                        Ok(None)
                    };
                }
                bytes.resize(take * *row_values * header.width, 0);
                reader
                    .read_exact(bytes)
                    .map_err(|e| format!("cannot read row {}: {e}", *done))?;
                let data = bytes.chunks_exact(header.width).map(header.read).collect();
                let mut shape = header.shape.clone();
                shape[0] = take;
                let offset = *done * *row_values;
                *done += take;
                Ok(Some(Chunk {
                    tensor: Tensor::new(shape, data)?,
                    layout: Layout::Npy {
                        shape: header.shape.clone(),
                    },
                    offset,
                    ids: None,
                }))
            }
            Source::Whole { loaded, done } => {
                let t = &loaded.tensor;
                let total = t.shape.first().copied().unwrap_or(1);
                let take = rows.min(total - *done);
                if take == 0 {
                    return Ok(None);
                }
                let row_values = t.data.len() / total.max(1);
                let mut shape = t.shape.clone();
                if let Some(first) = shape.first_mut() {
                    *first = take;
                }
                let data = t.data[*done * row_values..(*done + take) * row_values].to_vec();
                let (layout, offset) = match &loaded.layout {
                    Layout::Csv { lines, columns } => (
                        Layout::Csv {
                            lines: lines[*done..*done + take].to_vec(),
                            columns: columns.clone(),
                        },
                        0,
                    ),
                    Layout::Json { shape } => (
                        Layout::Json {
                            shape: shape.clone(),
                        },
                        *done * row_values,
                    ),
                    Layout::Npy { shape } => (
                        Layout::Npy {
                            shape: shape.clone(),
                        },
                        *done * row_values,
                    ),
                };
                let ids = loaded
                    .ids
                    .as_ref()
                    .map(|ids| ids[*done..*done + take].to_vec());
                *done += take;
                Ok(Some(Chunk {
                    tensor: Tensor::new(shape, data)?,
                    layout,
                    offset,
                    ids,
                }))
            }
        }
    }
}

/// Output files written chunk by chunk: each output's CSV and each party's
/// JSON go to temporary files beside their targets, renamed into place all
/// together by [`StagedOutputs::commit`]; dropped without a commit (any
/// failure), every temporary file is removed and nothing is left behind.
pub struct StagedOutputs {
    dir: PathBuf,
    /// Per output and recipient: the party, the output's name, its CSV and
    /// the temporary file of its JSON array.
    files: Vec<(u32, String, Staged, Staged)>,
    /// Per party with outputs: its JSON file.
    json: Vec<(u32, PathBuf)>,
    rows: usize,
    committed: bool,
}

struct Staged {
    target: PathBuf,
    tmp: PathBuf,
    out: Option<std::io::BufWriter<File>>,
}

impl Staged {
    fn new(target: PathBuf) -> Result<Staged, String> {
        let tmp = crate::temp_beside(&target)?;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| format!("cannot write `{}`: {e}", target.display()))?;
        Ok(Staged {
            target,
            tmp,
            out: Some(std::io::BufWriter::with_capacity(1 << 20, f)),
        })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        let target = &self.target;
        self.out
            .as_mut()
            .expect("open until finished")
            .write_all(bytes)
            .map_err(|e| format!("cannot write `{}`: {e}", target.display()))
    }

    fn finish(&mut self) -> Result<(), String> {
        if let Some(out) = self.out.take() {
            let f = out
                .into_inner()
                .map_err(|e| format!("cannot write `{}`: {}", self.target.display(), e.error()))?;
            f.sync_all()
                .map_err(|e| format!("cannot write `{}`: {e}", self.target.display()))?;
        }
        Ok(())
    }
}

impl Drop for StagedOutputs {
    fn drop(&mut self) {
        for (_, _, csv, part) in &self.files {
            let _ = std::fs::remove_file(&part.tmp);
            if !self.committed {
                let _ = std::fs::remove_file(&csv.tmp);
            }
        }
    }
}

impl StagedOutputs {
    /// Staging files in `dir` for the outputs each party (or party `only`)
    /// learns, as `run_cmd::write_outputs` names them.
    pub fn create(dir: &Path, plan: &Plan, only: Option<u32>) -> Result<StagedOutputs, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
        let mut staged = StagedOutputs {
            dir: dir.to_path_buf(),
            files: Vec::new(),
            json: Vec::new(),
            rows: 0,
            committed: false,
        };
        for (p, party) in plan.parties.iter().enumerate() {
            let p = p as u32;
            if only.is_some_and(|q| q != p) {
                continue;
            }
            let mut names: Vec<&str> = plan
                .outputs
                .iter()
                .filter(|o| o.to.contains(&p))
                .map(|o| o.name.as_str())
                .collect();
            if names.is_empty() {
                continue;
            }
            let taken = |path: &Path| {
                if path.is_dir() {
                    Err(format!(
                        "cannot write `{}`: it is a directory (remove it, or write elsewhere); no file was written",
                        path.display()
                    ))
                } else {
                    Ok(())
                }
            };
            taken(&dir.join(format!("{}.json", party.name)))?;
            for name in &names {
                taken(&dir.join(format!("{}-{name}.csv", party.name)))?;
            }
            // A JSON object's keys in serde_json's order (sorted).
            names.sort_unstable();
            for name in names {
                let csv = Staged::new(dir.join(format!("{}-{name}.csv", party.name)))?;
                let part = Staged::new(dir.join(format!("{}-{name}.json", party.name)))?;
                staged.files.push((p, name.to_string(), csv, part));
            }
            staged
                .json
                .push((p, dir.join(format!("{}.json", party.name))));
        }
        Ok(staged)
    }

    /// Appends one chunk's outputs, with the chunk's row IDs first in the CSVs.
    pub fn append(
        &mut self,
        outcomes: &[runtime::exec::Outcome],
        ids: Option<&data::Ids>,
    ) -> Result<(), String> {
        let first = self.rows == 0;
        let mut rows = 0;
        for (p, name, csv, part) in &mut self.files {
            let t = outcomes
                .get(*p as usize)
                .and_then(|o| o.outputs.iter().find(|(n, _)| n == name))
                .map(|(_, t)| t)
                .ok_or_else(|| format!("a party did not learn its output `{name}`"))?;
            rows = t.shape.first().copied().unwrap_or(1);
            let ids = ids.map(|i| data::Ids {
                column: i.column,
                values: i.values,
            });
            let text = data::to_csv(name, t, ids);
            let body = if first {
                &text[..]
            } else {
                &text[text.find('\n').map_or(0, |i| i + 1)..]
            };
            csv.write(body.as_bytes())?;
            part.write(json_rows(t, first).as_bytes())?;
        }
        self.rows += rows;
        Ok(())
    }

    /// Finishes every file and renames them all into place (all or none),
    /// each party's JSON assembled from its outputs' arrays.
    pub fn commit(mut self) -> Result<(), String> {
        let mut assembled = Vec::new();
        let result = self.assemble(&mut assembled);
        if result.is_err() {
            for t in &assembled {
                let _ = std::fs::remove_file(t);
            }
        }
        result
    }

    fn assemble(&mut self, assembled: &mut Vec<PathBuf>) -> Result<(), String> {
        for (p, target) in &self.json {
            let mut out = Staged::new(target.clone())?;
            assembled.push(out.tmp.clone());
            out.write(b"{\n")?;
            let parts: Vec<&mut (u32, String, Staged, Staged)> =
                self.files.iter_mut().filter(|f| f.0 == *p).collect();
            let n = parts.len();
            for (k, (_, name, csv, part)) in parts.into_iter().enumerate() {
                csv.finish()?;
                part.finish()?;
                let key = serde_json::to_string(name).expect("a string serializes");
                out.write(format!("  {key}: [\n").as_bytes())?;
                let mut f = File::open(&part.tmp)
                    .map_err(|e| format!("cannot read `{}`: {e}", part.tmp.display()))?;
                std::io::copy(&mut f, out.out.as_mut().expect("open"))
                    .map_err(|e| format!("cannot write `{}`: {e}", target.display()))?;
                out.write(if k + 1 < n { b"\n  ],\n" } else { b"\n  ]\n" })?;
            }
            out.write(b"}\n")?;
            out.finish()?;
        }
        let mut staged: Vec<(PathBuf, &Path)> = self
            .files
            .iter()
            .map(|(_, _, csv, _)| (csv.tmp.clone(), csv.target.as_path()))
            .collect();
        for (tmp, (_, target)) in assembled.iter().zip(&self.json) {
            staged.push((tmp.clone(), target.as_path()));
        }
        let result = crate::commit_all(&staged);
        self.committed = result.is_ok();
        result?;
        eprintln!("outputs written to {}", self.dir.display());
        Ok(())
    }
}

/// The rows of `t` as the lines of a JSON array's body inside
/// `serde_json::to_string_pretty` of `{name: array}`, so that chunks
/// appended one after another give the bytes of the whole output written
/// at once. `first`: no separator before the first row.
fn json_rows(t: &Tensor, first: bool) -> String {
    let num =
        |v: f64| serde_json::Number::from_f64(v).map_or("null".to_string(), |n| n.to_string());
    let mut s = String::new();
    let cols = match t.shape.as_slice() {
        [_, c] => Some((*c).max(1)),
        _ => None,
    };
    let mut sep = !first;
    let mut push = |s: &mut String, text: &str| {
        if sep {
            s.push_str(",\n");
        }
        sep = true;
        s.push_str(text);
    };
    match cols {
        None => {
            for v in &t.data {
                push(&mut s, &format!("    {}", num(*v)));
            }
        }
        Some(c) => {
            for row in t.data.chunks(c) {
                let vals: Vec<String> = row.iter().map(|v| format!("      {}", num(*v))).collect();
                push(&mut s, &format!("    [\n{}\n    ]", vals.join(",\n")));
            }
        }
    }
    s
}

/// The values of every chunk of an output, in order, for runs that print
/// their outputs (no `-o DIR`): outputs are a small part of a run's data.
#[derive(Default)]
pub struct Collected {
    pub outputs: Vec<BTreeMap<String, Tensor>>,
    /// The row IDs of the chunks appended, when the data has an ID column.
    pub ids: Vec<String>,
}

/// Puts a chunk's outputs where a run in chunks keeps them: appended to
/// the staging files when it has some, else to `collected`, with the
/// chunk's row IDs (`column` names the ID column, when the data has one).
pub fn append_chunk(
    staged: Option<&mut StagedOutputs>,
    collected: &mut Collected,
    outcomes: &[runtime::exec::Outcome],
    column: Option<&str>,
    chunk_ids: Option<Vec<String>>,
) -> Result<(), String> {
    match staged {
        Some(s) => {
            let ids = match (column, &chunk_ids) {
                (Some(column), Some(values)) => Some(data::Ids { column, values }),
                _ => None,
            };
            s.append(outcomes, ids.as_ref())
        }
        None => {
            collected.append(outcomes);
            collected.ids.extend(chunk_ids.unwrap_or_default());
            Ok(())
        }
    }
}

impl Collected {
    pub fn append(&mut self, outcomes: &[runtime::exec::Outcome]) {
        if self.outputs.is_empty() {
            self.outputs = vec![BTreeMap::new(); outcomes.len()];
        }
        for (p, o) in outcomes.iter().enumerate() {
            for (name, t) in &o.outputs {
                match self.outputs[p].get_mut(name) {
                    None => {
                        self.outputs[p].insert(name.clone(), t.clone());
                    }
                    Some(e) => {
                        if let Some(first) = e.shape.first_mut() {
                            *first += t.shape.first().copied().unwrap_or(1);
                        }
                        e.data.extend_from_slice(&t.data);
                    }
                }
            }
        }
    }

    /// The outcomes of the whole run, in the order each party learned its
    /// outputs (statistics summed).
    pub fn into_outcomes(
        self,
        order: &[runtime::exec::Outcome],
        stats: Vec<runtime::exec::Stats>,
    ) -> Vec<runtime::exec::Outcome> {
        let mut outputs = self.outputs;
        order
            .iter()
            .zip(stats)
            .enumerate()
            .map(|(p, (o, stats))| runtime::exec::Outcome {
                outputs: o
                    .outputs
                    .iter()
                    .filter_map(|(name, _)| Some((name.clone(), outputs.get_mut(p)?.remove(name)?)))
                    .collect(),
                stats,
            })
            .collect()
    }
}

/// Adds one chunk's statistics to the run's.
pub fn add_stats(total: &mut runtime::exec::Stats, s: &runtime::exec::Stats) {
    total.bytes_sent += s.bytes_sent;
    total.bytes_received += s.bytes_received;
    total.frames_sent += s.frames_sent;
    total.rounds += s.rounds;
    total.setup += s.setup;
    total.preprocessing += s.preprocessing;
    total.online += s.online;
    total.peak_register_bytes = total.peak_register_bytes.max(s.peak_register_bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_rows_in_chunks_are_the_pretty_json_of_the_whole() {
        for (shape, data) in [
            (vec![5], vec![0.5, -1.0, 2.25, 3.0, f64::NAN]),
            (vec![3, 2], vec![1.0, 2.5, 3.0, 4.0, -0.125, 6.0]),
        ] {
            let whole = Tensor::new(shape.clone(), data.clone()).unwrap();
            let mut obj = serde_json::Map::new();
            obj.insert("p".into(), data::to_json_value(&whole));
            let expected = serde_json::to_string_pretty(&serde_json::Value::Object(obj)).unwrap();
            let row = data.len() / shape[0];
            let mut body = String::new();
            for (k, rows) in data.chunks(2 * row).enumerate() {
                let mut s = shape.clone();
                s[0] = rows.len() / row;
                body += &json_rows(&Tensor::new(s, rows.to_vec()).unwrap(), k == 0);
            }
            assert_eq!(format!("{{\n  \"p\": [\n{body}\n  ]\n}}"), expected);
        }
    }

    fn plan(src: &str) -> Plan {
        let r = compiler::check_source(src);
        compiler::compile(&r.model.unwrap(), &compiler::Options::default())
            .unwrap()
            .plan
    }

    #[test]
    fn only_row_wise_plans_run_in_chunks() {
        let head = "model m { party a; party b; dealer d;
               input x: fixed[batch, 3] private(a) in [-1, 1]; input w: fixed[3] private(b) in [-1, 1];";
        let rows = plan(&format!("{head} let z = x @ w; output z to a; }}"));
        assert_eq!(row_dim(&rows), Ok(Some("batch".into())));
        let summed = plan(&format!("{head} let z = sum(x @ w); output z to a; }}"));
        assert!(row_dim(&summed).is_err());
        let maxed = plan(&format!(
            "{head} let z = x @ w; let m = max(z); output m to a; }}"
        ));
        assert!(row_dim(&maxed).is_err(), "{:?}", row_dim(&maxed));
        let fixed = plan(
            "model m { party a; party b; dealer d;
               input x: fixed[3] private(a) in [-1, 1]; input w: fixed[3] private(b) in [-1, 1];
               let z = x * w; output z to a; }",
        );
        assert_eq!(row_dim(&fixed), Ok(None));
        // softmax moves the rows off the first axis and back: still rows.
        let soft = plan(&format!("{head} let z = softmax(x); output z to a; }}"));
        assert_eq!(row_dim(&soft), Ok(Some("batch".into())));
        // Moving them with a row-major reshape mixes rows.
        let moved = plan(&format!(
            "{head} let z = reshape(x, [3, -1]); let y = permute(z, [1, 0]); output y to a; }}"
        ));
        assert!(row_dim(&moved).is_err(), "{:?}", row_dim(&moved));
        // Summing or multiplying along the rows once they are last.
        let along = plan(&format!(
            "{head} let z = sum(permute(x, [1, 0])); output z to a; }}"
        ));
        assert!(row_dim(&along).is_err());
        let gram = plan(&format!(
            "{head} let z = permute(x, [1, 0]) @ x; output z to a; }}"
        ));
        assert!(row_dim(&gram).is_err());
    }

    #[test]
    fn chunks_are_sized_for_throughput_within_the_budget() {
        let per_row = |n: usize| Some(1000 + 100 * n as u64);
        assert_eq!(chunk_rows(Some(7), 0, &per_row), Ok(7));
        assert_eq!(chunk_rows(None, 1 << 30, &per_row), Ok(THROUGHPUT_ROWS));
        assert_eq!(chunk_rows(None, 1000 + 100 * 500, &per_row), Ok(500));
        assert!(chunk_rows(None, 500, &per_row).is_err());
    }

    #[test]
    fn two_chunks_run_at_once_only_when_both_fit_the_budget() {
        assert_eq!(pipeline_depth(Some(500), 1000), 2);
        assert_eq!(pipeline_depth(Some(501), 1000), 1);
        assert_eq!(pipeline_depth(Some(u64::MAX), u64::MAX), 1);
        assert_eq!(pipeline_depth(None, 1000), 1);
    }
}
