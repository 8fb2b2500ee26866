//! Reading inputs from CSV, JSON and NumPy `.npy` files, and writing outputs.
//! Errors name the file and the place; they never echo values.

use plan::Tensor;
use std::path::Path;

/// Load a tensor from a file, choosing the format by extension.
pub fn load(path: &Path) -> Result<Tensor, String> {
    let name = path.display();
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read `{name}`: {e}"))?;
    let result = match ext.as_str() {
        "csv" | "txt" => text(&bytes).and_then(parse_csv),
        "json" => text(&bytes).and_then(parse_json),
        "npy" => parse_npy(&bytes),
        other => Err(format!(
            "unknown format `.{other}`: use .csv, .json or .npy"
        )),
    };
    result.map_err(|e| format!("`{name}`: {e}"))
}

fn text(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|e| {
        format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.valid_up_to()
        )
    })
}

/// Rows of comma-separated numbers; a first line that is not numeric is a
/// header and skipped. One row or one column reads as a vector.
pub fn parse_csv(text: &str) -> Result<Tensor, String> {
    let mut rows: Vec<Vec<f64>> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let parsed: Result<Vec<f64>, usize> = fields
            .iter()
            .enumerate()
            .map(|(j, f)| f.parse::<f64>().map_err(|_| j))
            .collect();
        match parsed {
            Ok(row) => {
                if let Some(first) = rows.first() {
                    if first.len() != row.len() {
                        return Err(format!(
                            "line {}: {} columns, but earlier rows have {}",
                            i + 1,
                            row.len(),
                            first.len()
                        ));
                    }
                }
                rows.push(row);
            }
            Err(_) if rows.is_empty() && fields.iter().all(|f| f.parse::<f64>().is_err()) => {} // header
            Err(j) => return Err(format!("line {}, column {}: not a number", i + 1, j + 1)),
        }
    }
    if rows.is_empty() {
        return Err("no data rows".into());
    }
    let (r, c) = (rows.len(), rows[0].len());
    let data: Vec<f64> = rows.into_iter().flatten().collect();
    Tensor::new(vec![r, c], data)
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

/// NumPy `.npy` (format 1.0–3.0), little-endian f8, f4, i8 or i4, C order.
pub fn parse_npy(bytes: &[u8]) -> Result<Tensor, String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy file (bad magic)".into());
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let end = start
        .checked_add(header_len)
        .filter(|e| *e <= bytes.len())
        .ok_or("truncated .npy header")?;
    let header =
        std::str::from_utf8(&bytes[start..end]).map_err(|_| "the .npy header is not text")?;
    let field = |key: &str| -> Option<&str> {
        let i = header.find(&format!("'{key}'"))?;
        let rest = &header[i + key.len() + 2..];
        let rest = rest.trim_start().strip_prefix(':')?.trim_start();
        Some(rest)
    };
    let descr = field("descr")
        .and_then(|r| r.strip_prefix('\''))
        .and_then(|r| r.split('\'').next())
        .ok_or("no dtype in .npy header")?;
    if field("fortran_order").is_some_and(|r| r.starts_with("True")) {
        return Err(
            "Fortran-ordered arrays are not supported; save with np.ascontiguousarray".into(),
        );
    }
    let shape_text = field("shape")
        .and_then(|r| r.strip_prefix('('))
        .and_then(|r| r.split(')').next())
        .ok_or("no shape in .npy header")?;
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| format!("bad dimension `{s}` in .npy header"))
        })
        .collect::<Result<_, _>>()?;
    let n = shape
        .iter()
        .try_fold(1usize, |a, d| a.checked_mul(*d))
        .ok_or("the .npy shape is too large")?;
    let body = &bytes[end..];
    let (width, read): (usize, fn(&[u8]) -> f64) = match descr {
        "<f8" => (8, |b| f64::from_le_bytes(b.try_into().expect("8 bytes"))),
        "<f4" => (4, |b| {
            f32::from_le_bytes(b.try_into().expect("4 bytes")) as f64
        }),
        "<i8" => (8, |b| {
            i64::from_le_bytes(b.try_into().expect("8 bytes")) as f64
        }),
        "<i4" => (4, |b| {
            i32::from_le_bytes(b.try_into().expect("4 bytes")) as f64
        }),
        other => {
            return Err(format!(
                "unsupported dtype `{other}`: use float64, float32, int64 or int32 (little-endian)"
            ))
        }
    };
    if body.len() != n.checked_mul(width).ok_or("the .npy shape is too large")? {
        return Err(format!(
            "shape {shape:?} of {descr} needs {} bytes of data, the file has {}",
            n * width,
            body.len()
        ));
    }
    let data = body.chunks_exact(width).map(read).collect();
    Tensor::new(shape, data)
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

/// Outputs as CSV: a scalar on one line, a vector one value per line, a
/// matrix one row per line.
pub fn to_csv(t: &Tensor) -> String {
    let cols = if t.shape.len() == 2 {
        t.shape[1].max(1)
    } else {
        1
    };
    let mut s = String::new();
    for row in t.data.chunks(cols) {
        let line: Vec<String> = row.iter().map(|v| format!("{v}")).collect();
        s.push_str(&line.join(","));
        s.push('\n');
    }
    s
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

    #[test]
    fn csv() {
        let t = parse_csv("a,b\n1,2\n3, 4.5\n\n").unwrap();
        assert_eq!(
            (t.shape.clone(), t.data.clone()),
            (vec![2, 2], vec![1.0, 2.0, 3.0, 4.5])
        );
        assert_eq!(fit_rank(parse_csv("1\n2\n3").unwrap(), 1).shape, vec![3]);
        assert_eq!(
            fit_rank(parse_csv("7").unwrap(), 0).shape,
            Vec::<usize>::new()
        );
        assert!(parse_csv("1,2\n3\n").unwrap_err().contains("line 2"));
        assert!(parse_csv("1,x\n").unwrap_err().contains("line 1, column 2"));
        assert!(parse_csv("").is_err());
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
    }

    #[test]
    fn outputs() {
        let t = Tensor::new(vec![2, 2], vec![1.0, 2.5, 3.0, 4.0]).unwrap();
        assert_eq!(to_csv(&t), "1,2.5\n3,4\n");
        assert_eq!(to_json_value(&t).to_string(), "[[1.0,2.5],[3.0,4.0]]");
    }
}
