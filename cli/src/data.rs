//! Reading inputs from CSV, JSON and NumPy `.npy` files (or standard input),
//! and writing outputs. Errors name the file and the place; they never echo
//! values.

pub use plan::npy::{parse_npy, to_npy, NpyHeader};
use plan::Tensor;
use std::io::Read as _;
use std::path::Path;

/// A data format, chosen by a file's extension; `--stdin-format` for `-`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Comma-separated rows of numbers, with an optional header row.
    Csv,
    /// A number or nested arrays of numbers.
    Json,
    /// NumPy's binary `.npy`.
    Npy,
}

/// A loaded input: the values, where each came from in the file (to report
/// positions the way the file shows them), and the ID column if asked for.
#[derive(Debug)]
pub struct Loaded {
    pub tensor: Tensor,
    pub layout: Layout,
    /// The values of the `--id-column`, one per data row, when this CSV file has it.
    pub ids: Option<Vec<String>>,
}

/// Where the values of a loaded file sit in it.
#[derive(Debug)]
pub enum Layout {
    /// The line (1-based) of each data row and the column (1-based) of each
    /// value column, so a header, comments, blank lines and the ID column are
    /// accounted for.
    Csv {
        lines: Vec<usize>,
        columns: Vec<usize>,
    },
    /// The shape of the nested arrays as read.
    Json { shape: Vec<usize> },
    /// The array's shape.
    Npy { shape: Vec<usize> },
}

impl Layout {
    /// Where the value with row-major index `flat` is: `at line 12, column 3`
    /// for CSV, `at [11][2]` for JSON and `at index (11, 2)` for .npy (both
    /// 0-based, as the languages that write them count); empty for a scalar.
    pub fn position(&self, flat: usize) -> String {
        let index = |shape: &[usize]| {
            let mut rest = flat;
            let mut idx = vec![0; shape.len()];
            for (i, d) in shape.iter().enumerate().rev() {
                let d = (*d).max(1);
                idx[i] = rest % d;
                rest /= d;
            }
            idx
        };
        match self {
            Layout::Csv { lines, columns } => {
                let cols = columns.len().max(1);
                match (lines.get(flat / cols), columns.get(flat % cols)) {
                    (Some(l), Some(c)) => format!("at line {l}, column {c}"),
                    _ => format!("#{flat}"),
                }
            }
            Layout::Json { shape } if shape.is_empty() => String::new(),
            Layout::Json { shape } => {
                let idx: String = index(shape).iter().map(|i| format!("[{i}]")).collect();
                format!("at {idx}")
            }
            Layout::Npy { shape } if shape.is_empty() => String::new(),
            Layout::Npy { shape } => {
                let idx: Vec<String> = index(shape).iter().map(usize::to_string).collect();
                if idx.len() == 1 {
                    format!("at index {}", idx[0])
                } else {
                    format!("at index ({})", idx.join(", "))
                }
            }
        }
    }
}

/// `-` as a path: standard input.
pub fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// How a file is named in messages.
pub fn describe(path: &Path) -> String {
    if is_stdin(path) {
        "standard input".into()
    } else {
        format!("`{}`", path.display())
    }
}

/// Load a tensor from a file, choosing the format by extension; `-` reads
/// standard input in `stdin_format`, or in the format its first bytes show
/// (the .npy magic, `[` for JSON, otherwise CSV). `id_column` names a CSV
/// column to set aside as row IDs, if this file's header has it.
pub fn load(
    path: &Path,
    stdin_format: Option<Format>,
    id_column: Option<&str>,
) -> Result<Loaded, String> {
    let name = describe(path);
    let (bytes, format) = if is_stdin(path) {
        use std::io::IsTerminal as _;
        if std::io::stdin().is_terminal() {
            eprintln!("reading an input from standard input: type or paste it, then Ctrl-D");
        }
        let mut bytes = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        let format = stdin_format.unwrap_or_else(|| sniff(&bytes));
        (bytes, format)
    } else {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        let format = match ext.as_str() {
            "csv" | "txt" => Format::Csv,
            "json" => Format::Json,
            "npy" => Format::Npy,
            other => {
                return Err(format!(
                    "{name}: unknown format `.{other}`: use .csv, .json or .npy"
                ))
            }
        };
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read {name}: {e}"))?;
        (bytes, format)
    };
    parse(&bytes, format, &name, id_column)
}

/// The per-column ranges a model names (`in "ranges.npy"`): a .npy, .csv
/// or .json file of shape [k, 2], one `lo, hi` row per column, its path
/// relative to the model file's directory. The compiler checks the pairs.
pub fn read_ranges(model: &Path, file: &str) -> Result<Vec<(f64, f64)>, String> {
    let path = Path::new(file);
    if is_stdin(path) {
        return Err("ranges are read from a file, not standard input".into());
    }
    let path = match model.parent() {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path.to_path_buf(),
    };
    let t = load(&path, None, None)?.tensor;
    match t.shape[..] {
        [_, 2] => Ok(t.data.chunks(2).map(|r| (r[0], r[1])).collect()),
        _ => Err(format!(
            "{} has shape {:?}; expected [k, 2], one `lo, hi` row per column",
            describe(&path),
            t.shape
        )),
    }
}

/// `bytes` read as `format`; errors are prefixed with `name`.
pub fn parse(
    bytes: &[u8],
    format: Format,
    name: &str,
    id_column: Option<&str>,
) -> Result<Loaded, String> {
    let result = match format {
        Format::Csv => text(bytes).and_then(|t| parse_csv(t, id_column)),
        Format::Json => text(bytes).and_then(parse_json).map(|tensor| Loaded {
            layout: Layout::Json {
                shape: tensor.shape.clone(),
            },
            tensor,
            ids: None,
        }),
        Format::Npy => parse_npy(bytes).map(|tensor| Loaded {
            layout: Layout::Npy {
                shape: tensor.shape.clone(),
            },
            tensor,
            ids: None,
        }),
    };
    result.map_err(|e| format!("{name}: {e}"))
}

/// The format of data on standard input, from its first bytes.
pub fn sniff(bytes: &[u8]) -> Format {
    if bytes.starts_with(b"\x93NUMPY") {
        return Format::Npy;
    }
    let start = bytes
        .strip_prefix("\u{feff}".as_bytes())
        .unwrap_or(bytes)
        .iter()
        .find(|b| !b.is_ascii_whitespace());
    match start {
        Some(b'[') => Format::Json,
        _ => Format::Csv,
    }
}

fn text(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|e| {
        format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.valid_up_to()
        )
    })
}

/// One CSV field: its text (without surrounding quotes and blanks) and
/// whether it was quoted.
struct Field {
    text: String,
    quoted: bool,
}

/// Split a CSV line at commas outside double quotes (`""` inside quotes is
/// one quote). Fields spanning lines are not supported.
fn split_fields(line: &str) -> Result<Vec<Field>, (usize, &'static str)> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
            chars.next();
        }
        let column = fields.len() + 1;
        let mut field = Field {
            text: String::new(),
            quoted: false,
        };
        if chars.peek() == Some(&'"') {
            chars.next();
            field.quoted = true;
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.text.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.text.push(c),
                    None => return Err((column, "a quote is not closed on this line")),
                }
            }
            while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
                chars.next();
            }
            match chars.peek() {
                None | Some(',') => {}
                Some(_) => return Err((column, "text after a closing quote")),
            }
            field.text = field.text.trim().to_string();
        } else {
            while let Some(c) = chars.peek().filter(|c| **c != ',') {
                field.text.push(*c);
                chars.next();
            }
            field.text = field.text.trim().to_string();
        }
        fields.push(field);
        match chars.next() {
            Some(',') => continue,
            _ => return Ok(fields),
        }
    }
}

/// What a CSV field holds.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Number(f64),
    /// Parses, but as NaN or an infinity.
    NotFinite,
    Empty,
    /// A usual marker of a missing value (`NA`, `NaN`, `null`, ...).
    Missing(&'static str),
    /// A column name: a letter or `_`, then letters, digits, `_`, ` `, `.`, `-`.
    Name,
    /// Anything else.
    Text,
}

const MISSING: [&str; 9] = [
    "NA", "N/A", "#N/A", "NaN", "null", "NULL", "None", "nil", "?",
];

fn classify(f: &Field) -> Kind {
    let t = f.text.as_str();
    if t.is_empty() {
        return Kind::Empty;
    }
    if let Some(m) = MISSING.iter().find(|m| m.eq_ignore_ascii_case(t)) {
        return Kind::Missing(m);
    }
    if let Ok(v) = t.parse::<f64>() {
        return if v.is_finite() {
            Kind::Number(v)
        } else {
            Kind::NotFinite
        };
    }
    let mut chars = t.chars();
    let first = chars.next().expect("not empty");
    if (first.is_alphabetic() || first == '_')
        && chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | ' ' | '.' | '-'))
    {
        Kind::Name
    } else {
        Kind::Text
    }
}

/// Why a field cannot be a value, without echoing it (it may be private),
/// except for the fixed missing-value markers.
fn not_a_value(kind: Kind) -> String {
    match kind {
        Kind::Empty => "an empty field: every value is needed".into(),
        Kind::Missing(m) => {
            format!("`{m}`, a missing value: every value is needed (fill or drop the row first)")
        }
        Kind::NotFinite => "not a finite number (NaN or infinity)".into(),
        Kind::Name | Kind::Text => "text, not a number".into(),
        Kind::Number(_) => unreachable!("a number is a value"),
    }
}

/// Rows of comma-separated numbers, and where each value came from. One row
/// or one column reads as a vector (see [`fit_rank`]). The first row is a
/// header when every field in it is a name (such as `age`,
/// `"income"` or `x_1`); any other row must be numbers (quoted numbers such
/// as `"1.5"` count), and a field that is not is reported with its line and
/// column. With `id_column`, the header's column of that name is set aside
/// as row IDs (kept as text) instead of being read as numbers.
pub fn parse_csv(text: &str, id_column: Option<&str>) -> Result<Loaded, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut csv = CsvRows::new(id_column);
    let mut rows: Vec<f64> = Vec::new();
    let mut lines: Vec<usize> = Vec::new();
    let mut ids: Vec<String> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if let Some(id) = csv.line(i + 1, line, &mut rows)? {
            lines.push(i + 1);
            ids.extend(id);
        }
    }
    if lines.is_empty() {
        return Err(csv.no_rows().into());
    }
    let columns = csv.columns()?;
    let tensor = Tensor::new(vec![lines.len(), columns.len()], rows)?;
    Ok(Loaded {
        tensor,
        layout: Layout::Csv { lines, columns },
        ids: csv.id_at.map(|_| ids),
    })
}

/// A CSV file read one line at a time ([`parse_csv`] on a whole text, the
/// streaming reader of `veil run` on a file of any size): the header, the
/// ID column and the row width seen so far.
pub struct CsvRows {
    id_column: Option<String>,
    header: Option<Vec<String>>,
    id_at: Option<usize>,
    width: Option<usize>,
    /// Data rows read so far.
    pub rows: usize,
}

impl CsvRows {
    pub fn new(id_column: Option<&str>) -> Self {
        CsvRows {
            id_column: id_column.map(str::to_string),
            header: None,
            id_at: None,
            width: None,
            rows: 0,
        }
    }

    /// Whether the header has the ID column.
    pub fn has_ids(&self) -> bool {
        self.id_at.is_some()
    }

    /// Why a file without data rows is refused.
    pub fn no_rows(&self) -> &'static str {
        if self.header.is_some() {
            "a header but no data rows"
        } else {
            "no data rows"
        }
    }

    /// The (1-based) columns of the values, once a data row was read.
    pub fn columns(&self) -> Result<Vec<usize>, String> {
        let width = self.width.ok_or(self.no_rows())?;
        let columns: Vec<usize> = (1..=width).filter(|c| Some(c - 1) != self.id_at).collect();
        if columns.is_empty() {
            return Err("no value columns: the only column is the ID column".into());
        }
        Ok(columns)
    }

    /// Reads line `n` (1-based): a data row's values are appended to `values`
    /// and its ID returned (`Some(None)` without an ID column); a header,
    /// a comment or a blank line gives `None`. A bad row is an error naming
    /// the line and column.
    pub fn line(
        &mut self,
        n: usize,
        line: &str,
        values: &mut Vec<f64>,
    ) -> Result<Option<Option<String>>, String> {
        let id_column = self.id_column.as_deref();
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            return Ok(None);
        }
        let fields =
            split_fields(trimmed).map_err(|(c, why)| format!("line {n}, column {c}: {why}"))?;
        let kinds: Vec<Kind> = fields.iter().map(classify).collect();
        let first_row = self.header.is_none() && self.rows == 0;
        if first_row && kinds.iter().all(|k| *k == Kind::Name) {
            let names: Vec<String> = fields.into_iter().map(|f| f.text).collect();
            if let Some(id) = id_column {
                let at: Vec<usize> = (0..names.len()).filter(|j| names[*j] == id).collect();
                match at.as_slice() {
                    [] => {}
                    [j] => self.id_at = Some(*j),
                    _ => {
                        let cols: Vec<String> = at.iter().map(|j| (j + 1).to_string()).collect();
                        return Err(format!(
                            "line {n}: the header names columns {} `{id}`; the ID column must be one",
                            cols.join(" and ")
                        ));
                    }
                }
            }
            self.width = Some(names.len());
            self.header = Some(names);
            return Ok(None);
        }
        if let Some(w) = self.width {
            if fields.len() != w {
                return Err(format!(
                    "line {n}: {} columns, but {} {w}",
                    fields.len(),
                    if self.header.is_some() && self.rows == 0 {
                        "the header has"
                    } else {
                        "earlier rows have"
                    }
                ));
            }
        }
        let has_number = kinds.iter().any(|k| matches!(k, Kind::Number(_)));
        if first_row && kinds.contains(&Kind::Name) && !has_number {
            // Some names, no numbers, but not only names: neither a header
            // nor a row of numbers.
            let (j, kind) = kinds
                .iter()
                .enumerate()
                .find(|(_, k)| **k != Kind::Name)
                .expect("not every field is a name");
            let what = match kind {
                Kind::Number(_) => unreachable!("no numbers"),
                Kind::Empty => "an empty field".to_string(),
                Kind::Missing(m) => format!("`{m}`, a missing value"),
                Kind::NotFinite => "NaN or infinity".to_string(),
                Kind::Name | Kind::Text => "text that is not a column name".to_string(),
            };
            return Err(format!(
                "line {n}, column {}: {what}, so the line is neither a header (which names \
                 every column, with names such as `age` or `x_1`) nor a row of numbers",
                j + 1
            ));
        }
        self.width = Some(fields.len());
        let before = values.len();
        let mut id = None;
        for (j, (field, kind)) in fields.iter().zip(&kinds).enumerate() {
            if Some(j) == self.id_at {
                id = Some(field.text.clone());
                continue;
            }
            match kind {
                Kind::Number(v) => values.push(*v),
                other => {
                    values.truncate(before);
                    let mut msg = format!("line {n}, column {}: {}", j + 1, not_a_value(*other));
                    if matches!(other, Kind::Name | Kind::Text) {
                        msg.push_str(&match (id_column, &self.header) {
                            (None, _) => {
                                "; if it is an ID column, name it with --id-column NAME".into()
                            }
                            (Some(id), Some(_)) => {
                                format!("; the header has no column `{id}` (--id-column)")
                            }
                            (Some(id), None) => format!(
                                "; for --id-column {id}, the file needs a header row naming its columns"
                            ),
                        });
                    }
                    return Err(msg);
                }
            }
        }
        self.rows += 1;
        Ok(Some(id))
    }
}

/// A number or (nested) arrays of numbers.
pub fn parse_json(text: &str) -> Result<Tensor, String> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    let mut shape = Vec::new();
    let mut probe = &v;
    while let serde_json::Value::Array(a) = probe {
        shape.push(a.len());
        match a.first() {
            Some(first) => probe = first,
            None => break,
        }
    }
    let mut data = Vec::new();
    flatten(&v, &shape, 0, &mut data)?;
    Tensor::new(shape, data)
}

fn flatten(
    v: &serde_json::Value,
    shape: &[usize],
    depth: usize,
    out: &mut Vec<f64>,
) -> Result<(), String> {
    match v {
        serde_json::Value::Number(n) if depth == shape.len() => {
            out.push(n.as_f64().ok_or("a number out of range")?);
            Ok(())
        }
        serde_json::Value::Array(a) if depth < shape.len() => {
            if a.len() != shape[depth] {
                return Err(format!(
                    "ragged array: a row at depth {depth} has {} elements, expected {}",
                    a.len(),
                    shape[depth]
                ));
            }
            a.iter().try_for_each(|x| flatten(x, shape, depth + 1, out))
        }
        serde_json::Value::Null => {
            Err("null is not a number (NaN and missing values are not allowed)".into())
        }
        serde_json::Value::String(_) => {
            Err("strings are not numbers; write numbers unquoted".into())
        }
        _ => Err(format!(
            "mixed nesting at depth {depth}: expected {}",
            if depth < shape.len() {
                "an array"
            } else {
                "a number"
            }
        )),
    }
}

/// Drop singleton dimensions so a loaded tensor matches a declared rank:
/// one CSV row or column as a vector, a 1×1 file as a scalar.
pub fn fit_rank(t: Tensor, rank: usize) -> Tensor {
    if t.shape.len() <= rank {
        return t;
    }
    let mut shape: Vec<usize> = t.shape.clone();
    while shape.len() > rank {
        match shape.iter().position(|d| *d == 1) {
            Some(i) => {
                shape.remove(i);
            }
            None => break,
        }
    }
    Tensor {
        shape,
        data: t.data,
    }
}

/// Row IDs to write as the first column of output CSVs: the column's name
/// and one ID per row.
pub struct Ids<'a> {
    pub column: &'a str,
    pub values: &'a [String],
}

/// Output `name` as CSV with a header row: a scalar on one line, a vector
/// one value per line (header `name`), a matrix one row per line (header
/// `name_0,name_1,...`). With `ids`, whose count must equal the rows, each
/// row starts with its ID (header: the ID column's name).
pub fn to_csv(name: &str, t: &Tensor, ids: Option<Ids>) -> String {
    let cols = if t.shape.len() == 2 {
        t.shape[1].max(1)
    } else {
        1
    };
    let mut header: Vec<String> = Vec::new();
    if let Some(ids) = &ids {
        header.push(csv_field(ids.column));
    }
    if t.shape.len() == 2 {
        header.extend((0..cols).map(|j| format!("{name}_{j}")));
    } else {
        header.push(name.to_string());
    }
    let mut s = header.join(",");
    s.push('\n');
    for (i, row) in t.data.chunks(cols).enumerate() {
        let mut line: Vec<String> = Vec::with_capacity(cols + 1);
        if let Some(ids) = &ids {
            line.push(csv_field(ids.values.get(i).map_or("", String::as_str)));
        }
        line.extend(row.iter().map(|v| format!("{v}")));
        s.push_str(&line.join(","));
        s.push('\n');
    }
    s
}

/// A text field for CSV, quoted when it must be (RFC 4180).
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) || text != text.trim() {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

pub fn to_json_value(t: &Tensor) -> serde_json::Value {
    use serde_json::Value;
    let num = |v: f64| serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number);
    match t.shape.as_slice() {
        [] => num(t.data[0]),
        [_] => Value::Array(t.data.iter().map(|v| num(*v)).collect()),
        [_, c] => Value::Array(
            t.data
                .chunks((*c).max(1))
                .map(|r| Value::Array(r.iter().map(|v| num(*v)).collect()))
                .collect(),
        ),
        _ => Value::Array(t.data.iter().map(|v| num(*v)).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv(text: &str) -> Result<Tensor, String> {
        parse_csv(text, None).map(|l| l.tensor)
    }

    #[test]
    fn csv_rows() {
        let t = csv("a,b\n1,2\n3, 4.5\n\n").unwrap();
        assert_eq!(
            (t.shape.clone(), t.data.clone()),
            (vec![2, 2], vec![1.0, 2.0, 3.0, 4.5])
        );
        assert_eq!(fit_rank(csv("1\n2\n3").unwrap(), 1).shape, vec![3]);
        assert_eq!(fit_rank(csv("7").unwrap(), 0).shape, Vec::<usize>::new());
        assert!(csv("1,2\n3\n").unwrap_err().contains("line 2"));
        assert!(csv("1,x\n").unwrap_err().contains("line 1, column 2"));
        assert!(csv("").is_err());
        assert!(csv("a,b\n")
            .unwrap_err()
            .contains("a header but no data rows"));
    }

    /// Issue 14, defect 6: a first row that is not numbers is a header only
    /// when it names every column; otherwise it is a bad row, reported.
    #[test]
    fn a_first_row_is_a_header_only_when_it_names_every_column() {
        // Headers: names, quoted or not, with spaces, dots, dashes; a BOM.
        for header in [
            "age,income",
            "\"age\", \"income\"",
            "x_1,x.2",
            "net income,debt-ratio",
            "\u{feff}age,income",
        ] {
            let t = csv(&format!("{header}\n1,2\n3,4\n")).unwrap();
            assert_eq!(t.shape, vec![2, 2], "{header}");
        }
        // Not headers: the row is data, and reported where it is wrong.
        let cases = [
            ("NA,NA\n1,2\n", "line 1, column 1: `NA`, a missing value"),
            (",\n1,2\n", "line 1, column 1: an empty field"),
            (
                "nan,null\n1,2\n",
                "line 1, column 1: `NaN`, a missing value",
            ),
            (
                "age,NA\n1,2\n",
                "line 1, column 2: `NA`, a missing value, so the line is neither a header",
            ),
            ("age,3\n1,2\n", "line 1, column 1: text, not a number"),
            ("inf,1\n1,2\n", "line 1, column 1: not a finite number"),
            ("# c\n\n1,2\n3,\n", "line 4, column 2: an empty field"),
            ("1,2\n3,NA\n", "line 2, column 2: `NA`"),
            (
                "age,name\n1,Bob\n",
                "line 2, column 2: text, not a number; if it is an ID column",
            ),
            ("1,\"2\n", "line 1, column 2: a quote is not closed"),
            ("1,\"2\"x\n", "line 1, column 2: text after a closing quote"),
        ];
        for (text, expected) in cases {
            let err = csv(text).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
            assert!(!err.contains("Bob"), "no data in errors: {err}");
        }
    }

    /// Quoted numbers (as spreadsheets and `QUOTE_ALL` write them) are numbers.
    #[test]
    fn quoted_numbers_are_numbers() {
        let t = csv("\"1.5\",\" -2 \"\n\"3\",4\n").unwrap();
        assert_eq!((t.shape, t.data), (vec![2, 2], vec![1.5, -2.0, 3.0, 4.0]));
        // The first row of quoted numbers is data, not a header.
        assert_eq!(csv("\"1\",\"2\"\n").unwrap().shape, vec![1, 2]);
    }

    #[test]
    fn an_id_column_is_set_aside_and_positions_count_it() {
        let l = parse_csv("# ids\nx,id,y\n1,a 7,2\n3,\"b,8\",4\n", Some("id")).unwrap();
        assert_eq!(
            (l.tensor.shape, l.tensor.data),
            (vec![2, 2], vec![1.0, 2.0, 3.0, 4.0])
        );
        assert_eq!(l.ids, Some(vec!["a 7".to_string(), "b,8".to_string()]));
        // Value #3 (row 2, second value column) is on line 4, in column 3.
        assert_eq!(l.layout.position(3), "at line 4, column 3");
        assert_eq!(l.layout.position(0), "at line 3, column 1");
        // A file without the column: no IDs, and numbers as usual.
        assert_eq!(parse_csv("x,y\n1,2\n", Some("id")).unwrap().ids, None);
        assert!(parse_csv("id,id\n1,2\n", Some("id"))
            .unwrap_err()
            .contains("columns 1 and 2 `id`"));
        assert!(parse_csv("id\na\n", Some("id"))
            .unwrap_err()
            .contains("the only column is the ID column"));
    }

    #[test]
    fn positions_in_json_and_npy_count_from_zero() {
        let json = Layout::Json { shape: vec![3, 4] };
        assert_eq!(json.position(6), "at [1][2]");
        assert_eq!(Layout::Json { shape: vec![] }.position(0), "");
        let npy = Layout::Npy { shape: vec![3, 4] };
        assert_eq!(npy.position(11), "at index (2, 3)");
        assert_eq!(Layout::Npy { shape: vec![5] }.position(4), "at index 4");
    }

    #[test]
    fn standard_input_is_sniffed() {
        assert_eq!(sniff(b"\x93NUMPY\x01\x00"), Format::Npy);
        assert_eq!(sniff(b" \n[[1, 2]]"), Format::Json);
        assert_eq!(sniff("\u{feff}[1]".as_bytes()), Format::Json);
        assert_eq!(sniff(b"x,y\n1,2\n"), Format::Csv);
        assert_eq!(sniff(b"0.5"), Format::Csv);
    }

    #[test]
    fn json() {
        let t = parse_json("[[1, 2], [3, 4]]").unwrap();
        assert_eq!(t.shape, vec![2, 2]);
        assert_eq!(parse_json("0.5").unwrap().shape, Vec::<usize>::new());
        assert!(parse_json("[[1, 2], [3]]").unwrap_err().contains("ragged"));
        assert!(parse_json("[1, null]").unwrap_err().contains("null"));
        assert!(parse_json("[1, \"2\"]").is_err());
        assert!(parse_json("[1,").unwrap_err().contains("invalid JSON"));
    }

    #[test]
    fn npy() {
        let header = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }";
        let mut h = header.to_string();
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(' ');
        }
        h.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(h.len() as u16).to_le_bytes());
        bytes.extend_from_slice(h.as_bytes());
        for v in [1.0f64, 2.0, 3.0, 4.0] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        let t = parse_npy(&bytes).unwrap();
        assert_eq!((t.shape, t.data), (vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]));
        assert!(parse_npy(&bytes[..bytes.len() - 3])
            .unwrap_err()
            .contains("needs 32 bytes"));
        assert!(parse_npy(b"not numpy at all").is_err());
        // One-byte integers (the bundled networks' int8 weights).
        for (descr, want) in [
            ("|i1", [-1.0, 127.0, -128.0]),
            ("|u1", [255.0, 127.0, 128.0]),
        ] {
            let header =
                format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': (3,), }}\n");
            let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
            bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
            bytes.extend_from_slice(header.as_bytes());
            bytes.extend_from_slice(&[255, 127, 128]);
            let t = parse_npy(&bytes).unwrap();
            assert_eq!((t.shape, t.data), (vec![3], want.to_vec()), "{descr}");
        }
    }

    #[test]
    fn outputs() {
        let t = Tensor::new(vec![2, 2], vec![1.0, 2.5, 3.0, 4.0]).unwrap();
        assert_eq!(to_json_value(&t).to_string(), "[[1.0,2.5],[3.0,4.0]]");
    }

    /// Issue 14: output CSVs have a header row, and the row IDs first.
    #[test]
    fn output_csvs_have_a_header_and_the_ids_first() {
        let m = Tensor::new(vec![2, 2], vec![1.0, 2.5, 3.0, 4.0]).unwrap();
        assert_eq!(to_csv("p", &m, None), "p_0,p_1\n1,2.5\n3,4\n");
        let v = Tensor::new(vec![2], vec![0.25, 1.0]).unwrap();
        assert_eq!(to_csv("p", &v, None), "p\n0.25\n1\n");
        assert_eq!(to_csv("s", &Tensor::scalar(7.0), None), "s\n7\n");
        let ids = vec!["a".to_string(), "b,\"c\"".to_string()];
        let with = to_csv(
            "p",
            &v,
            Some(Ids {
                column: "id",
                values: &ids,
            }),
        );
        assert_eq!(with, "id,p\na,0.25\n\"b,\"\"c\"\"\",1\n");
        // What Veil writes, Veil reads back, IDs included.
        let back = parse_csv(&with, Some("id")).unwrap();
        assert_eq!((back.tensor.data, back.ids), (v.data, Some(ids)));
    }
}
