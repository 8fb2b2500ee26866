//! NumPy's `.npy` format, read and written without I/O: inputs and
//! outputs of `veil` (the CLI reads chunks of rows through [`NpyHeader`]),
//! and the test and example code that reads what they write.
//! <https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html>

use crate::Tensor;

/// A tensor as NumPy `.npy` (format 1.0, little-endian f8, C order).
pub fn to_npy(t: &Tensor) -> Vec<u8> {
    let shape = match t.shape.as_slice() {
        [n] => format!("({n},)"),
        dims => format!(
            "({})",
            dims.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}");
    // Magic (6) + version (2) + length (2) + header + newline: a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + 8 * t.data.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in &t.data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// NumPy `.npy` (format 1.0–3.0), little-endian f8, f4, i8 or i4, C order.
pub fn parse_npy(bytes: &[u8]) -> Result<Tensor, String> {
    let h = NpyHeader::parse(bytes)?;
    let body = &bytes[h.data_start..];
    h.check_len(body.len() as u64)?;
    let data = body.chunks_exact(h.width).map(h.read).collect();
    Tensor::new(h.shape, data)
}

/// What a `.npy` header says: the shape, the width and decoding of one
/// value, and where the data starts.
pub struct NpyHeader {
    pub shape: Vec<usize>,
    descr: String,
    pub width: usize,
    pub read: fn(&[u8]) -> f64,
    pub data_start: usize,
}

impl NpyHeader {
    /// The bytes a header can take at most (format 2.0 allows 4 GiB; NumPy
    /// writes a few hundred bytes).
    pub const MAX_LEN: usize = 1 << 16;

    /// Parses the header at the start of `bytes` (at least the whole header).
    pub fn parse(bytes: &[u8]) -> Result<NpyHeader, String> {
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
            // One byte has no byte order: NumPy writes `|i1` and `|u1`.
            "|i1" => (1, |b| b[0] as i8 as f64),
            "|u1" => (1, |b| b[0] as f64),
            other => {
                return Err(format!(
                "unsupported dtype `{other}`: use float64, float32, int64, int32 (little-endian), int8 or uint8"
            ))
            }
        };
        Ok(NpyHeader {
            shape,
            descr: descr.to_string(),
            width,
            read,
            data_start: end,
        })
    }

    /// The number of values the shape holds.
    pub fn count(&self) -> Result<usize, String> {
        self.shape
            .iter()
            .try_fold(1usize, |a, d| a.checked_mul(*d))
            .ok_or_else(|| "the .npy shape is too large".to_string())
    }

    /// Checks that the data is `len` bytes, as the shape and dtype need.
    pub fn check_len(&self, len: u64) -> Result<(), String> {
        let need = self
            .count()?
            .checked_mul(self.width)
            .ok_or("the .npy shape is too large")?;
        if len != need as u64 {
            return Err(format!(
                "shape {:?} of {} needs {need} bytes of data, the file has {len}",
                self.shape, self.descr
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_written_reads_back() {
        for shape in [vec![], vec![3], vec![2, 3], vec![1, 2, 2]] {
            let n: usize = shape.iter().product();
            let t = Tensor {
                shape: shape.clone(),
                data: (0..n).map(|i| i as f64 * 0.5 - 1.0).collect(),
            };
            let back = parse_npy(&to_npy(&t)).unwrap();
            assert_eq!((back.shape, back.data), (t.shape, t.data));
        }
    }

    #[test]
    fn malformed_headers_are_errors() {
        assert!(parse_npy(b"not numpy").is_err());
        let mut b = to_npy(&Tensor::new(vec![2], vec![1.0, 2.0]).unwrap());
        b.truncate(b.len() - 1);
        assert!(parse_npy(&b).unwrap_err().contains("needs 16 bytes"));
        let header = "{'descr': '<f2', 'fortran_order': False, 'shape': (1,), }";
        let mut f2 = b"\x93NUMPY\x01\x00".to_vec();
        f2.extend_from_slice(&(header.len() as u16).to_le_bytes());
        f2.extend_from_slice(header.as_bytes());
        f2.extend_from_slice(&[0, 0]);
        assert!(parse_npy(&f2).unwrap_err().contains("unsupported dtype"));
    }
}
