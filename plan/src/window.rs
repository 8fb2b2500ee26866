//! Sliding windows over the spatial axes of `[batch, C, S1, ...]`: the
//! patches a convolution or a pooling reads (im2col), as local data
//! movement that both the clear operation ([`crate::ClearOp::Im2col`]) and
//! the executor on shares ([`crate::ShareOp::Im2col`]) run through
//! [`im2col_data`]. The compiler's reference interpreter has its own
//! definition (it shares no code with this one).

use serde::{Deserialize, Serialize};

/// The windows of a convolution or pooling: per spatial axis (one for
/// `conv1d`, two for `conv2d`) the kernel size, stride, zero padding on
/// each side and dilation, as PyTorch defines them; the output size along
/// an axis of size `s` is `(s + 2p - d(k - 1) - 1) / stride + 1`.
///
/// The patches of `[batch, C, S...]` are `[batch, So..., C·K]` (K the
/// kernel's element count; column `c·K + j` is channel `c` at kernel offset
/// `j`, row-major), the layout `w` reshaped to `[Cout, C·K]` multiplies.
/// With `groups > 1` each output channel gets its group's patch:
/// `[batch, So..., groups·per_group, (C/groups)·K]`, output channel
/// `o = g·per_group + r` reading the channels of group `g`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Window {
    pub kernel: Vec<usize>,
    pub stride: Vec<usize>,
    pub padding: Vec<usize>,
    pub dilation: Vec<usize>,
    pub groups: usize,
    /// Output channels per group (copies of a group's patch); 1 unless `groups > 1`.
    pub per_group: usize,
    /// Pad with the nearest entry along each axis instead of zeros: for
    /// max pooling (dilation 1, padding at most half the kernel), where
    /// every window holds an entry of the input, that entry's copy never
    /// changes the window's maximum, as PyTorch's −∞ padding does not.
    pub edge: bool,
    /// Padding after the end of each spatial axis beyond `padding`, for a
    /// pooling's `ceil_mode` (the windows PyTorch adds when the last one
    /// starts inside the input or its left padding); zeros, or the nearest
    /// entry with `edge`. Empty: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra: Vec<usize>,
}

impl Window {
    /// A window an RLWE convolution (`rlwe::conv`, Cheetah's HomConv) runs:
    /// two spatial axes, one group, dilation 1, zero padding.
    pub fn is_homconv(&self) -> bool {
        self.kernel.len() == 2
            && self.stride.len() == 2
            && self.padding.len() == 2
            && self.dilation == [1, 1]
            && self.groups == 1
            && !self.edge
            && self.extra.iter().all(|&e| e == 0)
            && self.kernel.iter().chain(&self.stride).all(|&k| k > 0)
    }

    /// Output size along spatial axis `i` of size `size`, `None` when the
    /// (dilated) kernel is larger than the padded input or a parameter is 0.
    pub fn out_len(&self, i: usize, size: usize) -> Option<usize> {
        let (k, s, p, d) = (
            *self.kernel.get(i)?,
            *self.stride.get(i)?,
            *self.padding.get(i)?,
            *self.dilation.get(i)?,
        );
        if k == 0 || s == 0 || d == 0 {
            return None;
        }
        let span = d.checked_mul(k - 1)?.checked_add(1)?;
        let extra = self.extra.get(i).copied().unwrap_or(0);
        let padded = size.checked_add(p.checked_mul(2)?)?.checked_add(extra)?;
        Some(padded.checked_sub(span)? / s + 1)
    }

    /// The `extra` padding along axis `i` of size `size` that PyTorch's
    /// `ceil_mode=True` gives: the output size rounded up, less the last
    /// window if it would start beyond the input and its left padding.
    /// `None` where [`Window::out_len`] (without `extra`) is.
    pub fn ceil_extra(&self, i: usize, size: usize) -> Option<usize> {
        let floor = Window {
            extra: vec![],
            ..self.clone()
        }
        .out_len(i, size)?;
        let (k, s, p, d) = (
            self.kernel[i],
            self.stride[i],
            self.padding[i],
            self.dilation[i],
        );
        let span = d * (k - 1) + 1;
        let padded = size + 2 * p;
        // One more window when the floor leaves entries over, and it starts
        // inside the input or the left padding (PyTorch's pooling_output_shape).
        let more = !(padded - span).is_multiple_of(s) && floor * s < size + p;
        Some(if more { floor * s + span - padded } else { 0 })
    }

    /// The patches' shape for an operand of `shape`, or why none.
    pub fn out_shape(&self, shape: &[usize]) -> Result<Vec<usize>, String> {
        let r = self.kernel.len();
        let consistent = r > 0
            && [&self.stride, &self.padding, &self.dilation]
                .iter()
                .all(|v| v.len() == r)
            && (self.extra.is_empty() || self.extra.len() == r)
            && self.groups > 0
            && self.per_group > 0
            && (self.groups > 1 || self.per_group == 1);
        if !consistent {
            return Err(format!("inconsistent window {self:?}"));
        }
        if shape.len() != r + 2 {
            return Err(format!(
                "windows over {r} axes of a {shape:?} operand (rank {} expected)",
                r + 2
            ));
        }
        let c = shape[1];
        if !c.is_multiple_of(self.groups) {
            return Err(format!("{c} channels in {} groups", self.groups));
        }
        let mut out = vec![shape[0]];
        for (i, &s) in shape[2..].iter().enumerate() {
            out.push(self.out_len(i, s).ok_or_else(|| {
                format!("window {self:?} does not fit axis {} of {shape:?}", i + 2)
            })?);
        }
        let k: usize = self.kernel.iter().product();
        if self.groups > 1 {
            out.push(self.groups * self.per_group);
        }
        out.push(c / self.groups * k);
        Ok(out)
    }
}

/// The patches of `data` (row-major, of `shape`) under `w`, with `zero`
/// where a window reaches into the padding; any element type (reals,
/// ring elements). An error, never a panic, on inconsistent input.
pub fn im2col_data<T: Copy>(
    data: &[T],
    shape: &[usize],
    w: &Window,
    zero: T,
) -> Result<(Vec<T>, Vec<usize>), String> {
    let out_shape = w.out_shape(shape)?;
    if shape.iter().product::<usize>() != data.len() {
        return Err(format!("{} values do not fill {shape:?}", data.len()));
    }
    let r = w.kernel.len();
    let (batch, c) = (shape[0], shape[1]);
    let spatial = &shape[2..];
    let out_spatial = &out_shape[1..=r];
    let plane: usize = spatial.iter().product();
    let positions: usize = out_spatial.iter().product();
    let k: usize = w.kernel.iter().product();
    let cg = c / w.groups;
    let copies = if w.groups > 1 { w.per_group } else { 1 };
    let total = out_shape.iter().product::<usize>();
    let mut out = Vec::with_capacity(total);
    // Each kernel offset's coordinates, and each output position's.
    let unravel = |mut i: usize, dims: &[usize]| {
        let mut at = vec![0usize; dims.len()];
        for (a, &d) in at.iter_mut().zip(dims).rev() {
            *a = i % d;
            i /= d;
        }
        at
    };
    let offsets: Vec<Vec<usize>> = (0..k).map(|j| unravel(j, &w.kernel)).collect();
    // Per output position and kernel offset: the flat index in a channel's
    // plane, or None in the padding.
    let mut source: Vec<Option<usize>> = Vec::with_capacity(positions * k);
    for p in 0..positions {
        let o = unravel(p, out_spatial);
        for off in &offsets {
            let mut flat = 0usize;
            let mut inside = true;
            for a in 0..r {
                let x =
                    (o[a] * w.stride[a] + off[a] * w.dilation[a]) as isize - w.padding[a] as isize;
                let x = if w.edge {
                    x.clamp(0, spatial[a] as isize - 1)
                } else {
                    x
                };
                if x < 0 || x as usize >= spatial[a] {
                    inside = false;
                    break;
                }
                flat = flat * spatial[a] + x as usize;
            }
            source.push(inside.then_some(flat));
        }
    }
    for b in 0..batch {
        for p in 0..positions {
            let src = &source[p * k..(p + 1) * k];
            for g in 0..w.groups {
                for _ in 0..copies {
                    for ch in g * cg..(g + 1) * cg {
                        let base = (b * c + ch) * plane;
                        out.extend(src.iter().map(|s| s.map_or(zero, |i| data[base + i])));
                    }
                }
            }
        }
    }
    debug_assert_eq!(out.len(), total);
    Ok((out, out_shape))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(k: &[usize], s: &[usize], p: &[usize], d: &[usize]) -> Window {
        Window {
            kernel: k.to_vec(),
            stride: s.to_vec(),
            padding: p.to_vec(),
            dilation: d.to_vec(),
            groups: 1,
            per_group: 1,
            edge: false,
            extra: vec![],
        }
    }

    /// `ceil_mode`'s extra windows as PyTorch counts them
    /// (`pooling_output_shape`: ceil, less one if the last window starts
    /// at or beyond the input and its left padding), over many sizes.
    #[test]
    fn ceil_mode_adds_the_windows_pytorch_adds() {
        for size in 1..12usize {
            for k in 1..5usize {
                for s in 1..4usize {
                    for p in 0..=k / 2 {
                        for d in 1..3usize {
                            let span = d * (k - 1) + 1;
                            if size + 2 * p < span {
                                continue;
                            }
                            let n = (size + 2 * p - span) as f64;
                            let mut want = (n / s as f64).ceil() as usize + 1;
                            if (want - 1) * s >= size + p {
                                want -= 1;
                            }
                            let mut w = window(&[k], &[s], &[p], &[d]);
                            w.extra = vec![w.ceil_extra(0, size).unwrap()];
                            assert_eq!(w.out_len(0, size), Some(want), "{size} {k} {s} {p} {d}");
                            // The last window starts inside the input or its left padding.
                            assert!((want - 1) * s < size + p);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn patches_of_a_small_image_in_row_major_order() {
        // One 3×3 image 1..9, 2×2 windows, stride 1.
        let data: Vec<i32> = (1..=9).collect();
        let w = window(&[2, 2], &[1, 1], &[0, 0], &[1, 1]);
        let (out, shape) = im2col_data(&data, &[1, 1, 3, 3], &w, 0).unwrap();
        assert_eq!(shape, vec![1, 2, 2, 4]);
        assert_eq!(out, vec![1, 2, 4, 5, 2, 3, 5, 6, 4, 5, 7, 8, 5, 6, 8, 9]);
        // Padding 1, stride 2: the corners read zeros.
        let w = window(&[2, 2], &[2, 2], &[1, 1], &[1, 1]);
        let (out, shape) = im2col_data(&data, &[1, 1, 3, 3], &w, 0).unwrap();
        assert_eq!(shape, vec![1, 2, 2, 4]);
        assert_eq!(&out[..4], &[0, 0, 0, 1]);
        assert_eq!(&out[12..], &[5, 6, 8, 9]);
    }

    #[test]
    fn edge_padding_repeats_the_nearest_entry() {
        let data: Vec<i32> = (1..=9).collect();
        let w = Window {
            edge: true,
            ..window(&[2, 2], &[2, 2], &[1, 1], &[1, 1])
        };
        let (out, _) = im2col_data(&data, &[1, 1, 3, 3], &w, 0).unwrap();
        assert_eq!(&out[..4], &[1, 1, 1, 1]);
        assert_eq!(&out[4..8], &[2, 3, 2, 3]);
    }

    #[test]
    fn groups_give_each_output_channel_its_groups_patch() {
        // Two channels of length 2, kernel 1, 2 groups, 2 outputs per group.
        let data = [1, 2, 3, 4];
        let w = Window {
            groups: 2,
            per_group: 2,
            ..window(&[1], &[1], &[0], &[1])
        };
        let (out, shape) = im2col_data(&data, &[1, 2, 2], &w, 0).unwrap();
        assert_eq!(shape, vec![1, 2, 4, 1]);
        assert_eq!(out, vec![1, 1, 3, 3, 2, 2, 4, 4]);
    }

    #[test]
    fn windows_that_do_not_fit_are_errors() {
        let w = window(&[5], &[1], &[1], &[1]);
        assert!(im2col_data(&[0; 2], &[1, 1, 2], &w, 0).is_err());
        let w = window(&[1], &[0], &[0], &[1]);
        assert!(im2col_data(&[0; 2], &[1, 1, 2], &w, 0).is_err());
        let w = window(&[1], &[1], &[0], &[1]);
        assert!(im2col_data(&[0; 3], &[1, 1, 2], &w, 0).is_err());
        assert!(im2col_data(&[0; 2], &[1, 2], &w, 0).is_err());
    }
}
