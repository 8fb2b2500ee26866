//! ONNX graph → Veil source. See the crate documentation for what is folded.
//!
//! Values are either constants ([`Const`], folded at import) or views of a
//! node of the model being built: the node computes a tensor of Veil shape
//! `node.shape`, and a view may see it in another shape of as many elements
//! (Flatten, Reshape, Squeeze and Unsqueeze only create views). A view is
//! materialised, with one `reshape`, only where an operation needs it.
//!
//! Op semantics follow the ONNX operator specification
//! (github.com/onnx/onnx, docs/Operators.md and docs/Operators-ml.md).

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write;

use crate::proto::{attribute_proto::AttributeType, AttributeProto, ModelProto, NodeProto};
use crate::tensor::{self, Const, BATCH};
use crate::{
    identifier, DataInput, ImportError, Imported, Options, RangeSource, CALIBRATION_MARGIN,
};

/// The ops of the default domain that translate (listed in errors and docs).
pub const SUPPORTED_OPS: &[&str] = &[
    "Add",
    "ArgMax",
    "AveragePool",
    "BatchNormalization",
    "Cast",
    "Clip",
    "Concat",
    "Constant",
    "ConstantOfShape",
    "Conv",
    "Div",
    "Dropout",
    "Exp",
    "Flatten",
    "Gather",
    "Gemm",
    "GlobalAveragePool",
    "Identity",
    "LeakyRelu",
    "Log",
    "LogSoftmax",
    "MatMul",
    "MaxPool",
    "Mul",
    "Neg",
    "Pad",
    "ReduceMean",
    "ReduceSum",
    "Relu",
    "Reciprocal",
    "Reshape",
    "Shape",
    "Sigmoid",
    "Softmax",
    "Sqrt",
    "Squeeze",
    "Sub",
    "Sum",
    "Tanh",
    "Transpose",
    "Unsqueeze",
];
/// The ops of `ai.onnx.ml` that translate.
pub const SUPPORTED_ML_OPS: &[&str] = &[
    "ArrayFeatureExtractor",
    "LinearClassifier",
    "LinearRegressor",
    "Normalizer",
    "Scaler",
    "ZipMap",
];

/// The lowest and highest default-domain opsets read.
const OPSETS: (i64, i64) = (6, 25);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dim {
    Batch,
    N(usize),
}

type Shape = Vec<Dim>;

fn count(s: &[Dim]) -> usize {
    s.iter()
        .map(|d| if let Dim::N(n) = d { *n } else { 1 })
        .product()
}

fn has_batch(s: &[Dim]) -> bool {
    s.contains(&Dim::Batch)
}

/// What a value is known to hold, for folding that is only exact on it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Other,
    /// Rows of probabilities: nonnegative, summing to 1.
    Probabilities,
}

type Id = usize;

#[derive(Clone, Debug)]
enum Op {
    Input,
    /// `x @ w + b`.
    Linear {
        x: Id,
        w: Const,
        b: Option<Const>,
    },
    /// `conv1d`/`conv2d(x, w, b, ...)`.
    Conv {
        x: Id,
        w: Const,
        b: Option<Const>,
        stride: Vec<usize>,
        pad: Vec<usize>,
        dil: Vec<usize>,
        groups: usize,
    },
    /// `x * scale + shift`, the constants broadcasting against x.
    Affine {
        x: Id,
        scale: Option<Const>,
        shift: Option<Const>,
    },
    /// `a op b` on two computed values.
    Binary {
        op: &'static str,
        a: Id,
        b: Id,
    },
    /// `f(x, extra)`: `extra` is the text of the other arguments.
    Call {
        f: &'static str,
        args: Vec<Id>,
        extra: String,
    },
    /// A constant operand of an op between computed values: the model
    /// owner's input of the node's name (a literal if it is one value).
    Weight(Const),
}

#[derive(Clone, Debug)]
struct Node {
    op: Op,
    shape: Shape,
    name: String,
    comment: String,
}

#[derive(Clone, Debug)]
enum Val {
    Const(Const),
    View { node: Id, shape: Shape, kind: Kind },
}

struct Tr<'a> {
    opts: &'a Options,
    nodes: Vec<Node>,
    vals: HashMap<String, Val>,
    uses: HashMap<String, usize>,
    names: BTreeSet<String>,
    opset: i64,
    ml_opset: i64,
    warnings: Vec<String>,
    /// Zero `Pad` nodes waiting for the Conv or AveragePool they feed: the
    /// Pad's output name → its input's name and the padding per spatial
    /// dimension (both sides).
    pads_pending: HashMap<String, (String, Vec<usize>)>,
    /// Outputs of ZipMap nodes (dictionaries, dropped).
    zipmaps: BTreeSet<String>,
    /// `argmax` nodes whose index stands for a class label: the public
    /// table (`output ... labels [..]`), applied after the reveal.
    labelled: HashMap<Id, Vec<f64>>,
    /// The label table of each output, by its Veil name.
    output_labels: HashMap<String, Vec<f64>>,
}

/// Veil's keywords and builtin functions: not usable as names.
const RESERVED: &[&str] = &[
    "model",
    "precision",
    "party",
    "dealer",
    "input",
    "const",
    "let",
    "output",
    "to",
    "fixed",
    "public",
    "private",
    "in",
    "via",
    "batch",
    "sum",
    "mean",
    "square",
    "sigmoid",
    "tanh",
    "poly",
    "exp",
    "reciprocal",
    "softmax",
    "log_softmax",
    "relu",
    "leaky_relu",
    "relu6",
    "hardtanh",
    "max",
    "min",
    "argmax",
    "clamp",
    "reshape",
    "flatten",
    "transpose",
    "permute",
    "conv1d",
    "conv2d",
    "max_pool1d",
    "max_pool2d",
    "avg_pool1d",
    "avg_pool2d",
    "global_avg_pool",
    "batch_norm",
    "concat",
    "cat",
    "narrow",
    "sqrt",
    "rsqrt",
];

pub(crate) fn translate(
    model: &ModelProto,
    external: &mut dyn FnMut(&str) -> Result<Vec<u8>, String>,
    opts: &Options,
) -> Result<Imported, ImportError> {
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| ImportError::Decode("the model has no graph".into()))?;
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain().is_empty() || o.domain() == "ai.onnx")
        .map(|o| o.version())
        .unwrap_or(OPSETS.0);
    let ml_opset = model
        .opset_import
        .iter()
        .find(|o| o.domain() == "ai.onnx.ml")
        .map(|o| o.version())
        .unwrap_or(1);
    if !(OPSETS.0..=OPSETS.1).contains(&opset) {
        return Err(ImportError::Options(format!(
            "the model uses opset {opset} of the default domain; veil import reads opsets {} to {} \
             (re-export it with another opset, e.g. torch.onnx.export(..., opset_version=17))",
            OPSETS.0, OPSETS.1
        )));
    }
    for o in &model.opset_import {
        if !matches!(o.domain(), "" | "ai.onnx" | "ai.onnx.ml") {
            return Err(ImportError::Options(format!(
                "the model uses operators of domain `{}`, which veil import does not read",
                o.domain()
            )));
        }
    }
    let mut tr = Tr {
        opts,
        nodes: Vec::new(),
        vals: HashMap::new(),
        uses: HashMap::new(),
        names: RESERVED.iter().map(|s| s.to_string()).collect(),
        opset,
        ml_opset,
        warnings: Vec::new(),
        pads_pending: HashMap::new(),
        zipmaps: BTreeSet::new(),
        labelled: HashMap::new(),
        output_labels: HashMap::new(),
    };
    for p in [&opts.data_owner, &opts.model_owner]
        .into_iter()
        .chain(opts.dealer.as_ref())
    {
        tr.names.insert(p.clone());
    }
    for n in &graph.node {
        for i in n.input.iter().filter(|i| !i.is_empty()) {
            *tr.uses.entry(i.clone()).or_default() += 1;
        }
    }
    for o in &graph.output {
        *tr.uses.entry(o.name().to_string()).or_default() += 1;
    }
    for init in &graph.initializer {
        let c = tensor::decode(init, external)?;
        tr.vals.insert(init.name().to_string(), Val::Const(c));
    }
    // Data inputs: graph inputs that are not initializers.
    let mut data_inputs = Vec::new();
    for input in &graph.input {
        if tr.vals.contains_key(input.name()) {
            continue;
        }
        let dims = input_dims(input)?;
        let name = tr.fresh(input.name());
        let range = tr.input_range(input.name(), &name, &dims)?;
        let shape: Shape = dims
            .iter()
            .enumerate()
            .map(|(i, d)| if i == 0 { Dim::Batch } else { Dim::N(*d) })
            .collect();
        let id = tr.push(
            Op::Input,
            shape.clone(),
            name.clone(),
            format!("onnx input {}", input.name()),
        );
        tr.vals.insert(
            input.name().to_string(),
            Val::View {
                node: id,
                shape,
                kind: Kind::Other,
            },
        );
        data_inputs.push(DataInput {
            name,
            onnx_name: input.name().to_string(),
            dims,
            range: range.0,
            how: range.1,
        });
    }
    for key in opts.ranges.keys().chain(opts.calibration.keys()) {
        if !data_inputs
            .iter()
            .any(|d| &d.name == key || &d.onnx_name == key)
        {
            let known: Vec<&str> = data_inputs.iter().map(|d| d.onnx_name.as_str()).collect();
            return Err(ImportError::Options(format!(
                "a range or calibration sample is given for `{key}`, but the model's data inputs are: {}",
                known.join(", ")
            )));
        }
    }
    if data_inputs.is_empty() {
        return Err(ImportError::Options(
            "the model has no data input (every graph input has an initializer)".into(),
        ));
    }
    for node in &graph.node {
        tr.node(node, external)?;
    }
    // Outputs.
    let mut outputs = Vec::new();
    let mut lets = Vec::new();
    let mut named_outputs = BTreeSet::new();
    for o in &graph.output {
        let Some(val) = tr.vals.get(o.name()).cloned() else {
            if tr.zipmaps.contains(o.name()) {
                tr.warnings.push(format!(
                    "output `{}` was dropped (a ZipMap's dictionary output)",
                    o.name()
                ));
                continue;
            }
            return Err(ImportError::Invalid {
                node: o.name().to_string(),
                message: "this graph output is not computed by a node veil import translates (a Pad's output, or undefined)".into(),
            });
        };
        let (id, _) = match val {
            Val::View { .. } => tr.materialize(o.name(), &val)?,
            Val::Const(_) => {
                return Err(ImportError::Invalid {
                    node: o.name().to_string(),
                    message: "this output is a constant: it does not depend on the data".into(),
                })
            }
        };
        let want = identifier(o.name());
        let renamable = !matches!(tr.nodes[id].op, Op::Input) && !named_outputs.contains(&id);
        // Already named after this output (`relu_1` for a reserved `relu`)?
        let named_after = tr.nodes[id]
            .name
            .strip_prefix(want.as_str())
            .is_some_and(|rest| {
                rest.is_empty()
                    || rest
                        .strip_prefix('_')
                        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            });
        let name = if named_after {
            tr.nodes[id].name.clone()
        } else if !tr.names.contains(&want) {
            tr.names.insert(want.clone());
            if renamable {
                // The node takes the output's name (no alias line).
                let old = std::mem::replace(&mut tr.nodes[id].name, want.clone());
                tr.names.remove(&old);
            } else {
                lets.push((want.clone(), tr.nodes[id].name.clone()));
            }
            want
        } else {
            let n = tr.fresh(o.name());
            lets.push((n.clone(), tr.nodes[id].name.clone()));
            n
        };
        named_outputs.insert(id);
        if let Some(table) = tr.labelled.get(&id).cloned() {
            if !lets.iter().any(|(n, _)| n == &name) {
                tr.output_labels.insert(name.clone(), table);
            } else {
                return Err(ImportError::Invalid {
                    node: o.name().to_string(),
                    message: "a labelled output that is also another output".into(),
                });
            }
        }
        outputs.push((name, o.name().to_string()));
    }
    if outputs.is_empty() {
        return Err(ImportError::Options(
            "the model has no output veil import can compute".into(),
        ));
    }
    Ok(tr.emit(model, &data_inputs, &outputs, &lets))
}

fn input_dims(input: &crate::proto::ValueInfoProto) -> Result<Vec<usize>, ImportError> {
    use crate::proto::{tensor_shape_proto::dimension::Value, type_proto::Value as T};
    let bad = |m: &str| ImportError::Invalid {
        node: input.name().to_string(),
        message: m.to_string(),
    };
    let Some(T::TensorType(t)) = input.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        return Err(bad(
            "a data input that is not a tensor (maps and sequences are not read)",
        ));
    };
    let shape = t
        .shape
        .as_ref()
        .ok_or_else(|| bad("a data input of unknown rank: export with a fixed rank"))?;
    if shape.dim.is_empty() {
        return Err(bad(
            "a scalar data input: the first dimension must be the batch",
        ));
    }
    let mut dims = Vec::new();
    for (i, d) in shape.dim.iter().enumerate() {
        match d.value {
            _ if i == 0 => dims.push(0),
            Some(Value::DimValue(v)) if v > 0 => dims.push(v as usize),
            _ => {
                return Err(bad(&format!(
                    "dimension {i} of this data input is symbolic or unknown; only the first (the batch) may be"
                )))
            }
        }
    }
    Ok(dims)
}

fn fmt_num(v: f64) -> String {
    let s = if (v as f32) as f64 == v || (((v as f32) as f64 - v) / v).abs() < 1e-7 {
        format!("{}", v as f32)
    } else {
        format!("{v}")
    };
    if s.contains('.') || s.contains('e') || s.contains("inf") || s.contains("NaN") {
        s
    } else {
        format!("{s}.0")
    }
}

fn list(v: &[usize]) -> String {
    let s: Vec<String> = v.iter().map(|x| x.to_string()).collect();
    format!("[{}]", s.join(", "))
}

impl<'a> Tr<'a> {
    fn fresh(&mut self, onnx: &str) -> String {
        let base = identifier(onnx);
        let mut name = base.clone();
        let mut k = 1;
        while self.names.contains(&name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        self.names.insert(name.clone());
        name
    }

    fn push(&mut self, op: Op, shape: Shape, name: String, comment: String) -> Id {
        self.nodes.push(Node {
            op,
            shape,
            name,
            comment,
        });
        self.nodes.len() - 1
    }

    fn input_range(
        &self,
        onnx: &str,
        name: &str,
        dims: &[usize],
    ) -> Result<((f64, f64), RangeSource), ImportError> {
        let (ranges, samples) = (&self.opts.ranges, &self.opts.calibration);
        if let Some(r) = ranges.get(onnx).or_else(|| ranges.get(name)) {
            return Ok((*r, RangeSource::Given));
        }
        if let Some(t) = samples.get(onnx).or_else(|| samples.get(name)) {
            if t.data.is_empty() {
                return Err(ImportError::Options(format!(
                    "the calibration sample for `{onnx}` is empty"
                )));
            }
            let per_row: usize = dims[1..].iter().product();
            if t.data.len() % per_row.max(1) != 0 {
                return Err(ImportError::Options(format!(
                    "the calibration sample for `{onnx}` has {} values, not a whole number of rows of {per_row}",
                    t.data.len()
                )));
            }
            let lo = t.data.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = t.data.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let span = (hi - lo).max(hi.abs().max(lo.abs()) * 1e-3).max(1e-6);
            let (lo, hi) = tensor::outward(
                lo - CALIBRATION_MARGIN * span,
                hi + CALIBRATION_MARGIN * span,
            );
            return Ok(((lo, hi), RangeSource::Calibrated));
        }
        Ok((crate::DEFAULT_RANGE, RangeSource::Default))
    }

    fn val(&self, node: &NodeProto, i: usize) -> Result<Val, ImportError> {
        let name =
            node.input
                .get(i)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| ImportError::Invalid {
                    node: node_name(node),
                    message: format!("{} needs input {}", node.op_type(), i + 1),
                })?;
        if self.pads_pending.contains_key(name) {
            return Err(self.unsupported(
                node,
                &format!("on the output `{name}` of a Pad node (a Pad folds only into the Conv or AveragePool it feeds)"),
            ));
        }
        self.vals
            .get(name)
            .cloned()
            .ok_or_else(|| ImportError::Invalid {
                node: node_name(node),
                message: format!(
                    "input `{name}` is not defined before this node (the graph must be sorted)"
                ),
            })
    }

    fn opt_val(&self, node: &NodeProto, i: usize) -> Result<Option<Val>, ImportError> {
        match node.input.get(i) {
            Some(s) if !s.is_empty() => self.val(node, i).map(Some),
            _ => Ok(None),
        }
    }

    fn konst(&self, node: &NodeProto, i: usize, what: &str) -> Result<Const, ImportError> {
        match self.val(node, i)? {
            Val::Const(c) => Ok(c),
            Val::View { .. } => Err(self.unsupported(
                node,
                &format!("with a computed {what} (it must be a constant the model owner holds)"),
            )),
        }
    }

    fn unsupported(&self, node: &NodeProto, reason: &str) -> ImportError {
        ImportError::Unsupported {
            op: node.op_type().to_string(),
            node: node_name(node),
            opset: if node.domain() == "ai.onnx.ml" {
                self.ml_opset
            } else {
                self.opset
            },
            reason: reason.to_string(),
        }
    }

    fn invalid(&self, node: &NodeProto, m: impl Into<String>) -> ImportError {
        ImportError::Invalid {
            node: node_name(node),
            message: m.into(),
        }
    }

    fn set(&mut self, node: &NodeProto, out: usize, v: Val) {
        if let Some(name) = node.output.get(out).filter(|s| !s.is_empty()) {
            self.vals.insert(name.clone(), v);
        }
    }

    /// A new node computing the node's first output.
    fn emit_node(&mut self, node: &NodeProto, op: Op, shape: Shape, kind: Kind) -> Val {
        let out = node.output.first().cloned().unwrap_or_default();
        let name = self.fresh(&out);
        let comment = format!("onnx: {} {}", node.op_type(), node_name(node));
        let id = self.push(op, shape.clone(), name, comment);
        Val::View {
            node: id,
            shape,
            kind,
        }
    }

    /// The node a view sees, reshaped (with a new node) if the view's shape differs.
    fn materialize(&mut self, what: &str, v: &Val) -> Result<(Id, Shape), ImportError> {
        let Val::View { node, shape, .. } = v else {
            return Err(ImportError::Invalid {
                node: what.into(),
                message: "expected a computed value".into(),
            });
        };
        if self.nodes[*node].shape == *shape {
            return Ok((*node, shape.clone()));
        }
        let dims: Vec<String> = shape
            .iter()
            .map(|d| {
                if let Dim::N(n) = d {
                    n.to_string()
                } else {
                    "-1".into()
                }
            })
            .collect();
        let name = self.fresh(&format!("{}_view", self.nodes[*node].name));
        let id = self.push(
            Op::Call {
                f: "reshape",
                args: vec![*node],
                extra: format!("[{}]", dims.join(", ")),
            },
            shape.clone(),
            name,
            format!("onnx: the shape {what} is seen in"),
        );
        Ok((id, shape.clone()))
    }

    fn view(&mut self, node: &NodeProto, v: &Val) -> Result<(Id, Shape, Kind), ImportError> {
        let kind = match v {
            Val::View { kind, .. } => *kind,
            Val::Const(_) => Kind::Other,
        };
        let (id, s) = self.materialize(&node_name(node), v)?;
        if self.labelled.contains_key(&id) {
            return Err(self.unsupported(
                node,
                "on class labels (a label table is applied after the reveal, so labels can only be outputs)",
            ));
        }
        Ok((id, s, kind))
    }

    /// Whether the node's input `i` is the only use of a node's own output,
    /// so that the node may be changed in place (folding).
    fn sole_direct_use(&self, node: &NodeProto, i: usize) -> Option<Id> {
        let name = node.input.get(i)?;
        let Val::View {
            node: id, shape, ..
        } = self.vals.get(name)?
        else {
            return None;
        };
        if self.nodes[*id].shape != *shape {
            return None;
        }
        // Every ONNX name that sees this node (Identity, Flatten, ... give
        // it others) counts: the node may change only if this is its one use.
        let total: usize = self
            .vals
            .iter()
            .filter(|(_, v)| matches!(v, Val::View { node, .. } if node == id))
            .map(|(n, _)| self.uses.get(n).copied().unwrap_or(0))
            .sum();
        (total == 1).then_some(*id)
    }

    /// Notes in the node's comment that `node` was folded into it (once).
    fn note_fold(&mut self, id: Id, node: &NodeProto) {
        let note = format!(", {} {}", node.op_type(), node_name(node));
        if !self.nodes[id].comment.ends_with(&note) {
            self.nodes[id].comment.push_str(&note);
        }
    }

    /// The node's input `i` was folded into the node that computes it: that
    /// use is gone (the node's output name takes over).
    fn absorb(&mut self, node: &NodeProto, i: usize) {
        if let Some(u) = node.input.get(i).and_then(|n| self.uses.get_mut(n)) {
            *u = u.saturating_sub(1);
        }
    }

    fn node(
        &mut self,
        node: &NodeProto,
        external: &mut dyn FnMut(&str) -> Result<Vec<u8>, String>,
    ) -> Result<(), ImportError> {
        let op = node.op_type();
        let domain = node.domain();
        if domain == "ai.onnx.ml" {
            return self.ml_node(node);
        }
        if !(domain.is_empty() || domain == "ai.onnx") {
            return Err(self.unsupported(
                node,
                &format!("is in domain `{domain}`, which veil import does not read"),
            ));
        }
        // Constants in, constant out: fold.
        // A pending Pad's output counts as computed (the op decides).
        let padded = node.input.iter().any(|n| self.pads_pending.contains_key(n));
        let ins: Vec<Option<Val>> = if padded {
            Vec::new()
        } else {
            (0..node.input.len())
                .map(|i| self.opt_val(node, i))
                .collect::<Result<_, _>>()?
        };
        let all_const = !padded && ins.iter().all(|v| !matches!(v, Some(Val::View { .. })));
        if all_const && !matches!(op, "Shape") {
            let consts: Vec<Option<Const>> = ins
                .iter()
                .map(|v| match v {
                    Some(Val::Const(c)) => Some(c.clone()),
                    _ => None,
                })
                .collect();
            let c = self.fold(node, &consts, external)?;
            self.set(node, 0, Val::Const(c));
            return Ok(());
        }
        match op {
            "Identity" | "Dropout" | "Cast" => {
                let v = self.val(node, 0)?;
                self.set(node, 0, v);
            }
            "Shape" => {
                let v = self.val(node, 0)?;
                let data = match &v {
                    Val::View { shape, .. } => shape
                        .iter()
                        .map(|d| if let Dim::N(n) = d { *n as f64 } else { BATCH })
                        .collect(),
                    Val::Const(c) => c.dims.iter().map(|d| *d as f64).collect(),
                };
                let mut c = Const::vector(data);
                let rank = c.len() as i64;
                if self.opset >= 15 {
                    let start = norm_axis(attr_i(node, "start").unwrap_or(0), rank).unwrap_or(0);
                    let end = attr_i(node, "end")
                        .map(|e| {
                            if e < 0 {
                                (e + rank).max(0)
                            } else {
                                e.min(rank)
                            }
                        })
                        .unwrap_or(rank) as usize;
                    c = Const::vector(c.data[start.min(end)..end].to_vec());
                }
                self.set(node, 0, Val::Const(c));
            }
            "Relu" | "Sigmoid" | "Tanh" | "Exp" | "Log" | "Sqrt" | "Reciprocal" => {
                let (x, shape, _) = self.view(node, &self.val(node, 0)?)?;
                let (f, extra, kind) = match op {
                    "Relu" => ("relu", String::new(), Kind::Other),
                    "Sigmoid" => ("sigmoid", "tol: 0.002".to_string(), Kind::Other),
                    "Tanh" => ("tanh", String::new(), Kind::Other),
                    "Log" => ("log", String::new(), Kind::Other),
                    "Sqrt" => ("sqrt", String::new(), Kind::Other),
                    "Reciprocal" => ("reciprocal", String::new(), Kind::Other),
                    _ => ("exp", String::new(), Kind::Other),
                };
                let v = self.emit_node(
                    node,
                    Op::Call {
                        f,
                        args: vec![x],
                        extra,
                    },
                    shape,
                    kind,
                );
                self.set(node, 0, v);
            }
            "Neg" => {
                let v = self.val(node, 0)?;
                let v = self.affine(node, v, Some(Const::scalar(-1.0)), None)?;
                self.set(node, 0, v);
            }
            "LeakyRelu" => {
                let alpha = attr_f(node, "alpha").unwrap_or(0.01);
                if !(alpha > 0.0 && alpha < 1.0) {
                    return Err(self.unsupported(
                        node,
                        &format!("with alpha {alpha}: Veil's leaky_relu takes 0 < slope < 1"),
                    ));
                }
                let (x, shape, _) = self.view(node, &self.val(node, 0)?)?;
                let v = self.emit_node(
                    node,
                    Op::Call {
                        f: "leaky_relu",
                        args: vec![x],
                        extra: format!("negative_slope: {}", fmt_num(alpha)),
                    },
                    shape,
                    Kind::Other,
                );
                self.set(node, 0, v);
            }
            "Clip" => {
                let (lo, hi) = if self.opset < 11 {
                    (attr_f(node, "min"), attr_f(node, "max"))
                } else {
                    let get = |i| -> Result<Option<f64>, ImportError> {
                        match self.opt_val(node, i)? {
                            None => Ok(None),
                            Some(Val::Const(c)) => c
                                .as_scalar()
                                .map(Some)
                                .ok_or_else(|| self.invalid(node, "Clip bounds must be scalars")),
                            Some(_) => Err(self.unsupported(node, "with computed bounds")),
                        }
                    };
                    (get(1)?, get(2)?)
                };
                let (x, shape, _) = self.view(node, &self.val(node, 0)?)?;
                let call = match (lo, hi) {
                    (Some(l), Some(h)) if l < h => Op::Call { f: "clamp", args: vec![x], extra: format!("{}, {}", fmt_num(l), fmt_num(h)) },
                    (Some(0.0), None) => Op::Call { f: "relu", args: vec![x], extra: String::new() },
                    _ => return Err(self.unsupported(node, "without both bounds, or with min ≥ max (only Clip(min, max) and Clip(0) translate)")),
                };
                let v = self.emit_node(node, call, shape, Kind::Other);
                self.set(node, 0, v);
            }
            "Softmax" | "LogSoftmax" => {
                let (x, shape, _) = self.view(node, &self.val(node, 0)?)?;
                let rank = shape.len() as i64;
                let default = if self.opset >= 13 { -1 } else { 1 };
                let axis = norm_axis(attr_i(node, "axis").unwrap_or(default), rank)
                    .ok_or_else(|| self.invalid(node, "axis out of range"))?;
                if self.opset < 13 && axis != shape.len() - 1 {
                    return Err(self.unsupported(node, "before opset 13 with an axis other than the last (it flattens the trailing dimensions)"));
                }
                let (f, kind) = if op == "Softmax" {
                    ("softmax", Kind::Probabilities)
                } else {
                    ("log_softmax", Kind::Other)
                };
                let v = self.emit_node(
                    node,
                    Op::Call {
                        f,
                        args: vec![x],
                        extra: format!("axis: {axis}"),
                    },
                    shape,
                    kind,
                );
                self.set(node, 0, v);
            }
            "Add" | "Sub" | "Mul" | "Div" => self.arith(node)?,
            "Sum" => {
                let mut acc = self.val(node, 0)?;
                for i in 1..node.input.len() {
                    let b = self.val(node, i)?;
                    acc = self.binary(node, "+", acc, b)?;
                }
                self.set(node, 0, acc);
            }
            "MatMul" => {
                let a = self.val(node, 0)?;
                let b = self.val(node, 1)?;
                let v = match (&a, &b) {
                    (Val::View { .. }, Val::Const(w)) => {
                        self.linear(node, 0, a.clone(), w.clone(), None)?
                    }
                    (Val::View { .. }, Val::View { .. }) => {
                        let (x, xs, _) = self.view(node, &a)?;
                        let (y, ys, _) = self.view(node, &b)?;
                        let shape = matmul_shape(&xs, &ys).ok_or_else(|| {
                            self.unsupported(
                                node,
                                "on these shapes (Veil's @ takes vectors and matrices)",
                            )
                        })?;
                        self.emit_node(
                            node,
                            Op::Binary {
                                op: "@",
                                a: x,
                                b: y,
                            },
                            shape,
                            Kind::Other,
                        )
                    }
                    _ => {
                        return Err(self
                            .unsupported(node, "with a constant on the left of a computed value"))
                    }
                };
                self.set(node, 0, v);
            }
            "Gemm" => {
                let a = self.val(node, 0)?;
                if attr_i(node, "transA").unwrap_or(0) != 0 {
                    return Err(self.unsupported(node, "with transA = 1 on a computed input"));
                }
                let mut w = self.konst(node, 1, "B")?;
                if w.dims.len() != 2 {
                    return Err(self.invalid(node, "Gemm's B must be a matrix"));
                }
                if attr_i(node, "transB").unwrap_or(0) != 0 {
                    w = w.permuted(&[1, 0]);
                }
                let alpha = attr_f(node, "alpha").unwrap_or(1.0);
                let beta = attr_f(node, "beta").unwrap_or(1.0);
                w = w.map(|v| v * alpha);
                let n = w.dims[1];
                let c = match self.opt_val(node, 2)? {
                    None => None,
                    Some(Val::Const(c)) => {
                        let c = c.map(|v| v * beta);
                        let dims = c.squeezed_leading();
                        if dims.is_empty() {
                            Some(Const::vector(vec![c.data[0]; n]))
                        } else if dims == [n] {
                            Some(c.reshaped(vec![n]))
                        } else {
                            return Err(self.unsupported(node, &format!("with C of shape {:?} (only a bias of shape [{n}] or a scalar translates)", c.dims)));
                        }
                    }
                    Some(_) => return Err(self.unsupported(node, "with a computed C")),
                };
                let v = self.linear(node, 0, a, w, c)?;
                self.set(node, 0, v);
            }
            "Conv" => self.conv(node)?,
            "BatchNormalization" => {
                let x = self.val(node, 0)?;
                let eps = attr_f(node, "epsilon").unwrap_or(1e-5);
                if self.opset < 7 && attr_i(node, "is_test").unwrap_or(0) == 0 {
                    return Err(self.unsupported(node, "in training mode (is_test = 0)"));
                }
                if attr_i(node, "training_mode").unwrap_or(0) != 0 {
                    return Err(self.unsupported(node, "in training mode"));
                }
                let gamma = self.konst(node, 1, "scale")?;
                let beta = self.konst(node, 2, "bias")?;
                let mean = self.konst(node, 3, "mean")?;
                let var = self.konst(node, 4, "variance")?;
                let c = gamma.len();
                if [&beta, &mean, &var].iter().any(|t| t.len() != c) {
                    return Err(self.invalid(
                        node,
                        "scale, bias, mean and variance must have one value per channel",
                    ));
                }
                let scale: Vec<f64> = (0..c)
                    .map(|i| gamma.data[i] / (var.data[i] + eps).sqrt())
                    .collect();
                let shift: Vec<f64> = (0..c)
                    .map(|i| beta.data[i] - mean.data[i] * scale[i])
                    .collect();
                let rank = match &x {
                    Val::View { shape, .. } => shape.len(),
                    Val::Const(k) => k.dims.len(),
                };
                let mut dims = vec![c];
                dims.extend(std::iter::repeat_n(1, rank.saturating_sub(2)));
                let v = self.affine(
                    node,
                    x,
                    Some(Const {
                        dims: dims.clone(),
                        data: scale,
                    }),
                    Some(Const { dims, data: shift }),
                )?;
                self.set(node, 0, v);
            }
            "Flatten" => {
                let v = self.val(node, 0)?;
                let Val::View {
                    node: id,
                    shape,
                    kind,
                } = v
                else {
                    unreachable!("constants are folded above")
                };
                let rank = shape.len() as i64;
                let axis = norm_axis(attr_i(node, "axis").unwrap_or(1), rank + 1)
                    .ok_or_else(|| self.invalid(node, "axis out of range"))?;
                let new = if axis == 0 {
                    vec![Dim::N(0)]
                } else {
                    vec![fold_dims(&shape[..axis]), fold_dims(&shape[axis..])]
                };
                if new.contains(&Dim::N(0)) || (has_batch(&shape) && !has_batch(&new)) {
                    return Err(self.unsupported(
                        node,
                        "with axis 0 (it would merge the batch into the features)",
                    ));
                }
                self.set(
                    node,
                    0,
                    Val::View {
                        node: id,
                        shape: new,
                        kind,
                    },
                );
            }
            "Reshape" => {
                let v = self.val(node, 0)?;
                let target: Vec<i64> = if self.opset < 5 || attr(node, "shape").is_some() {
                    attr(node, "shape")
                        .map(|a| a.ints.clone())
                        .unwrap_or_default()
                } else {
                    let t = self.konst(node, 1, "shape")?;
                    if t.data.contains(&BATCH) {
                        t.data
                            .iter()
                            .map(|v| if *v == BATCH { i64::MIN } else { *v as i64 })
                            .collect()
                    } else {
                        t.ints()
                    }
                };
                let allowzero = attr_i(node, "allowzero").unwrap_or(0) != 0;
                let Val::View {
                    node: id,
                    shape,
                    kind,
                } = v
                else {
                    unreachable!()
                };
                let new =
                    reshape(&shape, &target, allowzero).map_err(|m| self.unsupported(node, &m))?;
                self.set(
                    node,
                    0,
                    Val::View {
                        node: id,
                        shape: new,
                        kind,
                    },
                );
            }
            "Squeeze" | "Unsqueeze" => {
                let v = self.val(node, 0)?;
                let axes: Vec<i64> = if self.opset < 13 {
                    attr(node, "axes")
                        .map(|a| a.ints.clone())
                        .unwrap_or_default()
                } else {
                    match self.opt_val(node, 1)? {
                        Some(Val::Const(c)) => c.ints(),
                        None => vec![],
                        Some(_) => return Err(self.unsupported(node, "with computed axes")),
                    }
                };
                let Val::View {
                    node: id,
                    shape,
                    kind,
                } = v
                else {
                    unreachable!()
                };
                let new = if op == "Squeeze" {
                    squeeze(&shape, &axes)
                } else {
                    unsqueeze(&shape, &axes)
                }
                .map_err(|m| self.invalid(node, m))?;
                self.set(
                    node,
                    0,
                    Val::View {
                        node: id,
                        shape: new,
                        kind,
                    },
                );
            }
            "Transpose" => {
                let (x, shape, kind) = self.view(node, &self.val(node, 0)?)?;
                let rank = shape.len();
                let perm: Vec<usize> = match attr(node, "perm") {
                    Some(a) => a.ints.iter().map(|p| *p as usize).collect(),
                    None => (0..rank).rev().collect(),
                };
                let mut sorted = perm.clone();
                sorted.sort();
                if sorted != (0..rank).collect::<Vec<_>>() {
                    return Err(self.invalid(
                        node,
                        format!("perm {perm:?} is not a permutation of 0..{rank}"),
                    ));
                }
                if perm.iter().enumerate().all(|(i, p)| i == *p) {
                    self.set(
                        node,
                        0,
                        Val::View {
                            node: x,
                            shape,
                            kind,
                        },
                    );
                    return Ok(());
                }
                let new: Shape = perm.iter().map(|p| shape[*p]).collect();
                let v = self.emit_node(
                    node,
                    Op::Call {
                        f: "permute",
                        args: vec![x],
                        extra: list(&perm),
                    },
                    new,
                    kind,
                );
                self.set(node, 0, v);
            }
            "Concat" => {
                let axis = attr_i(node, "axis")
                    .ok_or_else(|| self.invalid(node, "Concat needs an axis"))?;
                let mut args = Vec::new();
                let mut shapes = Vec::new();
                for i in 0..node.input.len() {
                    let v = self.val(node, i)?;
                    let v = match v {
                        Val::Const(c) => self.const_node(node, c)?,
                        v => v,
                    };
                    let (x, s, _) = self.view(node, &v)?;
                    args.push(x);
                    shapes.push(s);
                }
                let rank = shapes[0].len() as i64;
                let axis =
                    norm_axis(axis, rank).ok_or_else(|| self.invalid(node, "axis out of range"))?;
                let mut out = shapes[0].clone();
                let mut total = 0;
                for s in &shapes {
                    let same = s.len() == out.len()
                        && s.iter()
                            .zip(&out)
                            .enumerate()
                            .all(|(i, (a, b))| i == axis || a == b);
                    match (same, s[axis]) {
                        (true, Dim::N(n)) => total += n,
                        _ => {
                            return Err(self.unsupported(
                                node,
                                "of tensors whose other dimensions differ, or along the batch",
                            ))
                        }
                    }
                }
                out[axis] = Dim::N(total);
                let v = self.emit_node(
                    node,
                    Op::Call {
                        f: "concat",
                        args,
                        extra: format!("axis: {axis}"),
                    },
                    out,
                    Kind::Other,
                );
                self.set(node, 0, v);
            }
            "ArgMax" => {
                if attr_i(node, "select_last_index").unwrap_or(0) != 0 {
                    return Err(self.unsupported(node, "with select_last_index = 1"));
                }
                let v = self.val(node, 0)?;
                let v = self.before_monotone(v);
                let (x, shape, _) = self.view(node, &v)?;
                let axis = norm_axis(attr_i(node, "axis").unwrap_or(0), shape.len() as i64)
                    .ok_or_else(|| self.invalid(node, "axis out of range"))?;
                if shape[axis] == Dim::Batch {
                    return Err(self.unsupported(node, "along the batch"));
                }
                let v = self.reduce(node, "argmax", x, &shape, axis);
                self.set(node, 0, v);
            }
            "ReduceSum" | "ReduceMean" => {
                let (x, shape, _) = self.view(node, &self.val(node, 0)?)?;
                let axes: Vec<i64> = if (op == "ReduceSum" && self.opset >= 13) || self.opset >= 18
                {
                    match self.opt_val(node, 1)? {
                        Some(Val::Const(c)) => c.ints(),
                        None => vec![],
                        Some(_) => return Err(self.unsupported(node, "with computed axes")),
                    }
                } else {
                    attr(node, "axes")
                        .map(|a| a.ints.clone())
                        .unwrap_or_default()
                };
                let [axis] = axes.as_slice() else {
                    return Err(self.unsupported(node, "over other than exactly one axis"));
                };
                let axis = norm_axis(*axis, shape.len() as i64)
                    .ok_or_else(|| self.invalid(node, "axis out of range"))?;
                if shape[axis] == Dim::Batch {
                    return Err(self.unsupported(node, "along the batch"));
                }
                let f = if op == "ReduceSum" { "sum" } else { "mean" };
                let v = self.reduce(node, f, x, &shape, axis);
                self.set(node, 0, v);
            }
            "MaxPool" | "AveragePool" => self.pool(node)?,
            "GlobalAveragePool" => {
                let (x, shape, _) = self.view(node, &self.val(node, 0)?)?;
                if !(3..=4).contains(&shape.len()) {
                    return Err(
                        self.unsupported(node, "on other than [batch, C, L] or [batch, C, H, W]")
                    );
                }
                let id = match self.emit_node(
                    node,
                    Op::Call {
                        f: "global_avg_pool",
                        args: vec![x],
                        extra: String::new(),
                    },
                    shape[..2].to_vec(),
                    Kind::Other,
                ) {
                    Val::View { node, .. } => node,
                    Val::Const(_) => unreachable!(),
                };
                let mut onnx_shape = shape[..2].to_vec();
                onnx_shape.extend(std::iter::repeat_n(Dim::N(1), shape.len() - 2));
                self.set(
                    node,
                    0,
                    Val::View {
                        node: id,
                        shape: onnx_shape,
                        kind: Kind::Other,
                    },
                );
            }
            "Pad" => {
                let mode = attr(node, "mode")
                    .map(|a| String::from_utf8_lossy(a.s()).to_string())
                    .unwrap_or_else(|| "constant".into());
                let (pads, value): (Vec<i64>, f64) = if self.opset < 11 {
                    (
                        attr(node, "pads")
                            .map(|a| a.ints.clone())
                            .unwrap_or_default(),
                        attr_f(node, "value").unwrap_or(0.0),
                    )
                } else {
                    let pads = self.konst(node, 1, "pads")?.ints();
                    let value = match self.opt_val(node, 2)? {
                        None => 0.0,
                        Some(Val::Const(c)) => c.as_scalar().unwrap_or(f64::NAN),
                        Some(_) => return Err(self.unsupported(node, "with a computed value")),
                    };
                    if self.opt_val(node, 3)?.is_some() {
                        return Err(self.unsupported(node, "with axes"));
                    }
                    (pads, value)
                };
                let Val::View { shape, .. } = self.val(node, 0)? else {
                    unreachable!("constants are folded above")
                };
                let r = shape.len();
                let symmetric_spatial = pads.len() == 2 * r
                    && r >= 3
                    && [0, 1, r, r + 1].iter().all(|i| pads[*i] == 0)
                    && (2..r).all(|i| pads[i] >= 0 && pads[i] == pads[i + r]);
                if mode != "constant" || value != 0.0 || !symmetric_spatial {
                    return Err(self.unsupported(node, "other than zero padding of the spatial dimensions, equal on both sides, feeding a Conv or AveragePool"));
                }
                let spatial = (2..r).map(|i| pads[i] as usize).collect();
                let out = node.output.first().cloned().unwrap_or_default();
                self.pads_pending
                    .insert(out, (node.input[0].clone(), spatial));
            }
            _ => return Err(self.unsupported(node, "is not supported")),
        }
        Ok(())
    }

    /// `f(x, axis: k)` (a reduction that drops the axis), seen with the
    /// axis kept as 1 when the node's `keepdims` (default 1) says so.
    fn reduce(
        &mut self,
        node: &NodeProto,
        f: &'static str,
        x: Id,
        shape: &[Dim],
        axis: usize,
    ) -> Val {
        let mut out = shape.to_vec();
        out.remove(axis);
        let call = Op::Call {
            f,
            args: vec![x],
            extra: format!("axis: {axis}"),
        };
        let v = self.emit_node(node, call, out.clone(), Kind::Other);
        match v {
            Val::View { node: id, .. } if attr_i(node, "keepdims").unwrap_or(1) != 0 => {
                out.insert(axis, Dim::N(1));
                Val::View {
                    node: id,
                    shape: out,
                    kind: Kind::Other,
                }
            }
            v => v,
        }
    }

    /// Folds an op on constants.
    fn fold(
        &mut self,
        node: &NodeProto,
        ins: &[Option<Const>],
        _external: &mut dyn FnMut(&str) -> Result<Vec<u8>, String>,
    ) -> Result<Const, ImportError> {
        let op = node.op_type();
        let arg = |i: usize| -> Result<Const, ImportError> {
            ins.get(i)
                .cloned()
                .flatten()
                .ok_or_else(|| self.invalid(node, format!("{op} needs input {}", i + 1)))
        };
        let zip = |f: fn(f64, f64) -> f64| -> Result<Const, ImportError> {
            let (a, b) = (arg(0)?, arg(1)?);
            if (a.data.contains(&BATCH) || b.data.contains(&BATCH))
                && matches!(op, "Mul" | "Div" | "Add" | "Sub")
            {
                return Err(self.unsupported(
                    node,
                    "on the batch size (arithmetic on the batch size does not translate)",
                ));
            }
            a.zip(&b, f).map_err(|m| self.invalid(node, m))
        };
        Ok(match op {
            "Constant" => {
                if let Some(a) = attr(node, "value") {
                    let t =
                        a.t.as_ref()
                            .ok_or_else(|| self.invalid(node, "Constant without a tensor"))?;
                    tensor::decode(t, &mut |_| {
                        Err("external data in a Constant node is not read".into())
                    })?
                } else if let Some(a) = attr(node, "value_float") {
                    Const::scalar(a.f() as f64)
                } else if let Some(a) = attr(node, "value_int") {
                    Const::scalar(a.i() as f64)
                } else if let Some(a) = attr(node, "value_floats") {
                    Const::vector(a.floats.iter().map(|v| *v as f64).collect())
                } else if let Some(a) = attr(node, "value_ints") {
                    Const::vector(a.ints.iter().map(|v| *v as f64).collect())
                } else {
                    return Err(self.unsupported(node, "without a numeric value"));
                }
            }
            "Identity" | "Dropout" => arg(0)?,
            "Cast" => {
                let to = attr_i(node, "to").unwrap_or(1);
                let c = arg(0)?;
                match to {
                    1 | 10 | 11 | 16 => c,
                    2..=7 | 12 | 13 => c.map(|v| if v == BATCH { v } else { v.trunc() }),
                    9 => c.map(|v| if v != 0.0 { 1.0 } else { 0.0 }),
                    _ => return Err(self.unsupported(node, &format!("to data type {to}"))),
                }
            }
            "Add" => zip(|a, b| a + b)?,
            "Sub" => zip(|a, b| a - b)?,
            "Mul" => zip(|a, b| a * b)?,
            "Div" => {
                let (a, b) = (arg(0)?, arg(1)?);
                if b.data.contains(&0.0) {
                    return Err(self.invalid(node, "division of constants by zero"));
                }
                a.zip(&b, |x, y| x / y).map_err(|m| self.invalid(node, m))?
            }
            "Neg" => arg(0)?.map(|v| -v),
            "Relu" => arg(0)?.map(|v| v.max(0.0)),
            "Sigmoid" => arg(0)?.map(|v| 1.0 / (1.0 + (-v).exp())),
            "Tanh" => arg(0)?.map(f64::tanh),
            "Exp" => arg(0)?.map(f64::exp),
            "Log" => arg(0)?.map(f64::ln),
            "Sqrt" => arg(0)?.map(f64::sqrt),
            "Reciprocal" => arg(0)?.map(|v| 1.0 / v),
            "Gather" => {
                let data = arg(0)?;
                let idx = arg(1)?;
                let rank = data.dims.len() as i64;
                let axis = norm_axis(attr_i(node, "axis").unwrap_or(0), rank)
                    .ok_or_else(|| self.invalid(node, "axis out of range"))?;
                let n = data.dims[axis] as i64;
                let outer: usize = data.dims[..axis].iter().product();
                let inner: usize = data.dims[axis + 1..].iter().product();
                let mut out = Vec::new();
                for o in 0..outer {
                    for &k in &idx.data {
                        let k = k as i64;
                        let k = if k < 0 { k + n } else { k };
                        if !(0..n).contains(&k) {
                            return Err(
                                self.invalid(node, format!("index {k} out of range 0..{n}"))
                            );
                        }
                        let base = (o * data.dims[axis] + k as usize) * inner;
                        out.extend_from_slice(&data.data[base..base + inner]);
                    }
                }
                let mut dims = data.dims[..axis].to_vec();
                dims.extend(&idx.dims);
                dims.extend(&data.dims[axis + 1..]);
                Const { dims, data: out }
            }
            "Unsqueeze" | "Squeeze" => {
                let c = arg(0)?;
                let axes: Vec<i64> = if self.opset < 13 {
                    attr(node, "axes")
                        .map(|a| a.ints.clone())
                        .unwrap_or_default()
                } else {
                    ins.get(1)
                        .cloned()
                        .flatten()
                        .map(|a| a.ints())
                        .unwrap_or_default()
                };
                let shape: Shape = c.dims.iter().map(|d| Dim::N(*d)).collect();
                let new = if op == "Squeeze" {
                    squeeze(&shape, &axes)
                } else {
                    unsqueeze(&shape, &axes)
                }
                .map_err(|m| self.invalid(node, m))?;
                c.reshaped(
                    new.iter()
                        .map(|d| if let Dim::N(n) = d { *n } else { 1 })
                        .collect(),
                )
            }
            "Concat" => {
                let parts: Vec<Const> = (0..ins.len()).map(arg).collect::<Result<_, _>>()?;
                let rank = parts[0].dims.len() as i64;
                let axis = norm_axis(attr_i(node, "axis").unwrap_or(0), rank)
                    .ok_or_else(|| self.invalid(node, "axis out of range"))?;
                let outer: usize = parts[0].dims[..axis].iter().product();
                let mut data = Vec::new();
                let mut total = 0;
                for p in &parts {
                    if p.dims.len() != parts[0].dims.len() {
                        return Err(self.invalid(node, "Concat of constants of different ranks"));
                    }
                    total += p.dims[axis];
                }
                for o in 0..outer {
                    for p in &parts {
                        let inner: usize = p.dims[axis..].iter().product();
                        data.extend_from_slice(&p.data[o * inner..(o + 1) * inner]);
                    }
                }
                let mut dims = parts[0].dims.clone();
                dims[axis] = total;
                Const { dims, data }
            }
            "Reshape" => {
                let c = arg(0)?;
                let target: Vec<i64> = if self.opset < 5 || attr(node, "shape").is_some() {
                    attr(node, "shape")
                        .map(|a| a.ints.clone())
                        .unwrap_or_default()
                } else {
                    arg(1)?.ints()
                };
                let shape: Shape = c.dims.iter().map(|d| Dim::N(*d)).collect();
                let new = reshape(&shape, &target, attr_i(node, "allowzero").unwrap_or(0) != 0)
                    .map_err(|m| self.invalid(node, m))?;
                c.reshaped(
                    new.iter()
                        .map(|d| if let Dim::N(n) = d { *n } else { 1 })
                        .collect(),
                )
            }
            "Flatten" => {
                let c = arg(0)?;
                let axis = norm_axis(attr_i(node, "axis").unwrap_or(1), c.dims.len() as i64 + 1)
                    .unwrap_or(1);
                let a: usize = c.dims[..axis].iter().product();
                let b: usize = c.dims[axis..].iter().product();
                c.reshaped(vec![a, b])
            }
            "Transpose" => {
                let c = arg(0)?;
                let perm: Vec<usize> = match attr(node, "perm") {
                    Some(a) => a.ints.iter().map(|p| *p as usize).collect(),
                    None => (0..c.dims.len()).rev().collect(),
                };
                c.permuted(&perm)
            }
            "ConstantOfShape" => {
                let dims = arg(0)?;
                if dims.data.contains(&BATCH) {
                    return Err(self.unsupported(node, "of a shape that includes the batch"));
                }
                let v = match attr(node, "value").and_then(|a| a.t.as_ref()) {
                    Some(t) => tensor::decode(t, &mut |_| Err("not read".into()))?
                        .as_scalar()
                        .unwrap_or(0.0),
                    None => 0.0,
                };
                let dims: Vec<usize> = dims.data.iter().map(|d| *d as usize).collect();
                Const {
                    data: vec![v; dims.iter().product()],
                    dims,
                }
            }
            _ => return Err(self.unsupported(node, "on constants is not folded")),
        })
    }

    fn arith(&mut self, node: &NodeProto) -> Result<(), ImportError> {
        let op = node.op_type();
        let a = self.val(node, 0)?;
        let mut b = self.val(node, 1)?;
        // Legacy broadcasting (before opset 7): `axis` aligns b's dimensions.
        if self.opset < 7 && attr_i(node, "broadcast").unwrap_or(0) != 0 {
            if let (Val::View { shape, .. }, Val::Const(c)) = (&a, &b) {
                if let Some(axis) = attr_i(node, "axis") {
                    let axis = norm_axis(axis, shape.len() as i64)
                        .ok_or_else(|| self.invalid(node, "axis out of range"))?;
                    let mut dims = c.dims.clone();
                    dims.extend(std::iter::repeat_n(1, shape.len() - axis - c.dims.len()));
                    b = Val::Const(c.clone().reshaped(dims));
                }
            }
        }
        let v = match (op, &a, &b) {
            ("Add", Val::View { .. }, Val::Const(c)) | ("Add", Val::Const(c), Val::View { .. }) => {
                let x = if matches!(a, Val::View { .. }) {
                    a.clone()
                } else {
                    b.clone()
                };
                let i = if matches!(a, Val::View { .. }) { 0 } else { 1 };
                self.shift_or_bias(node, i, x, c.clone())?
            }
            ("Sub", Val::View { .. }, Val::Const(c)) => {
                self.shift_or_bias(node, 0, a.clone(), c.map(|v| -v))?
            }
            ("Sub", Val::Const(c), Val::View { .. }) => {
                let c = c.clone();
                self.affine(node, b.clone(), Some(Const::scalar(-1.0)), Some(c))?
            }
            ("Mul", Val::View { .. }, Val::Const(c)) | ("Mul", Val::Const(c), Val::View { .. }) => {
                let x = if matches!(a, Val::View { .. }) {
                    a.clone()
                } else {
                    b.clone()
                };
                let i = if matches!(a, Val::View { .. }) { 0 } else { 1 };
                self.scale(node, i, x, c.clone())?
            }
            ("Div", Val::View { .. }, Val::Const(c)) => {
                if c.data.contains(&0.0) {
                    return Err(self.invalid(node, "division by a constant zero"));
                }
                self.scale(node, 0, a.clone(), c.map(|v| 1.0 / v))?
            }
            ("Div", Val::Const(c), Val::View { .. }) => {
                let c = c.clone();
                let (x, shape, _) = self.view(node, &b)?;
                let r = self.emit_node(
                    node,
                    Op::Call {
                        f: "reciprocal",
                        args: vec![x],
                        extra: String::new(),
                    },
                    shape,
                    Kind::Other,
                );
                self.affine(node, r, Some(c), None)?
            }
            _ => {
                let sym = match op {
                    "Add" => "+",
                    "Sub" => "-",
                    "Mul" => "*",
                    _ => "/",
                };
                self.binary(node, sym, a, b)?
            }
        };
        self.set(node, 0, v);
        Ok(())
    }

    fn binary(
        &mut self,
        node: &NodeProto,
        sym: &'static str,
        a: Val,
        b: Val,
    ) -> Result<Val, ImportError> {
        let a = match a {
            Val::Const(c) => self.const_node(node, c)?,
            v => v,
        };
        let b = match b {
            Val::Const(c) => self.const_node(node, c)?,
            v => v,
        };
        let (x, xs, _) = self.view(node, &a)?;
        let (y, ys, _) = self.view(node, &b)?;
        let shape = broadcast_shape(&xs, &ys)
            .ok_or_else(|| self.invalid(node, "operands do not broadcast"))?;
        Ok(self.emit_node(
            node,
            Op::Binary {
                op: sym,
                a: x,
                b: y,
            },
            shape,
            Kind::Other,
        ))
    }

    /// A constant operand of an op between computed values: the model owner's input.
    fn const_node(&mut self, node: &NodeProto, c: Const) -> Result<Val, ImportError> {
        let out = format!("{}_const", node.output.first().cloned().unwrap_or_default());
        let name = self.fresh(&out);
        let shape: Shape = c.squeezed_leading().into_iter().map(Dim::N).collect();
        let comment = format!(
            "onnx: a constant operand of {} {}",
            node.op_type(),
            node_name(node)
        );
        let id = self.push(Op::Weight(c), shape.clone(), name, comment);
        Ok(Val::View {
            node: id,
            shape,
            kind: Kind::Other,
        })
    }

    /// `x + c`: into the bias of the linear op that computes x, if x is its only use.
    fn shift_or_bias(
        &mut self,
        node: &NodeProto,
        i: usize,
        x: Val,
        c: Const,
    ) -> Result<Val, ImportError> {
        if let Some(id) = self.sole_direct_use(node, i) {
            let shape = self.nodes[id].shape.clone();
            match &mut self.nodes[id].op {
                Op::Linear { w, b, .. } => {
                    let n = *w.dims.last().unwrap_or(&1);
                    let dims = c.squeezed_leading();
                    if dims.is_empty()
                        || (dims == [n] && shape.len() == 2)
                        || (dims == [n] && w.dims.len() == 2)
                    {
                        let add = if dims.is_empty() {
                            Const::vector(vec![c.data[0]; n])
                        } else {
                            c.clone().reshaped(vec![n])
                        };
                        let add = if w.dims.len() == 1 {
                            Const::scalar(add.data[0])
                        } else {
                            add
                        };
                        add_to_bias(b, add, node)?;
                        self.note_fold(id, node);
                        self.absorb(node, i);
                        return Ok(x);
                    }
                }
                Op::Conv { w, b, .. } => {
                    let cout = w.dims[0];
                    if let Some(per) = per_channel(&c, cout, shape.len()) {
                        add_to_bias(b, per, node)?;
                        self.note_fold(id, node);
                        self.absorb(node, i);
                        return Ok(x);
                    }
                }
                _ => {}
            }
        }
        self.affine(node, x, None, Some(c))
    }

    /// `x * c`: into the weights of the linear op that computes x, if x is its only use.
    fn scale(&mut self, node: &NodeProto, i: usize, x: Val, c: Const) -> Result<Val, ImportError> {
        if let Some(id) = self.sole_direct_use(node, i) {
            let rank = self.nodes[id].shape.len();
            match &mut self.nodes[id].op {
                Op::Linear { w, b, .. } if w.dims.len() == 2 => {
                    let n = w.dims[1];
                    let dims = c.squeezed_leading();
                    if dims.is_empty() || (dims == [n] && rank == 2) {
                        let s = if dims.is_empty() {
                            Const::vector(vec![c.data[0]; n])
                        } else {
                            c.clone().reshaped(vec![n])
                        };
                        *w = w.zip(&s, |p, q| p * q).expect("[k, n] * [n]");
                        if let Some(bias) = b {
                            *bias = bias.zip(&s, |p, q| p * q).expect("[n] * [n]");
                        }
                        self.note_fold(id, node);
                        self.absorb(node, i);
                        return Ok(x);
                    }
                }
                Op::Conv { w, b, .. } => {
                    let cout = w.dims[0];
                    if let Some(per) = per_channel(&c, cout, rank) {
                        let mut wd = vec![1; w.dims.len()];
                        wd[0] = cout;
                        *w = w
                            .zip(&per.clone().reshaped(wd), |p, q| p * q)
                            .expect("per output channel");
                        if let Some(bias) = b {
                            *bias = bias.zip(&per, |p, q| p * q).expect("[C] * [C]");
                        }
                        self.note_fold(id, node);
                        self.absorb(node, i);
                        return Ok(x);
                    }
                }
                _ => {}
            }
        }
        self.affine(node, x, Some(c), None)
    }

    /// `x * scale + shift` as a node, merged into x's node if that is an
    /// affine map used only here; BatchNormalization folds like scale then shift.
    fn affine(
        &mut self,
        node: &NodeProto,
        x: Val,
        scale: Option<Const>,
        shift: Option<Const>,
    ) -> Result<Val, ImportError> {
        if node.op_type() == "BatchNormalization" {
            // Into a preceding Conv or Gemm: scale, then shift.
            if self.sole_direct_use(node, 0).is_some() {
                let s = scale.clone().expect("batch norm has a scale");
                let v = self.scale(node, 0, x.clone(), s)?;
                if let (Val::View { node: a, .. }, Val::View { node: b, .. }) = (&v, &x) {
                    if a == b && !matches!(self.nodes[*a].op, Op::Affine { .. }) {
                        // The scale absorbed this use; the shift folds into the same node.
                        *self.uses.entry(node.input[0].clone()).or_default() += 1;
                        return self.shift_or_bias(
                            node,
                            0,
                            v,
                            shift.expect("batch norm has a shift"),
                        );
                    }
                }
            }
        }
        let (xi, shape, _) = self.view(node, &x)?;
        let sq = |c: &Const| Const {
            dims: c.squeezed_leading(),
            data: c.data.clone(),
        };
        let (scale, shift) = (scale.map(|c| sq(&c)), shift.map(|c| sq(&c)));
        for c in scale.iter().chain(shift.iter()) {
            let cs: Shape = c.dims.iter().map(|d| Dim::N(*d)).collect();
            if broadcast_shape(&shape, &cs) != Some(shape.clone()) {
                return Err(self.invalid(
                    node,
                    format!(
                        "a constant of shape {:?} does not broadcast against the value",
                        c.dims
                    ),
                ));
            }
        }
        // Merge with an affine map that computes x and has no other use.
        if let Some(id) = self.sole_direct_use(node, 0) {
            if let Op::Affine {
                scale: s1,
                shift: t1,
                x: inner,
            } = &self.nodes[id].op
            {
                {
                    let merged =
                        merge_affine(s1.as_ref(), t1.as_ref(), scale.as_ref(), shift.as_ref());
                    if let Some((s, t)) = merged {
                        self.nodes[id].op = Op::Affine {
                            x: *inner,
                            scale: s,
                            shift: t,
                        };
                        self.note_fold(id, node);
                        self.absorb(node, 0);
                        return Ok(x);
                    }
                }
            }
        }
        Ok(self.emit_node(
            node,
            Op::Affine {
                x: xi,
                scale,
                shift,
            },
            shape,
            Kind::Other,
        ))
    }

    /// `x @ w + b` with w constant; an affine map computing x (used only
    /// here, per feature) is folded into w and b.
    fn linear(
        &mut self,
        node: &NodeProto,
        i: usize,
        x: Val,
        mut w: Const,
        mut b: Option<Const>,
    ) -> Result<Val, ImportError> {
        let (mut xi, xs, _) = self.view(node, &x)?;
        if w.dims.len() > 2 || w.dims.is_empty() {
            return Err(self.unsupported(node, "with a weight that is not a vector or a matrix"));
        }
        let k = w.dims[0];
        if xs.last() != Some(&Dim::N(k)) || xs.len() > 2 {
            return Err(self.invalid(
                node,
                format!("a product of [{}] and {:?}", dims_text(&xs), w.dims),
            ));
        }
        if let Some(id) = self.sole_direct_use(node, i) {
            if let Op::Affine {
                x: inner,
                scale,
                shift,
            } = &self.nodes[id].op
            {
                let per_feature = |c: &Const| {
                    c.dims.is_empty()
                        || c.dims == [k]
                        || c.squeezed_leading() == [k]
                        || c.len() == 1
                };
                if scale.as_ref().is_none_or(per_feature) && shift.as_ref().is_none_or(per_feature)
                {
                    let expand = |c: &Const| {
                        if c.len() == 1 {
                            vec![c.data[0]; k]
                        } else {
                            c.data.clone()
                        }
                    };
                    let n = if w.dims.len() == 2 { w.dims[1] } else { 1 };
                    let w2 = w.clone().reshaped(vec![k, n]);
                    // (x*s + t) @ W + b = x @ (diag(s) W) + (t @ W + b)
                    let mut bias = b.clone().map(|c| c.data).unwrap_or_else(|| vec![0.0; n]);
                    if let Some(t) = shift {
                        let t = Const {
                            dims: vec![1, k],
                            data: expand(t),
                        };
                        let tw = t.matmul(&w2).expect("[1, k] @ [k, n]");
                        for (p, q) in bias.iter_mut().zip(&tw.data) {
                            *p += q;
                        }
                    }
                    let mut wd = w2.data.clone();
                    if let Some(s) = scale {
                        let s = expand(s);
                        for r in 0..k {
                            for c in 0..n {
                                wd[r * n + c] *= s[r];
                            }
                        }
                    }
                    let dims = w.dims.clone();
                    w = Const { dims, data: wd };
                    b = Some(if w.dims.len() == 1 {
                        Const::scalar(bias[0])
                    } else {
                        Const::vector(bias)
                    });
                    xi = *inner;
                }
            }
        }
        let mut shape = xs.clone();
        shape.pop();
        if w.dims.len() == 2 {
            shape.push(Dim::N(w.dims[1]));
        }
        Ok(self.emit_node(node, Op::Linear { x: xi, w, b }, shape, Kind::Other))
    }

    /// The node's first input, and the padding per spatial dimension of a
    /// zero `Pad` node between it and the node (empty: none).
    fn padded_input(&self, node: &NodeProto) -> Result<(Val, Vec<usize>), ImportError> {
        match node.input.first().and_then(|n| self.pads_pending.get(n)) {
            Some((source, pads)) => {
                let v = self
                    .vals
                    .get(source)
                    .cloned()
                    .ok_or_else(|| self.invalid(node, "a Pad of an unknown value"))?;
                Ok((v, pads.clone()))
            }
            None => Ok((self.val(node, 0)?, Vec::new())),
        }
    }

    fn conv(&mut self, node: &NodeProto) -> Result<(), ImportError> {
        let (input, pre) = self.padded_input(node)?;
        let (x, shape, _) = self.view(node, &input)?;
        let w = self.konst(node, 1, "weight")?;
        let b = match self.opt_val(node, 2)? {
            None => None,
            Some(Val::Const(c)) => Some(c),
            Some(_) => return Err(self.unsupported(node, "with a computed bias")),
        };
        let sp = shape.len().saturating_sub(2);
        if !(1..=2).contains(&sp) || w.dims.len() != sp + 2 {
            return Err(self.unsupported(
                node,
                "other than 1-d or 2-d (input [batch, C, L] or [batch, C, H, W])",
            ));
        }
        let groups = attr_i(node, "group").unwrap_or(1).max(1) as usize;
        let kernel: Vec<usize> = w.dims[2..].to_vec();
        let ints = |n: &str, d: usize| -> Vec<usize> {
            attr(node, n)
                .map(|a| a.ints.iter().map(|v| *v as usize).collect())
                .unwrap_or_else(|| vec![d; sp])
        };
        let stride = ints("strides", 1);
        let dil = ints("dilations", 1);
        let mut pad = self.pads(node, &shape, &kernel, &stride, &dil)?;
        for (p, q) in pad.iter_mut().zip(&pre) {
            *p += q;
        }
        let cout = w.dims[0];
        let spatial: Vec<usize> = shape[2..]
            .iter()
            .map(|d| if let Dim::N(n) = d { *n } else { 0 })
            .collect();
        let mut out = vec![shape[0], Dim::N(cout)];
        for i in 0..sp {
            let eff = dil[i] * (kernel[i] - 1) + 1;
            if spatial[i] + 2 * pad[i] < eff {
                return Err(self.invalid(node, "the kernel is larger than the padded input"));
            }
            out.push(Dim::N((spatial[i] + 2 * pad[i] - eff) / stride[i] + 1));
        }
        let v = self.emit_node(
            node,
            Op::Conv {
                x,
                w,
                b,
                stride,
                pad,
                dil,
                groups,
            },
            out,
            Kind::Other,
        );
        self.set(node, 0, v);
        Ok(())
    }

    /// Symmetric padding per spatial dimension, from `pads` or `auto_pad`.
    fn pads(
        &self,
        node: &NodeProto,
        shape: &Shape,
        kernel: &[usize],
        stride: &[usize],
        dil: &[usize],
    ) -> Result<Vec<usize>, ImportError> {
        let sp = kernel.len();
        let auto = attr(node, "auto_pad")
            .map(|a| String::from_utf8_lossy(a.s()).to_string())
            .unwrap_or_default();
        let pads: Vec<usize> = match auto.as_str() {
            "" | "NOTSET" => attr(node, "pads")
                .map(|a| a.ints.iter().map(|v| *v as usize).collect())
                .unwrap_or_else(|| vec![0; 2 * sp]),
            "VALID" => vec![0; 2 * sp],
            "SAME_UPPER" | "SAME_LOWER" => {
                let mut p = vec![0; 2 * sp];
                for i in 0..sp {
                    let Dim::N(n) = shape[2 + i] else {
                        return Err(self.invalid(node, "spatial batch"));
                    };
                    let outn = n.div_ceil(stride[i]);
                    let total =
                        ((outn - 1) * stride[i] + dil[i] * (kernel[i] - 1) + 1).saturating_sub(n);
                    p[i] = total / 2;
                    p[i + sp] = total - total / 2;
                }
                p
            }
            other => return Err(self.unsupported(node, &format!("with auto_pad {other}"))),
        };
        if pads.len() != 2 * sp || (0..sp).any(|i| pads[i] != pads[i + sp]) {
            return Err(self.unsupported(
                node,
                &format!("with asymmetric padding {pads:?} (Veil pads both sides equally)"),
            ));
        }
        Ok(pads[..sp].to_vec())
    }

    fn pool(&mut self, node: &NodeProto) -> Result<(), ImportError> {
        let op = node.op_type();
        let (input, pre) = self.padded_input(node)?;
        if !pre.is_empty() && op == "MaxPool" {
            return Err(self.unsupported(node, "after a zero Pad (max pooling pads with -inf)"));
        }
        let (x, shape, _) = self.view(node, &input)?;
        let sp = shape.len().saturating_sub(2);
        if !(1..=2).contains(&sp) {
            return Err(self.unsupported(node, "other than 1-d or 2-d"));
        }
        let ceil = attr_i(node, "ceil_mode").unwrap_or(0) != 0;
        if node.output.len() > 1 && !node.output[1].is_empty() {
            return Err(self.unsupported(node, "with the Indices output"));
        }
        let kernel: Vec<usize> = attr(node, "kernel_shape")
            .map(|a| a.ints.iter().map(|v| *v as usize).collect())
            .ok_or_else(|| self.invalid(node, "a pool without kernel_shape"))?;
        let ints = |n: &str| -> Vec<usize> {
            attr(node, n)
                .map(|a| a.ints.iter().map(|v| *v as usize).collect())
                .unwrap_or_else(|| vec![1; sp])
        };
        let stride = ints("strides");
        let dil = ints("dilations");
        let dilated = dil.iter().any(|d| *d != 1);
        let mut pad = self.pads(node, &shape, &kernel, &stride, &dil)?;
        let explicit = pad.iter().any(|p| *p > 0);
        for (p, q) in pad.iter_mut().zip(&pre) {
            *p += q;
        }
        if dilated && op == "MaxPool" && pad.iter().any(|p| *p > 0) {
            return Err(self.unsupported(
                node,
                "with dilations and padding (Veil's max pooling pads with the nearest entry)",
            ));
        }
        if op == "AveragePool" && explicit && attr_i(node, "count_include_pad").unwrap_or(0) == 0 {
            return Err(self.unsupported(node, "with padding and count_include_pad = 0 (Veil's avg_pool counts the padding, as PyTorch does by default)"));
        }
        let mut out = shape[..2].to_vec();
        for i in 0..sp {
            let Dim::N(n) = shape[2 + i] else {
                return Err(self.invalid(node, "spatial batch"));
            };
            let span = dil[i] * (kernel[i] - 1) + 1;
            if n + 2 * pad[i] < span {
                return Err(
                    self.invalid(node, "the pooling window is larger than the padded input")
                );
            }
            let floor = (n + 2 * pad[i] - span) / stride[i] + 1;
            // ceil_mode: one more window where the floor leaves entries
            // over and it starts inside the input or its left padding.
            let more = ceil
                && !(n + 2 * pad[i] - span).is_multiple_of(stride[i])
                && floor * stride[i] < n + pad[i];
            if more && dilated && op == "MaxPool" {
                return Err(self.unsupported(
                    node,
                    "with ceil_mode = 1 and dilations where a window is added (Veil's max pooling pads with the nearest entry)",
                ));
            }
            out.push(Dim::N(floor + more as usize));
        }
        let f = match (op, sp) {
            ("MaxPool", 1) => "max_pool1d",
            ("MaxPool", _) => "max_pool2d",
            (_, 1) => "avg_pool1d",
            _ => "avg_pool2d",
        };
        let one = |v: &[usize]| {
            if v.iter().all(|x| *x == v[0]) {
                v[0].to_string()
            } else {
                list(v)
            }
        };
        let mut extra = format!(
            "{}, stride: {}, padding: {}",
            one(&kernel),
            one(&stride),
            one(&pad)
        );
        if dilated {
            extra += &format!(", dilation: {}", one(&dil));
        }
        if ceil {
            extra += ", ceil_mode: true";
        }
        let v = self.emit_node(
            node,
            Op::Call {
                f,
                args: vec![x],
                extra,
            },
            out,
            Kind::Other,
        );
        self.set(node, 0, v);
        Ok(())
    }

    /// argmax of softmax(z) or sigmoid(z) is argmax of z: skip the activation.
    fn before_monotone(&self, v: Val) -> Val {
        if let Val::View { node, shape, .. } = &v {
            let n = &self.nodes[*node];
            if n.shape == *shape {
                if let Op::Call {
                    f: "softmax" | "sigmoid",
                    args,
                    ..
                } = &n.op
                {
                    let inner = &self.nodes[args[0]];
                    if inner.shape == *shape {
                        return Val::View {
                            node: args[0],
                            shape: shape.clone(),
                            kind: Kind::Other,
                        };
                    }
                }
            }
        }
        v
    }

    fn ml_node(&mut self, node: &NodeProto) -> Result<(), ImportError> {
        match node.op_type() {
            "Scaler" => {
                let x = self.val(node, 0)?;
                let floats = |n: &str| {
                    attr(node, n).map(|a| a.floats.iter().map(|v| *v as f64).collect::<Vec<_>>())
                };
                let offset = floats("offset").unwrap_or_default();
                let scale = floats("scale").unwrap_or_default();
                // y = (x - offset) * scale = x * scale - offset * scale
                let k = offset.len().max(scale.len());
                let get = |v: &[f64], i: usize, d: f64| {
                    if v.is_empty() {
                        d
                    } else if v.len() == 1 {
                        v[0]
                    } else {
                        v[i]
                    }
                };
                let s: Vec<f64> = (0..k).map(|i| get(&scale, i, 1.0)).collect();
                let t: Vec<f64> = (0..k)
                    .map(|i| -get(&offset, i, 0.0) * get(&scale, i, 1.0))
                    .collect();
                let v = self.affine(node, x, Some(Const::vector(s)), Some(Const::vector(t)))?;
                self.set(node, 0, v);
            }
            "Normalizer" => {
                let norm = attr(node, "norm")
                    .map(|a| String::from_utf8_lossy(a.s()).to_string())
                    .unwrap_or_default();
                let v = self.val(node, 0)?;
                match (&v, norm.as_str()) {
                    (
                        Val::View {
                            kind: Kind::Probabilities,
                            ..
                        },
                        "L1",
                    ) => self.set(node, 0, v),
                    _ => {
                        return Err(self.unsupported(
                            node,
                            &format!(
                            "with norm {norm} on values that are not already rows of probabilities"
                        ),
                        ))
                    }
                }
            }
            "ZipMap" => {
                // A dictionary per row: not a tensor. Dropped (its output is not defined).
                self.zipmaps.extend(node.output.iter().cloned());
            }
            "ArrayFeatureExtractor" => {
                let table = self.konst(node, 0, "table")?;
                let idx = self.val(node, 1)?;
                if table.data.iter().enumerate().any(|(i, v)| *v != i as f64) {
                    // A public label table, applied after the reveal.
                    let Val::View { node: id, .. } = &idx else {
                        unreachable!("constants are folded")
                    };
                    if !matches!(self.nodes[*id].op, Op::Call { f: "argmax", .. })
                        || self.labelled.contains_key(id)
                    {
                        return Err(
                            self.unsupported(node, "on anything but the index of an ArgMax")
                        );
                    }
                    self.labelled.insert(*id, table.data.clone());
                }
                self.set(node, 0, idx);
            }
            "LinearRegressor" => {
                let x = self.val(node, 0)?;
                let coef: Vec<f64> = attr(node, "coefficients")
                    .map(|a| a.floats.iter().map(|v| *v as f64).collect())
                    .unwrap_or_default();
                let targets = attr_i(node, "targets").unwrap_or(1).max(1) as usize;
                let post = attr(node, "post_transform")
                    .map(|a| String::from_utf8_lossy(a.s()).to_string())
                    .unwrap_or_default();
                if !(post.is_empty() || post == "NONE") {
                    return Err(self.unsupported(node, &format!("with post_transform {post}")));
                }
                if coef.is_empty() || !coef.len().is_multiple_of(targets) {
                    return Err(
                        self.invalid(node, "coefficients are not a whole number per target")
                    );
                }
                let k = coef.len() / targets;
                let w = Const {
                    dims: vec![targets, k],
                    data: coef,
                }
                .permuted(&[1, 0]);
                let b = attr(node, "intercepts")
                    .map(|a| Const::vector(a.floats.iter().map(|v| *v as f64).collect()))
                    .unwrap_or_else(|| Const::vector(vec![0.0; targets]));
                let v = self.linear(node, 0, x, w, Some(b))?;
                self.set(node, 0, v);
            }
            "LinearClassifier" => {
                let x = self.val(node, 0)?;
                let coef: Vec<f64> = attr(node, "coefficients")
                    .map(|a| a.floats.iter().map(|v| *v as f64).collect())
                    .unwrap_or_default();
                let intercepts: Vec<f64> = attr(node, "intercepts")
                    .map(|a| a.floats.iter().map(|v| *v as f64).collect())
                    .unwrap_or_default();
                let labels: Vec<i64> = attr(node, "classlabels_ints")
                    .map(|a| a.ints.clone())
                    .unwrap_or_default();
                if labels.is_empty() {
                    return Err(self.unsupported(
                        node,
                        "with string class labels (relabel the classes as 0..k-1 before export)",
                    ));
                }
                let post = attr(node, "post_transform")
                    .map(|a| String::from_utf8_lossy(a.s()).to_string())
                    .unwrap_or_default();
                let Val::View { shape: xs, .. } = &x else {
                    unreachable!()
                };
                let Some(Dim::N(k)) = xs.last().copied() else {
                    return Err(self.invalid(node, "features of unknown size"));
                };
                let rows = coef.len() / k.max(1);
                if rows * k != coef.len() || intercepts.len() != rows {
                    return Err(
                        self.invalid(node, "coefficients and intercepts do not fit the features")
                    );
                }
                let (mut w, mut b) = (
                    Const {
                        dims: vec![rows, k],
                        data: coef,
                    },
                    Const::vector(intercepts),
                );
                if rows == 1 && labels.len() == 2 {
                    // One score s for two classes: the scores are (-s, s).
                    let neg = w.map(|v| -v);
                    w = Const {
                        dims: vec![2, k],
                        data: [neg.data, w.data].concat(),
                    };
                    b = Const::vector(vec![-b.data[0], b.data[0]]);
                } else if rows != labels.len() {
                    return Err(self.invalid(node, "one row of coefficients per class expected"));
                }
                let w = w.permuted(&[1, 0]);
                let scores = self.linear(node, 0, x, w, Some(b))?;
                if let Val::View { node: id, .. } = &scores {
                    let old = std::mem::take(&mut self.nodes[*id].name);
                    self.names.remove(&old);
                    self.nodes[*id].name = self.fresh("scores");
                }
                let (sid, sshape, _) = self.view(node, &scores)?;
                let label_name = node.output.first().cloned().unwrap_or_default();
                let lname = self.fresh(&label_name);
                let mut lshape = sshape.clone();
                lshape.pop();
                let comment = format!("onnx: LinearClassifier {} (label)", node_name(node));
                let lid = self.push(
                    Op::Call {
                        f: "argmax",
                        args: vec![sid],
                        extra: "axis: 1".into(),
                    },
                    lshape.clone(),
                    lname,
                    comment,
                );
                if labels.iter().enumerate().any(|(i, l)| *l != i as i64) {
                    // A public label table, applied after the reveal.
                    self.labelled
                        .insert(lid, labels.iter().map(|l| *l as f64).collect());
                }
                self.set(
                    node,
                    0,
                    Val::View {
                        node: lid,
                        shape: lshape,
                        kind: Kind::Other,
                    },
                );
                let (f, extra, kind) = match post.as_str() {
                    "" | "NONE" => ("", String::new(), Kind::Other),
                    "LOGISTIC" => (
                        "sigmoid",
                        "tol: 0.002".into(),
                        if labels.len() == 2 {
                            Kind::Probabilities
                        } else {
                            Kind::Other
                        },
                    ),
                    "SOFTMAX" => ("softmax", "axis: 1".into(), Kind::Probabilities),
                    other => {
                        return Err(self.unsupported(node, &format!("with post_transform {other}")))
                    }
                };
                let probs = if f.is_empty() {
                    scores
                } else {
                    let pname = node.output.get(1).cloned().unwrap_or_default();
                    let name = self.fresh(&pname);
                    let comment = format!("onnx: LinearClassifier {} (scores)", node_name(node));
                    let id = self.push(
                        Op::Call {
                            f,
                            args: vec![sid],
                            extra,
                        },
                        sshape.clone(),
                        name,
                        comment,
                    );
                    Val::View {
                        node: id,
                        shape: sshape,
                        kind,
                    }
                };
                self.set(node, 1, probs);
            }
            _ => return Err(self.unsupported(node, "is not supported")),
        }
        Ok(())
    }

    /// The model file's text and the weights.
    fn emit(
        mut self,
        model: &ModelProto,
        data: &[DataInput],
        outputs: &[(String, String)],
        lets: &[(String, String)],
    ) -> Imported {
        // Which nodes are needed.
        let mut live = vec![false; self.nodes.len()];
        let mut stack: Vec<Id> = Vec::new();
        for (_, target) in lets {
            stack.extend(self.nodes.iter().position(|n| &n.name == target));
        }
        for (name, _) in outputs {
            stack.extend(self.nodes.iter().position(|n| &n.name == name));
        }
        while let Some(id) = stack.pop() {
            if std::mem::replace(&mut live[id], true) {
                continue;
            }
            match &self.nodes[id].op {
                Op::Input | Op::Weight(_) => {}
                Op::Linear { x, .. } | Op::Conv { x, .. } => stack.push(*x),
                Op::Affine { x, .. } => stack.push(*x),
                Op::Binary { a, b, .. } => stack.extend([*a, *b]),
                Op::Call { args, .. } => stack.extend(args.iter().copied()),
            }
        }
        let o = self.opts;
        let model_name = identifier(o.name.as_deref().unwrap_or_else(|| {
            model
                .graph
                .as_ref()
                .map(|g| g.name())
                .filter(|n| !n.is_empty())
                .unwrap_or("imported")
        }));
        let mut src = String::new();
        let _ = writeln!(
            src,
            "// Imported by `veil import` from {} (producer: {} {}, opset {}).",
            o.source_name,
            model.producer_name(),
            model.producer_version(),
            self.opset
        );
        let _ = writeln!(
            src,
            "// Weights are {}'s private inputs, one .npy file each beside this file;",
            o.model_owner
        );
        let _ = writeln!(
            src,
            "// their declared ranges are rounded outward to two significant digits."
        );
        let _ = writeln!(src, "model {model_name} {{");
        let _ = writeln!(src, "    party {};", o.data_owner);
        let _ = writeln!(src, "    party {};", o.model_owner);
        if let Some(d) = &o.dealer {
            let _ = writeln!(src, "    dealer {d};");
        }
        let _ = writeln!(src, "    precision {};\n", o.precision);
        for d in data {
            let dims: Vec<String> = std::iter::once("batch".to_string())
                .chain(d.dims[1..].iter().map(|n| n.to_string()))
                .collect();
            let how = match d.how {
                RangeSource::Given => "range given with --range".to_string(),
                RangeSource::Calibrated => format!(
                    "range from the calibration sample, widened by {}% of its span",
                    CALIBRATION_MARGIN * 100.0
                ),
                RangeSource::Default => {
                    "default range: set it with --range or --calibrate".to_string()
                }
            };
            let _ = writeln!(
                src,
                "    input {}: fixed[{}] private({}) in [{}, {}];  // onnx input {}; {how}",
                d.name,
                dims.join(", "),
                o.data_owner,
                fmt_num(d.range.0),
                fmt_num(d.range.1),
                d.onnx_name
            );
        }
        let mut weights: Vec<(String, plan::Tensor)> = Vec::new();
        let mut decls = String::new();
        let mut body = String::new();
        let mut weight =
            |tr: &mut Tr, name: String, c: &Const, what: &str, fresh: bool| -> String {
                if let Some(v) = c.as_scalar() {
                    return if v < 0.0 {
                        format!("({})", fmt_num(v))
                    } else {
                        fmt_num(v)
                    };
                }
                let wname = if fresh { tr.fresh(&name) } else { name };
                let (lo, hi) = c.range();
                let dims: Vec<String> = c.dims.iter().map(|d| d.to_string()).collect();
                let _ = writeln!(
                    decls,
                    "    input {wname}: fixed[{}] private({}) in [{}, {}];  // {what}",
                    dims.join(", "),
                    o.model_owner,
                    fmt_num(lo),
                    fmt_num(hi)
                );
                weights.push((
                    wname.clone(),
                    plan::Tensor {
                        shape: c.dims.clone(),
                        data: c.data.clone(),
                    },
                ));
                wname
            };
        let nodes = std::mem::take(&mut self.nodes);
        let mut activations = Vec::new();
        for (id, n) in nodes.iter().enumerate() {
            if !live[id] {
                continue;
            }
            let name = &n.name;
            let arg = |i: Id| nodes[i].name.clone();
            let expr = match &n.op {
                Op::Input => continue,
                Op::Linear { x, w, b } => {
                    let w = weight(
                        &mut self,
                        format!("{name}_weight"),
                        w,
                        &format!("weight of {name}"),
                        true,
                    );
                    let mut e = format!("{} @ {w}", arg(*x));
                    if let Some(b) = b {
                        if b.data.iter().any(|v| *v != 0.0) {
                            let b = weight(
                                &mut self,
                                format!("{name}_bias"),
                                b,
                                &format!("bias of {name}"),
                                true,
                            );
                            e = format!("{e} + {b}");
                        }
                    }
                    e
                }
                Op::Conv {
                    x,
                    w,
                    b,
                    stride,
                    pad,
                    dil,
                    groups,
                } => {
                    let f = if w.dims.len() == 3 {
                        "conv1d"
                    } else {
                        "conv2d"
                    };
                    let wn = weight(
                        &mut self,
                        format!("{name}_weight"),
                        w,
                        &format!("weight of {name}"),
                        true,
                    );
                    let one = |v: &[usize]| {
                        if v.iter().all(|x| *x == v[0]) {
                            v[0].to_string()
                        } else {
                            list(v)
                        }
                    };
                    let mut args = vec![arg(*x), wn];
                    if let Some(b) = b {
                        let b = Const {
                            dims: vec![b.len()],
                            data: b.data.clone(),
                        };
                        args.push(weight(
                            &mut self,
                            format!("{name}_bias"),
                            &b,
                            &format!("bias of {name}"),
                            true,
                        ));
                    }
                    format!(
                        "{f}({}, stride: {}, padding: {}, dilation: {}, groups: {groups})",
                        args.join(", "),
                        one(stride),
                        one(pad),
                        one(dil)
                    )
                }
                Op::Weight(c) => {
                    let w = weight(&mut self, name.clone(), c, &n.comment, false);
                    if c.as_scalar().is_none() {
                        continue;
                    }
                    w
                }
                Op::Affine { x, scale, shift } => {
                    let mut e = arg(*x);
                    if let Some(s) = scale {
                        if s.as_scalar() == Some(-1.0) {
                            e = format!("-{e}");
                        } else {
                            let s = weight(
                                &mut self,
                                format!("{name}_scale"),
                                s,
                                &format!("scale of {name}"),
                                true,
                            );
                            e = format!("{e} * {s}");
                        }
                    }
                    if let Some(t) = shift {
                        let t = weight(
                            &mut self,
                            format!("{name}_shift"),
                            t,
                            &format!("shift of {name}"),
                            true,
                        );
                        e = format!("{e} + {t}");
                    }
                    e
                }
                Op::Binary { op, a, b } => format!("{} {op} {}", arg(*a), arg(*b)),
                Op::Call {
                    f: "relu", args, ..
                } if o.clamps.contains_key(name) => {
                    activations.push(name.clone());
                    let hi = o.clamps[name];
                    format!("clamp({}, 0, {})", arg(args[0]), fmt_num(hi))
                }
                Op::Call { f, args, extra } => {
                    if *f == "relu" {
                        activations.push(name.clone());
                    }
                    let mut parts: Vec<String> = args.iter().map(|a| arg(*a)).collect();
                    if !extra.is_empty() {
                        parts.push(extra.clone());
                    }
                    format!("{f}({})", parts.join(", "))
                }
            };
            let _ = writeln!(body, "    let {name} = {expr};  // {}", n.comment);
        }
        for (name, target) in lets {
            let _ = writeln!(body, "    let {name} = {target};");
        }
        src.push_str(&decls);
        src.push('\n');
        src.push_str(&body);
        src.push('\n');
        for (name, onnx) in outputs {
            let labels = match self.output_labels.get(name) {
                Some(l) => {
                    let l: Vec<String> = l.iter().map(|v| format!("{v}")).collect();
                    format!(" labels [{}]", l.join(", "))
                }
                None => String::new(),
            };
            let _ = writeln!(
                src,
                "    output {name} to {}{labels};  // onnx output {onnx}",
                o.data_owner
            );
        }
        src.push_str("}\n");
        for d in data {
            if d.how == RangeSource::Default {
                self.warnings.push(format!(
                    "input `{}` has the default range [{}, {}]: data outside it is refused; set it with --range {}=LO:HI or --calibrate {}=FILE",
                    d.name, crate::DEFAULT_RANGE.0, crate::DEFAULT_RANGE.1, d.name, d.name
                ));
            }
        }
        Imported {
            source: src,
            weights,
            data_inputs: data.to_vec(),
            outputs: outputs.to_vec(),
            warnings: self.warnings,
            activations,
        }
    }
}

fn merge_affine(
    s1: Option<&Const>,
    t1: Option<&Const>,
    s2: Option<&Const>,
    t2: Option<&Const>,
) -> Option<(Option<Const>, Option<Const>)> {
    // (x*s1 + t1)*s2 + t2 = x*(s1 s2) + (t1 s2 + t2)
    let mul = |a: Option<&Const>, b: Option<&Const>| -> Option<Option<Const>> {
        match (a, b) {
            (None, None) => Some(None),
            (Some(a), None) | (None, Some(a)) => Some(Some(a.clone())),
            (Some(a), Some(b)) => a.zip(b, |p, q| p * q).ok().map(Some),
        }
    };
    let s = mul(s1, s2)?;
    let t1s2 = match (t1, s2) {
        (Some(t), Some(s)) => Some(t.zip(s, |p, q| p * q).ok()?),
        (Some(t), None) => Some(t.clone()),
        _ => None,
    };
    let t = match (t1s2, t2.cloned()) {
        (None, None) => None,
        (Some(a), None) | (None, Some(a)) => Some(a),
        (Some(a), Some(b)) => Some(a.zip(&b, |p, q| p + q).ok()?),
    };
    let sq = |c: Option<Const>| {
        c.map(|c| Const {
            dims: c.squeezed_leading(),
            data: c.data,
        })
    };
    Some((sq(s), sq(t)))
}

/// `b += add` for a bias that may not exist yet.
fn add_to_bias(b: &mut Option<Const>, add: Const, node: &NodeProto) -> Result<(), ImportError> {
    *b = Some(match b.take() {
        Some(old) => old
            .zip(&add, |p, q| p + q)
            .map_err(|m| ImportError::Invalid {
                node: node_name(node),
                message: m,
            })?,
        None => add,
    });
    Ok(())
}

/// A constant that is one value per output channel of a `[batch, C, ...]`
/// tensor of rank `rank`, as a vector of C.
fn per_channel(c: &Const, cout: usize, rank: usize) -> Option<Const> {
    if let Some(v) = c.as_scalar() {
        return Some(Const::vector(vec![v; cout]));
    }
    let dims = c.squeezed_leading();
    let mut want = vec![cout];
    want.extend(std::iter::repeat_n(1, rank - 2));
    (dims == want).then(|| Const::vector(c.data.clone()))
}

fn node_name(n: &NodeProto) -> String {
    if n.name().is_empty() {
        format!(
            "{} → {}",
            n.op_type(),
            n.output.first().map(String::as_str).unwrap_or("?")
        )
    } else {
        n.name().to_string()
    }
}

fn attr<'n>(n: &'n NodeProto, name: &str) -> Option<&'n AttributeProto> {
    n.attribute.iter().find(|a| a.name() == name)
}

fn attr_i(n: &NodeProto, name: &str) -> Option<i64> {
    attr(n, name).map(|a| a.i())
}

fn attr_f(n: &NodeProto, name: &str) -> Option<f64> {
    attr(n, name).map(|a| {
        if a.r#type() == AttributeType::Int {
            a.i() as f64
        } else {
            a.f() as f64
        }
    })
}

fn norm_axis(axis: i64, rank: i64) -> Option<usize> {
    let a = if axis < 0 { axis + rank } else { axis };
    (0..rank).contains(&a).then_some(a as usize)
}

fn fold_dims(d: &[Dim]) -> Dim {
    if has_batch(d) {
        if count(d) == 1 {
            Dim::Batch
        } else {
            Dim::N(0)
        }
    } else {
        Dim::N(count(d))
    }
}

fn dims_text(s: &[Dim]) -> String {
    let v: Vec<String> = s
        .iter()
        .map(|d| {
            if let Dim::N(n) = d {
                n.to_string()
            } else {
                "batch".into()
            }
        })
        .collect();
    v.join(", ")
}

/// The shape a Reshape gives; the batch must stay one whole dimension.
fn reshape(shape: &[Dim], target: &[i64], allowzero: bool) -> Result<Shape, String> {
    let mut out: Vec<Option<Dim>> = Vec::new();
    for (i, t) in target.iter().enumerate() {
        out.push(match *t {
            i64::MIN => Some(Dim::Batch),
            0 if !allowzero => Some(
                *shape
                    .get(i)
                    .ok_or("a 0 in the target shape beyond the input's rank")?,
            ),
            -1 => None,
            n if n > 0 => Some(Dim::N(n as usize)),
            n => return Err(format!("target dimension {n}")),
        });
    }
    let known: usize = out
        .iter()
        .flatten()
        .map(|d| if let Dim::N(n) = d { *n } else { 1 })
        .product();
    let total = count(shape);
    let batch_in = has_batch(shape);
    let batch_out = out.contains(&Some(Dim::Batch));
    match out.iter().filter(|d| d.is_none()).count() {
        0 => {}
        1 => {
            let pos = out.iter().position(|d| d.is_none()).unwrap();
            if batch_in && !batch_out && known == total {
                out[pos] = Some(Dim::Batch);
            } else if known > 0 && total.is_multiple_of(known) {
                out[pos] = Some(Dim::N(total / known));
            } else {
                return Err(format!("to {target:?}: the sizes do not divide"));
            }
        }
        _ => return Err("more than one -1 in the target shape".into()),
    }
    let mut out: Shape = out.into_iter().map(|d| d.unwrap()).collect();
    if batch_in && !has_batch(&out) {
        // The exported batch size appears as a number: the first dimension is the batch.
        let rest: usize = out
            .iter()
            .skip(1)
            .map(|d| if let Dim::N(n) = d { *n } else { 1 })
            .product();
        if rest == total && !out.is_empty() {
            out[0] = Dim::Batch;
        } else {
            return Err(format!("to {target:?}, which merges the batch with other dimensions (the batch must stay the first dimension)"));
        }
    }
    if count(&out) != total {
        return Err(format!(
            "of [{}] to {target:?}: the number of elements differs",
            dims_text(shape)
        ));
    }
    Ok(out)
}

fn squeeze(shape: &[Dim], axes: &[i64]) -> Result<Shape, String> {
    let rank = shape.len() as i64;
    let axes: Vec<usize> = if axes.is_empty() {
        (0..shape.len())
            .filter(|i| shape[*i] == Dim::N(1))
            .collect()
    } else {
        axes.iter()
            .map(|a| norm_axis(*a, rank).ok_or("axis out of range"))
            .collect::<Result<_, _>>()?
    };
    if axes.iter().any(|a| shape[*a] != Dim::N(1)) {
        return Err("Squeeze of a dimension that is not 1".into());
    }
    Ok(shape
        .iter()
        .enumerate()
        .filter(|(i, _)| !axes.contains(i))
        .map(|(_, d)| *d)
        .collect())
}

fn unsqueeze(shape: &[Dim], axes: &[i64]) -> Result<Shape, String> {
    let rank = (shape.len() + axes.len()) as i64;
    let mut axes: Vec<usize> = axes
        .iter()
        .map(|a| norm_axis(*a, rank).ok_or("axis out of range"))
        .collect::<Result<_, _>>()?;
    axes.sort();
    let mut out = shape.to_vec();
    for a in axes {
        out.insert(a, Dim::N(1));
    }
    Ok(out)
}

fn broadcast_shape(a: &[Dim], b: &[Dim]) -> Option<Shape> {
    let rank = a.len().max(b.len());
    let mut out = Vec::with_capacity(rank);
    for i in 0..rank {
        let x = if i + a.len() >= rank {
            a[i + a.len() - rank]
        } else {
            Dim::N(1)
        };
        let y = if i + b.len() >= rank {
            b[i + b.len() - rank]
        } else {
            Dim::N(1)
        };
        out.push(match (x, y) {
            (x, y) if x == y => x,
            (Dim::N(1), y) => y,
            (x, Dim::N(1)) => x,
            _ => return None,
        });
    }
    Some(out)
}

fn matmul_shape(a: &[Dim], b: &[Dim]) -> Option<Shape> {
    match (a, b) {
        ([m, k], [k2, n]) if k == k2 => Some(vec![*m, *n]),
        ([m, k], [k2]) if k == k2 => Some(vec![*m]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{
        tensor_proto::DataType, tensor_shape_proto::dimension::Value as DimValue, type_proto,
        GraphProto, OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
    };

    fn value(name: &str, dims: &[i64]) -> ValueInfoProto {
        let dim = |i: usize, d: i64| crate::proto::tensor_shape_proto::Dimension {
            value: Some(if i == 0 {
                DimValue::DimParam("N".into())
            } else {
                DimValue::DimValue(d)
            }),
            ..Default::default()
        };
        ValueInfoProto {
            name: Some(name.into()),
            r#type: Some(TypeProto {
                value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                    elem_type: Some(DataType::Float as i32),
                    shape: Some(TensorShapeProto {
                        dim: dims.iter().enumerate().map(|(i, d)| dim(i, *d)).collect(),
                    }),
                })),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn tensor(name: &str, dims: &[i64], data: &[f32]) -> TensorProto {
        TensorProto {
            name: Some(name.into()),
            dims: dims.to_vec(),
            data_type: Some(DataType::Float as i32),
            float_data: data.to_vec(),
            ..Default::default()
        }
    }

    fn ints(name: &str, v: &[i64]) -> AttributeProto {
        AttributeProto {
            name: Some(name.into()),
            ints: v.to_vec(),
            r#type: Some(AttributeType::Ints as i32),
            ..Default::default()
        }
    }

    fn int(name: &str, v: i64) -> AttributeProto {
        AttributeProto {
            name: Some(name.into()),
            i: Some(v),
            r#type: Some(AttributeType::Int as i32),
            ..Default::default()
        }
    }

    fn float(name: &str, v: f32) -> AttributeProto {
        AttributeProto {
            name: Some(name.into()),
            f: Some(v),
            r#type: Some(AttributeType::Float as i32),
            ..Default::default()
        }
    }

    fn node(op: &str, ins: &[&str], outs: &[&str], attrs: Vec<AttributeProto>) -> NodeProto {
        NodeProto {
            op_type: Some(op.into()),
            name: Some(format!("n_{}", outs[0])),
            input: ins.iter().map(|s| s.to_string()).collect(),
            output: outs.iter().map(|s| s.to_string()).collect(),
            attribute: attrs,
            ..Default::default()
        }
    }

    fn import(
        nodes: Vec<NodeProto>,
        inits: Vec<TensorProto>,
        input: ValueInfoProto,
        output: &str,
    ) -> Result<Imported, ImportError> {
        let model = ModelProto {
            ir_version: Some(8),
            opset_import: vec![OperatorSetIdProto {
                domain: Some(String::new()),
                version: Some(17),
            }],
            graph: Some(GraphProto {
                node: nodes,
                name: Some("g".into()),
                initializer: inits,
                input: vec![input],
                output: vec![value(output, &[1])],
                ..Default::default()
            }),
            ..Default::default()
        };
        translate(
            &model,
            &mut |_| Err("no external data".into()),
            &Options::default(),
        )
    }

    #[test]
    fn gemm_transposes_scales_and_folds_batch_norm() {
        let w = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // [2, 3], transB
        let got = import(
            vec![
                node(
                    "Gemm",
                    &["x", "W", "C"],
                    &["g"],
                    vec![int("transB", 1), float("alpha", 2.0), float("beta", 0.5)],
                ),
                node(
                    "BatchNormalization",
                    &["g", "s", "t", "m", "v"],
                    &["y"],
                    vec![float("epsilon", 0.0)],
                ),
            ],
            vec![
                tensor("W", &[2, 3], &w),
                tensor("C", &[2], &[1.0, -1.0]),
                tensor("s", &[2], &[2.0, 1.0]),
                tensor("t", &[2], &[0.5, 0.0]),
                tensor("m", &[2], &[1.0, 0.0]),
                tensor("v", &[2], &[4.0, 1.0]),
            ],
            value("x", &[0, 3]),
            "y",
        )
        .unwrap();
        assert_eq!(got.source.matches(" @ ").count(), 1, "{}", got.source);
        assert!(
            !got.source.contains('*'),
            "everything folded: {}",
            got.source
        );
        let find = |n: &str| {
            got.weights
                .iter()
                .find(|(k, _)| k.ends_with(n))
                .unwrap()
                .1
                .clone()
        };
        let weight = find("_weight");
        let bias = find("_bias");
        // BN: scale s/sqrt(v) = [1, 1], shift t - m·scale = [-0.5, 0].
        assert_eq!(weight.shape, vec![3, 2]);
        assert_eq!(weight.data, vec![2.0, 8.0, 4.0, 10.0, 6.0, 12.0]);
        assert_eq!(bias.data, vec![0.5 - 0.5, -0.5]);
    }

    #[test]
    fn flatten_is_one_reshape_where_the_product_needs_it() {
        let got = import(
            vec![
                node("Relu", &["x"], &["r"], vec![]),
                node("Flatten", &["r"], &["f"], vec![int("axis", 1)]),
                node("Identity", &["f"], &["i"], vec![]),
                node("MatMul", &["i", "W"], &["y"], vec![]),
            ],
            vec![tensor("W", &[6, 1], &[1.0; 6])],
            value("x", &[0, 2, 3]),
            "y",
        )
        .unwrap();
        assert_eq!(
            got.source.matches("reshape(r, [-1, 6])").count(),
            1,
            "{}",
            got.source
        );
        assert!(
            got.source.contains("input x: fixed[batch, 2, 3]"),
            "{}",
            got.source
        );
    }

    #[test]
    fn asymmetric_padding_and_unknown_ops_are_refused_by_name() {
        let e = import(
            vec![node(
                "Conv",
                &["x", "W"],
                &["y"],
                vec![ints("pads", &[0, 0, 1, 1])],
            )],
            vec![tensor("W", &[1, 1, 2, 2], &[1.0; 4])],
            value("x", &[0, 1, 4, 4]),
            "y",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("node `n_y`: Conv (opset 17) with asymmetric padding"),
            "{e}"
        );
        let e = import(
            vec![node("Erf", &["x"], &["y"], vec![])],
            vec![],
            value("x", &[0, 2]),
            "y",
        )
        .unwrap_err();
        assert!(
            matches!(&e, ImportError::Unsupported { op, .. } if op == "Erf"),
            "{e}"
        );
    }

    #[test]
    fn a_zero_pad_folds_into_the_convolution_it_feeds() {
        let pads = TensorProto {
            name: Some("p".into()),
            dims: vec![8],
            data_type: Some(DataType::Int64 as i32),
            int64_data: vec![0, 0, 1, 2, 0, 0, 1, 2],
            ..Default::default()
        };
        let got = import(
            vec![
                node("Pad", &["x", "p"], &["xp"], vec![]),
                node(
                    "Conv",
                    &["xp", "W"],
                    &["y"],
                    vec![ints("pads", &[1, 0, 1, 0])],
                ),
            ],
            vec![tensor("W", &[1, 1, 3, 3], &[1.0; 9]), pads.clone()],
            value("x", &[0, 1, 6, 6]),
            "y",
        )
        .unwrap();
        assert!(
            got.source.contains("padding: 2, dilation"),
            "{}",
            got.source
        );
        let e = import(
            vec![
                node("Pad", &["x", "p"], &["xp"], vec![]),
                node("Relu", &["xp"], &["y"], vec![]),
            ],
            vec![pads],
            value("x", &[0, 1, 6, 6]),
            "y",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("a Pad folds only into the Conv or AveragePool"),
            "{e}"
        );
    }

    #[test]
    fn reshapes_keep_the_batch_as_one_dimension() {
        let b = Dim::Batch;
        let n = Dim::N;
        assert_eq!(
            reshape(&[b, n(2), n(3)], &[1, 6], false).unwrap(),
            vec![b, n(6)]
        );
        assert_eq!(
            reshape(&[b, n(6)], &[-1, 2, 3], false).unwrap(),
            vec![b, n(2), n(3)]
        );
        assert_eq!(reshape(&[b, n(6)], &[0, -1], false).unwrap(), vec![b, n(6)]);
        assert_eq!(
            reshape(&[b, n(6)], &[i64::MIN, 6], false).unwrap(),
            vec![b, n(6)]
        );
        assert!(
            reshape(&[b, n(6)], &[2, -1], false).is_err(),
            "merges the batch"
        );
        assert!(reshape(&[b, n(6)], &[-1, -1], false).is_err());
        assert_eq!(squeeze(&[b, n(1), n(3)], &[1]).unwrap(), vec![b, n(3)]);
        assert!(squeeze(&[b, n(2)], &[1]).is_err());
        assert_eq!(unsqueeze(&[b, n(3)], &[-1]).unwrap(), vec![b, n(3), n(1)]);
    }

    #[test]
    fn names_avoid_keywords_and_builtins() {
        let got = import(
            vec![node("Relu", &["input"], &["relu"], vec![])],
            vec![],
            value("input", &[0, 2]),
            "relu",
        )
        .unwrap();
        assert!(
            got.source.contains("input input_1: fixed[batch, 2]"),
            "{}",
            got.source
        );
        assert!(
            got.source.contains("let relu_1 = relu(input_1);"),
            "{}",
            got.source
        );
        assert!(
            got.source
                .contains("output relu_1 to client;  // onnx output relu"),
            "{}",
            got.source
        );
    }
}
