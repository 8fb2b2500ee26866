//! The builtin functions: one table, [`BUILTINS`]. Each entry names a
//! builtin and the forms it can be called in; each form says how a call is
//! written, what it computes, the arguments it takes, the shape of its
//! result and the IR operation it becomes. The checker (arity, argument
//! kinds, shapes, "did you mean"), `veil explain` and the table in
//! docs/language.md (a test keeps it current) all read this table; nothing
//! else lists the builtins.
//!
//! The operation a form becomes is its hook into the rest of the compiler:
//! the range rule (`graph.rs`), the error bound (`analysis.rs`), the cost and
//! protocol choice (`choose.rs`) and the lowering (`lower.rs`) are the
//! operation's, so a builtin that reuses an operation (a new spelling, a
//! new form) touches this file only.

use crate::ir::{Approx, Op, ValueId};

/// A builtin function: its name and the forms it can be called in.
#[derive(Clone, Copy, Debug)]
pub struct Builtin {
    pub name: &'static str,
    /// The ways to call it, told apart by their number of positional arguments.
    pub forms: &'static [Form],
}

/// One way to call a builtin.
#[derive(Clone, Copy, Debug)]
pub struct Form {
    /// The call as the docs write it: `clamp(x, lo, hi)`.
    pub call: &'static str,
    /// What it computes, one line of Markdown (code in backticks): the docs'
    /// table shows it as written, diagnostics without the backticks.
    pub doc: &'static str,
    /// The arguments it takes and the operation they become.
    pub args: Args,
}

/// The arguments of a form, and the IR operation (the constructor of an
/// [`Op`]) a call with them becomes. Each kind fixes the positional
/// parameters ([`Args::positional`]), the named ones ([`Args::named`]) and
/// the shape rule ([`Args::shape`]), so they cannot disagree.
#[derive(Clone, Copy, Debug)]
pub enum Args {
    /// `f(x)`, elementwise.
    Map(fn(ValueId) -> Op),
    /// `f(x, axis: k)` along dimension `k` of `x` (default: the last),
    /// which the result drops.
    Reduce(fn(ValueId) -> Op),
    /// `f(a, b)`, elementwise with broadcasting.
    Pair(fn(ValueId, ValueId) -> Op),
    /// `f(x, degree: d, domain: [lo, hi], tol: t)`, elementwise: a function
    /// the compiler approximates by a polynomial; the named arguments are optional.
    Approximated(fn(ValueId, Approx) -> Op),
    /// `f(x, [c0, c1, ...])`, elementwise, with the coefficients as an array literal.
    Coefficients(fn(ValueId, Vec<f64>) -> Op),
    /// `f(x, lo, hi)`, elementwise, with number literals `lo < hi`.
    Bounds(fn(ValueId, f64, f64) -> Op),
    /// `reshape(x, [d0, d1, ...])`: `Op::Reshape`, one `-1` inferred.
    Reshape,
    /// `flatten(x, start_dim: s, end_dim: e)`: `Op::Reshape` merging `s..=e`.
    Flatten,
    /// `transpose(x, d0, d1)`: `Op::Permute` swapping two axes.
    Transpose,
    /// `permute(x, [p0, p1, ...])`: `Op::Permute`.
    Permute,
    /// `softmax(x, axis: k)` and `log_softmax` (`log`): operations the
    /// checker writes out.
    Softmax { log: bool },
    /// `leaky_relu(x, negative_slope: s)`, `0 < s < 1`: the checker writes
    /// out `max(x, s·x)` (`Op::Max`, one comparison per element).
    LeakyRelu,
    /// `leaky_relu(x, s)`: the same with the slope positional, as PyTorch allows.
    LeakyReluSlope,
    /// `hardtanh(x, min_val: lo, max_val: hi)`, `lo < hi`: `Op::Clamp`.
    Hardtanh,
    /// `sqrt(x)`: the checker writes out `x · rsqrt(x)` (`Op::Mul`).
    Sqrt,
    /// `conv2d(x, w, b?, stride:, padding:, dilation:, groups:)` over
    /// `spatial` axes (2, or 1 for `conv1d`), with a bias when `bias`: the
    /// checker writes out the patches (`Op::Im2col`) times `w`.
    Conv { spatial: usize, bias: bool },
    /// `max_pool2d(x, k, stride:, padding:)` (`max`) or `avg_pool2d` over
    /// `spatial` axes: the checker writes out the patches (`Op::Im2col`)
    /// and a reduction (`Op::MaxReduce`, `Op::Mean`).
    Pool { spatial: usize, max: bool },
    /// `global_avg_pool(x)`: the mean over every position of each channel.
    GlobalAvgPool,
    /// `batch_norm(x, running_mean, running_var, weight?, bias?, eps:)`
    /// with `given` tensors (3 to 5): the checker writes out `x·scale +
    /// shift` per channel (dimension 1), folded into a convolution's or
    /// product's weights where one party holds them and the statistics.
    BatchNorm { given: usize },
    /// `concat(a, b, ..., axis: k)`: one or more tensors (the only
    /// variadic form), joined along `axis` (`Op::Concat`).
    Concat,
    /// `narrow(x, dim, start, length)`: `Op::Narrow`.
    Narrow,
}

/// A positional parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Param {
    /// Any expression.
    Tensor,
    /// A number literal, possibly negated; the text names it in errors.
    Number(&'static str),
    /// An array literal of number literals.
    Coefficients,
    /// An array literal of whole numbers (a shape or a permutation).
    Dims,
    /// A pooling window: a whole number, or one per spatial axis (`[2, 2]`).
    Kernel,
}

/// A named argument. All are optional and take literals only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Named {
    /// `degree: d`, an odd whole number from 1 to [`crate::MAX_DEGREE`].
    Degree,
    /// `domain: [lo, hi]`, the interval a polynomial is fitted on.
    Domain,
    /// `tol: t`, the largest acceptable approximation error, in (0, 1).
    Tol,
    /// `axis: k`, the dimension a reduction runs along: a whole number,
    /// negative counting from the end (`-1`, the default, is the last).
    Axis,
    /// `start_dim:` and `end_dim:` of `flatten`, axes as `axis:`.
    StartDim,
    EndDim,
    /// `negative_slope: s` of `leaky_relu`, a number literal in (0, 1).
    NegativeSlope,
    /// `min_val:` and `max_val:` of `hardtanh`, number literals `min_val < max_val`.
    MinVal,
    MaxVal,
    /// `stride:`, `padding:` and `dilation:` of a convolution or pooling:
    /// a whole number, or one per spatial axis (`[2, 1]`).
    Stride,
    Padding,
    Dilation,
    /// `groups:` of a convolution, a whole number dividing both channel counts.
    Groups,
    /// `eps:` of `batch_norm`, a positive number literal.
    Eps,
    /// `ceil_mode:` of a pooling, `true` or `false` (or 1 or 0): PyTorch's.
    CeilMode,
}

/// The shape of a call's result, from the shapes of its tensor arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShapeRule {
    /// The shape of `x`.
    Same,
    /// `x` without the dimension named by `axis:` (the last by default);
    /// `x` must not be a scalar.
    DropLast,
    /// The two arguments broadcast ([`crate::broadcast`]).
    Broadcast,
    /// The same values in another shape, from the literal arguments
    /// (`reshape`, `flatten`, `transpose`, `permute`).
    Rearranged,
    /// `[batch, channels, S...]` with the spatial sizes the windows give
    /// (convolutions and poolings).
    Windowed,
}

impl Named {
    pub fn name(self) -> &'static str {
        match self {
            Named::Degree => "degree",
            Named::Domain => "domain",
            Named::Tol => "tol",
            Named::Axis => "axis",
            Named::StartDim => "start_dim",
            Named::EndDim => "end_dim",
            Named::NegativeSlope => "negative_slope",
            Named::MinVal => "min_val",
            Named::MaxVal => "max_val",
            Named::Stride => "stride",
            Named::Padding => "padding",
            Named::Dilation => "dilation",
            Named::Groups => "groups",
            Named::Eps => "eps",
            Named::CeilMode => "ceil_mode",
        }
    }
}

impl Param {
    /// What the parameter is, for errors: "the lower bound must be ...".
    pub fn what(self) -> &'static str {
        match self {
            Param::Tensor => "tensor",
            Param::Number(what) => what,
            Param::Coefficients => "coefficients",
            Param::Dims => "dimensions",
            Param::Kernel => "kernel size",
        }
    }
}

impl Args {
    /// The positional parameters, in order: tensors first.
    pub fn positional(self) -> &'static [Param] {
        match self {
            Args::Map(_)
            | Args::Reduce(_)
            | Args::Approximated(_)
            | Args::Flatten
            | Args::Softmax { .. }
            | Args::LeakyRelu
            | Args::Hardtanh
            | Args::Sqrt
            | Args::GlobalAvgPool => &[Param::Tensor],
            Args::Pool { .. } => &[Param::Tensor, Param::Kernel],
            Args::BatchNorm { given: 3 } => &[Param::Tensor; 3],
            Args::BatchNorm { given: 4 } => &[Param::Tensor; 4],
            Args::BatchNorm { .. } => &[Param::Tensor; 5],
            Args::Concat => &[Param::Tensor],
            Args::Narrow => &[
                Param::Tensor,
                Param::Number("dimension"),
                Param::Number("start"),
                Param::Number("length"),
            ],
            Args::Reshape | Args::Permute => &[Param::Tensor, Param::Dims],
            Args::Transpose => &[
                Param::Tensor,
                Param::Number("first dimension"),
                Param::Number("second dimension"),
            ],
            Args::Pair(_) | Args::Conv { bias: false, .. } => &[Param::Tensor, Param::Tensor],
            Args::Conv { bias: true, .. } => &[Param::Tensor, Param::Tensor, Param::Tensor],
            Args::LeakyReluSlope => &[Param::Tensor, Param::Number("negative slope")],
            Args::Coefficients(_) => &[Param::Tensor, Param::Coefficients],
            Args::Bounds(_) => &[
                Param::Tensor,
                Param::Number("lower bound"),
                Param::Number("upper bound"),
            ],
        }
    }

    /// The named arguments it accepts.
    pub fn named(self) -> &'static [Named] {
        match self {
            Args::Approximated(_) => &[Named::Degree, Named::Domain, Named::Tol],
            Args::Reduce(_) | Args::Softmax { .. } | Args::Concat => &[Named::Axis],
            Args::Flatten => &[Named::StartDim, Named::EndDim],
            Args::LeakyRelu => &[Named::NegativeSlope],
            Args::Hardtanh => &[Named::MinVal, Named::MaxVal],
            Args::Conv { .. } => &[
                Named::Stride,
                Named::Padding,
                Named::Dilation,
                Named::Groups,
            ],
            Args::Pool { .. } => &[
                Named::Stride,
                Named::Padding,
                Named::Dilation,
                Named::CeilMode,
            ],
            Args::BatchNorm { .. } => &[Named::Eps],
            _ => &[],
        }
    }

    /// Whether more tensors than [`Args::positional`] lists may follow
    /// (each a tensor): `concat`.
    pub fn variadic(self) -> bool {
        matches!(self, Args::Concat)
    }

    pub fn shape(self) -> ShapeRule {
        match self {
            Args::Reduce(_) => ShapeRule::DropLast,
            Args::Pair(_) => ShapeRule::Broadcast,
            Args::Reshape | Args::Flatten | Args::Transpose | Args::Permute => {
                ShapeRule::Rearranged
            }
            Args::Conv { .. } | Args::Pool { .. } | Args::GlobalAvgPool => ShapeRule::Windowed,
            Args::BatchNorm { .. } => ShapeRule::Same,
            Args::Concat | Args::Narrow => ShapeRule::Rearranged,
            Args::Map(_)
            | Args::Approximated(_)
            | Args::Coefficients(_)
            | Args::Bounds(_)
            | Args::Softmax { .. }
            | Args::LeakyRelu
            | Args::LeakyReluSlope
            | Args::Hardtanh
            | Args::Sqrt => ShapeRule::Same,
        }
    }
}

/// Every builtin, in the order error notes list them.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "sum",
        forms: &[Form {
            call: "sum(x, axis: -1)",
            doc: "sum along dimension `axis` (default the last: `[m, n]` → `[m]`, `[n]` → scalar)",
            args: Args::Reduce(Op::Sum),
        }],
    },
    Builtin {
        name: "mean",
        forms: &[Form {
            call: "mean(x, axis: -1)",
            doc: "mean along dimension `axis` (default the last: `[m, n]` → `[m]`, `[n]` → scalar)",
            args: Args::Reduce(Op::Mean),
        }],
    },
    Builtin {
        name: "square",
        forms: &[Form {
            call: "square(x)",
            doc: "`x * x` elementwise",
            args: Args::Map(Op::Square),
        }],
    },
    Builtin {
        name: "sigmoid",
        forms: &[Form {
            call: "sigmoid(x, degree: 9, domain: [-8, 8], tol: 0.01)",
            doc: "logistic function, approximated by a polynomial; named arguments optional",
            args: Args::Approximated(Op::Sigmoid),
        }],
    },
    Builtin {
        name: "tanh",
        forms: &[Form {
            call: "tanh(x, degree: 7, domain: [-4, 4], tol: 0.01)",
            doc: "hyperbolic tangent, approximated by a polynomial; named arguments optional",
            args: Args::Approximated(Op::Tanh),
        }],
    },
    Builtin {
        name: "poly",
        forms: &[Form {
            call: "poly(x, [c0, c1, c2, ...])",
            doc: "`c0 + c1·x + c2·x² + ...` elementwise (1 to 32 coefficients)",
            args: Args::Coefficients(Op::Poly),
        }],
    },
    Builtin {
        name: "exp",
        forms: &[Form {
            call: "exp(x)",
            doc: "`e^x` elementwise, as `(1 + t + t²/2)^128` with `t = x/128` (8 products; needs `x ≥ -128`)",
            args: Args::Map(Op::Exp),
        }],
    },
    Builtin {
        name: "reciprocal",
        forms: &[Form {
            call: "reciprocal(x)",
            doc: "`1/x` elementwise, by Newton's iteration; the range of `x` must not contain 0",
            args: Args::Map(Op::Reciprocal),
        }],
    },
    Builtin {
        name: "log",
        forms: &[Form {
            call: "log(x)",
            doc: "natural logarithm elementwise, by Newton's iteration on `exp`; the range of `x` must lie above 0",
            args: Args::Map(Op::Log),
        }],
    },
    Builtin {
        name: "rsqrt",
        forms: &[Form {
            call: "rsqrt(x)",
            doc: "`1/√x` elementwise, on shares by Newton's iteration; the range of `x` must lie above 0",
            args: Args::Map(Op::Rsqrt),
        }],
    },
    Builtin {
        name: "sqrt",
        forms: &[Form {
            call: "sqrt(x)",
            doc: "`√x` elementwise, as `x · rsqrt(x)`; the range of `x` must lie above 0",
            args: Args::Sqrt,
        }],
    },
    Builtin {
        name: "softmax",
        forms: &[Form {
            call: "softmax(x, axis: -1)",
            doc: "`exp(x - max(x)) / sum(exp(x - max(x)))` along dimension `axis` (default the last), a numbered dimension",
            args: Args::Softmax { log: false },
        }],
    },
    Builtin {
        name: "log_softmax",
        forms: &[Form {
            call: "log_softmax(x, axis: -1)",
            doc: "`(x - max(x)) - log(sum(exp(x - max(x))))` along dimension `axis` (default the last), a numbered dimension",
            args: Args::Softmax { log: true },
        }],
    },
    Builtin {
        name: "relu",
        forms: &[Form {
            call: "relu(x)",
            doc: "`max(x, 0)` elementwise",
            args: Args::Map(Op::Relu),
        }],
    },
    Builtin {
        name: "leaky_relu",
        forms: &[Form {
            call: "leaky_relu(x, negative_slope: 0.01)",
            doc: "`max(x, negative_slope·x)` elementwise, with a number literal `0 < negative_slope < 1`",
            args: Args::LeakyRelu,
        },
        Form {
            call: "leaky_relu(x, 0.01)",
            doc: "the same, the slope given positionally",
            args: Args::LeakyReluSlope,
        }],
    },
    Builtin {
        name: "relu6",
        forms: &[Form {
            call: "relu6(x)",
            doc: "`clamp(x, 0, 6)` elementwise",
            args: Args::Map(relu6),
        }],
    },
    Builtin {
        name: "hardtanh",
        forms: &[Form {
            call: "hardtanh(x, min_val: -1, max_val: 1)",
            doc: "`clamp(x, min_val, max_val)` elementwise, with number literals `min_val < max_val`; named arguments optional",
            args: Args::Hardtanh,
        },
        Form {
            call: "hardtanh(x, lo, hi)",
            doc: "the same, the bounds given positionally",
            args: Args::Bounds(Op::Clamp),
        }],
    },
    Builtin {
        name: "max",
        forms: &[
            Form {
                call: "max(x, axis: -1)",
                doc: "largest entry along dimension `axis` (default the last)",
                args: Args::Reduce(Op::MaxReduce),
            },
            Form {
                call: "max(a, b)",
                doc: "elementwise maximum (broadcasting)",
                args: Args::Pair(Op::Max),
            },
        ],
    },
    Builtin {
        name: "min",
        forms: &[
            Form {
                call: "min(x, axis: -1)",
                doc: "smallest entry along dimension `axis` (default the last)",
                args: Args::Reduce(Op::MinReduce),
            },
            Form {
                call: "min(a, b)",
                doc: "elementwise minimum (broadcasting)",
                args: Args::Pair(Op::Min),
            },
        ],
    },
    Builtin {
        name: "argmax",
        forms: &[Form {
            call: "argmax(x, axis: -1)",
            doc: "index of the (first) largest entry along dimension `axis` (default the last)",
            args: Args::Reduce(Op::Argmax),
        }],
    },
    Builtin {
        name: "clamp",
        forms: &[Form {
            call: "clamp(x, lo, hi)",
            doc: "`x` limited to `[lo, hi]`, with number literals `lo < hi`",
            args: Args::Bounds(Op::Clamp),
        }],
    },
    Builtin {
        name: "reshape",
        forms: &[Form {
            call: "reshape(x, [-1, 3])",
            doc: "`x`'s values in row-major order in another shape of as many elements; one `-1` stands for the rest (`[batch, 6]` → `reshape(x, [-1, 2, 3])` is `[batch, 2, 3]`)",
            args: Args::Reshape,
        }],
    },
    Builtin {
        name: "flatten",
        forms: &[Form {
            call: "flatten(x, start_dim: 1, end_dim: -1)",
            doc: "dimensions `start_dim` to `end_dim` merged into one (defaults 0 and -1; `flatten(x, start_dim: 1)` of `[batch, 2, 3]` is `[batch, 6]`)",
            args: Args::Flatten,
        }],
    },
    Builtin {
        name: "transpose",
        forms: &[Form {
            call: "transpose(x, 0, 1)",
            doc: "`x` with two dimensions swapped (`[m, n]` → `[n, m]`)",
            args: Args::Transpose,
        }],
    },
    Builtin {
        name: "permute",
        forms: &[Form {
            call: "permute(x, [1, 0])",
            doc: "`x` with its dimensions reordered: dimension `i` of the result is dimension `dims[i]` of `x`",
            args: Args::Permute,
        }],
    },
    Builtin {
        name: "conv2d",
        forms: &[
            Form {
                call: "conv2d(x, w, stride: 1, padding: 0, dilation: 1, groups: 1)",
                doc: "2-d convolution (cross-correlation, as PyTorch's) of `x: [batch, C, H, W]` with `w: [Cout, C/groups, kh, kw]`: `[batch, Cout, Ho, Wo]`, `Ho = (H + 2·padding - dilation·(kh - 1) - 1) / stride + 1`; `stride`, `padding` (zeros) and `dilation` a whole number or `[h, w]`; depthwise when `groups` is `C`; named arguments optional",
                args: Args::Conv { spatial: 2, bias: false },
            },
            Form {
                call: "conv2d(x, w, b, stride: 1, padding: 0, dilation: 1, groups: 1)",
                doc: "the same, plus the bias `b: [Cout]` on each output channel",
                args: Args::Conv { spatial: 2, bias: true },
            },
        ],
    },
    Builtin {
        name: "conv1d",
        forms: &[
            Form {
                call: "conv1d(x, w, stride: 1, padding: 0, dilation: 1, groups: 1)",
                doc: "1-d convolution of `x: [batch, C, L]` with `w: [Cout, C/groups, k]`: `[batch, Cout, Lo]`, as `conv2d` along one axis",
                args: Args::Conv { spatial: 1, bias: false },
            },
            Form {
                call: "conv1d(x, w, b, stride: 1, padding: 0, dilation: 1, groups: 1)",
                doc: "the same, plus the bias `b: [Cout]`",
                args: Args::Conv { spatial: 1, bias: true },
            },
        ],
    },
    Builtin {
        name: "max_pool2d",
        forms: &[Form {
            call: "max_pool2d(x, 2, stride: 2, padding: 0, dilation: 1, ceil_mode: false)",
            doc: "largest entry of each `k × k` window (`k` a whole number or `[kh, kw]`) of each channel of `x: [batch, C, H, W]`, sizes as `conv2d`'s; `stride` defaults to `k`; `padding` at most half the window, never picked (PyTorch's −∞); `dilation` spaces the window's entries (not with `padding`); `ceil_mode: true` rounds the output size up, as PyTorch does (a last window that starts in the input or the left padding)",
            args: Args::Pool { spatial: 2, max: true },
        }],
    },
    Builtin {
        name: "avg_pool2d",
        forms: &[Form {
            call: "avg_pool2d(x, 2, stride: 2, padding: 0, dilation: 1, ceil_mode: false)",
            doc: "mean of each window, as `max_pool2d`; padded zeros count (PyTorch's `count_include_pad=True`), and with `ceil_mode` a window reaching beyond the padding divides by the entries it has there",
            args: Args::Pool { spatial: 2, max: false },
        }],
    },
    Builtin {
        name: "max_pool1d",
        forms: &[Form {
            call: "max_pool1d(x, 2, stride: 2, padding: 0, dilation: 1, ceil_mode: false)",
            doc: "`max_pool2d` along the one axis of `x: [batch, C, L]`",
            args: Args::Pool { spatial: 1, max: true },
        }],
    },
    Builtin {
        name: "avg_pool1d",
        forms: &[Form {
            call: "avg_pool1d(x, 2, stride: 2, padding: 0, dilation: 1, ceil_mode: false)",
            doc: "`avg_pool2d` along the one axis of `x: [batch, C, L]`",
            args: Args::Pool { spatial: 1, max: false },
        }],
    },
    Builtin {
        name: "global_avg_pool",
        forms: &[Form {
            call: "global_avg_pool(x)",
            doc: "mean of each channel over all its positions: `[batch, C, H, W]` or `[batch, C, L]` → `[batch, C]`",
            args: Args::GlobalAvgPool,
        }],
    },
    Builtin {
        name: "batch_norm",
        forms: &[
            Form {
                call: "batch_norm(x, running_mean, running_var, eps: 1e-5)",
                doc: "`(x - running_mean) / √(running_var + eps)` per channel (dimension 1 of `x: [batch, C, ...]`; the statistics `[C]`, held by one party or constants), as PyTorch's in inference; computed as `x·scale + shift`, folded into the weights of a convolution or product just before it when the same party holds them",
                args: Args::BatchNorm { given: 3 },
            },
            Form {
                call: "batch_norm(x, running_mean, running_var, weight, eps: 1e-5)",
                doc: "the same, times `weight: [C]`",
                args: Args::BatchNorm { given: 4 },
            },
            Form {
                call: "batch_norm(x, running_mean, running_var, weight, bias, eps: 1e-5)",
                doc: "the same, times `weight`, plus `bias: [C]`",
                args: Args::BatchNorm { given: 5 },
            },
        ],
    },
    Builtin {
        name: "concat",
        forms: &[Form {
            call: "concat(a, b, axis: -1)",
            doc: "the tensors (one or more, of one rank) joined along dimension `axis` (default the last), where their sizes add; every other dimension equal",
            args: Args::Concat,
        }],
    },
    Builtin {
        name: "cat",
        forms: &[Form {
            call: "cat(a, b, axis: -1)",
            doc: "`concat`, PyTorch's other name",
            args: Args::Concat,
        }],
    },
    Builtin {
        name: "narrow",
        forms: &[Form {
            call: "narrow(x, 1, 0, 2)",
            doc: "`x` cut to `length` entries from `start` along dimension `dim`, as PyTorch's `narrow(x, dim, start, length)` (`x[:, 0:2]` here)",
            args: Args::Narrow,
        }],
    },
];

/// `relu6(x)`: `clamp(x, 0, 6)`.
fn relu6(x: ValueId) -> Op {
    Op::Clamp(x, 0.0, 6.0)
}

/// The builtin called `name`.
pub fn lookup(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

/// Every builtin's name, in table order.
pub fn names() -> impl Iterator<Item = &'static str> + Clone {
    BUILTINS.iter().map(|b| b.name)
}

impl Builtin {
    /// The form taking `positional` positional arguments.
    pub fn form(&self, positional: usize) -> Option<&'static Form> {
        self.forms.iter().find(|f| {
            let n = f.args.positional().len();
            n == positional || (f.args.variadic() && positional >= n)
        })
    }

    /// The numbers of positional arguments it accepts, in form order.
    pub fn arities(&self) -> Vec<usize> {
        self.forms
            .iter()
            .map(|f| f.args.positional().len())
            .collect()
    }

    /// The named arguments any of its forms accepts.
    pub fn named(&self) -> Vec<Named> {
        let mut named: Vec<Named> = Vec::new();
        for n in self.forms.iter().flat_map(|f| f.args.named()) {
            if !named.contains(n) {
                named.push(*n);
            }
        }
        named
    }

    /// Every form with what it computes, as plain text for a diagnostic:
    /// `max(x): largest entry ...; max(a, b): elementwise maximum ...`.
    pub fn signature(&self) -> String {
        (self.forms.iter())
            .map(|f| format!("{}: {}", f.call, plain(f.doc)))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Markdown without its code marks, for the terminal.
pub fn plain(markdown: &str) -> String {
    markdown.replace('`', "")
}

/// The builtin table of docs/language.md (a test checks that the file
/// holds exactly this between its `builtins` markers).
pub fn markdown_table() -> String {
    let mut s = String::from("| call | result |\n|---|---|\n");
    for f in BUILTINS.iter().flat_map(|b| b.forms) {
        s += &format!("| `{}` | {} |\n", f.call, f.doc);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Dim, Shape};

    #[test]
    fn names_are_unique_and_forms_differ_in_arity() {
        let mut names: Vec<&str> = names().collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), BUILTINS.len());
        for b in BUILTINS {
            assert!(!b.forms.is_empty(), "{}", b.name);
            let mut arities = b.arities();
            arities.sort();
            arities.dedup();
            assert_eq!(
                arities.len(),
                b.forms.len(),
                "{}: two forms, one arity",
                b.name
            );
            for f in b.forms {
                assert!(
                    f.call.starts_with(&format!("{}(", b.name)),
                    "{}: {}",
                    b.name,
                    f.call
                );
                assert!(!f.doc.is_empty() && !f.doc.contains('|'), "{}", f.call);
            }
        }
    }

    /// Every form's `call`, as the docs write it, checks, with the declared
    /// shape rule and into the operation the form names.
    #[test]
    fn every_documented_call_checks_into_its_operation() {
        for b in BUILTINS {
            for f in b.forms {
                // The docs' placeholders: tensors `x`, `a`, `b` (one row of
                // a batch), bounds `lo`, `hi`, coefficients `c0, c1, ...`.
                let call = f
                    .call
                    .replace("lo, hi", "-1, 1")
                    .replace("c0, c1, c2, ...", "1, 0.5, 0.25");
                // Convolutions: `x: [n, 3, 5(, 5)]`, `w: [3, 3, 3(, 3)]`, `b: [3]`.
                let call = call
                    .replace("t(a, b,", "t(x, a,")
                    .replace("running_mean, running_var, weight, bias", "b, b, b, b")
                    .replace("running_mean, running_var, weight", "b, b, b")
                    .replace("running_mean, running_var", "b, b");
                let spatial = match f.args {
                    Args::Conv { spatial, .. } | Args::Pool { spatial, .. } => Some(spatial),
                    Args::GlobalAvgPool => Some(2),
                    _ => None,
                };
                let src = if let Some(spatial) = spatial {
                    let (xs, ws) = if spatial == 2 {
                        ("n, 3, 5, 5", "3, 3, 3, 3")
                    } else {
                        ("n, 3, 5", "3, 3, 3")
                    };
                    format!(
                        "model m {{ party p; party q; dealer d;
                           input x: fixed[{xs}] private(p); input w: fixed[{ws}] private(q);
                           input b: fixed[3] private(q);
                           let r = {call}; output r to p; }}"
                    )
                } else {
                    format!(
                        "model m {{ party p; party q; dealer d;
                       input x: fixed[n, 3] private(p); input a: fixed[n, 3] private(p);
                       input b: fixed[3] private(q);
                       let r = {call}; output r to p; }}"
                    )
                };
                let checked = crate::check_source(&src);
                let model = checked.model.unwrap_or_else(|| {
                    panic!("`{}` does not check: {:?}", f.call, checked.diagnostics)
                });
                let out = model.value(model.outputs()[0].value);
                let n = Dim::Symbol("n".into());
                let want = match (f.args.shape(), f.args) {
                    (ShapeRule::DropLast, _) => Shape(vec![n]),
                    (ShapeRule::Windowed, Args::Conv { spatial, .. }) => Shape(
                        [n, Dim::Known(3)]
                            .into_iter()
                            .chain((0..spatial).map(|_| Dim::Known(3)))
                            .collect(),
                    ),
                    // A window of 2, stride 2, on 5.
                    (ShapeRule::Windowed, Args::Pool { spatial, .. }) => Shape(
                        [n, Dim::Known(3)]
                            .into_iter()
                            .chain((0..spatial).map(|_| Dim::Known(2)))
                            .collect(),
                    ),
                    (ShapeRule::Windowed, _) => Shape(vec![n, Dim::Known(3)]),
                    (ShapeRule::Rearranged, Args::Concat) => Shape(vec![n, Dim::Known(6)]),
                    (ShapeRule::Rearranged, Args::Narrow) => Shape(vec![n, Dim::Known(2)]),
                    (ShapeRule::Rearranged, Args::Transpose | Args::Permute) => {
                        Shape(vec![Dim::Known(3), n])
                    }
                    _ => Shape(vec![n, Dim::Known(3)]),
                };
                assert_eq!(out.shape, want, "{}", f.call);
                let (x, y) = (crate::ir::ValueId(0), crate::ir::ValueId(1));
                let expected = match f.args {
                    Args::Map(op) | Args::Reduce(op) => op(x),
                    Args::Pair(op) => op(x, y),
                    Args::Approximated(op) => op(x, Approx::default()),
                    Args::Coefficients(op) => op(x, vec![]),
                    Args::Bounds(op) => op(x, 0.0, 1.0),
                    Args::Reshape | Args::Flatten => Op::Reshape(x),
                    Args::Transpose | Args::Permute | Args::Softmax { .. } => {
                        Op::Permute(x, vec![])
                    }
                    Args::LeakyRelu | Args::LeakyReluSlope => Op::Max(x, y),
                    Args::Hardtanh => Op::Clamp(x, -1.0, 1.0),
                    Args::Sqrt => Op::Mul(x, y),
                    // Written out: the result moves the channels back.
                    Args::Conv { .. } | Args::Pool { .. } => Op::Permute(x, vec![]),
                    Args::GlobalAvgPool => Op::Mean(x),
                    // x·scale + shift, on `[n, 3]` directly.
                    Args::BatchNorm { .. } => Op::Add(x, y),
                    Args::Concat => Op::Concat(vec![]),
                    Args::Narrow => Op::Narrow(x, 0, 0),
                };
                assert_eq!(
                    std::mem::discriminant(&out.op),
                    std::mem::discriminant(&expected),
                    "{}",
                    f.call
                );
            }
        }
    }

    /// docs/language.md shows the table this module generates.
    #[test]
    fn the_language_reference_lists_every_builtin() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/language.md");
        let docs = std::fs::read_to_string(path).expect("docs/language.md");
        let (start, end) = (
            "<!-- builtins: generated from compiler/src/builtins.rs -->\n",
            "<!-- end builtins -->",
        );
        let from = docs.find(start).expect("start marker") + start.len();
        let to = from + docs[from..].find(end).expect("end marker");
        let table = markdown_table();
        assert!(
            docs[from..to] == table,
            "docs/language.md's builtin table is out of date; between its markers it should read:\n{table}"
        );
    }
}
