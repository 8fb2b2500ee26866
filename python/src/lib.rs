//! Veil from Python: the extension module `veil._veil`, which the package
//! `veil` (`veil/__init__.py`) re-exports. A thin layer over the library
//! crates, like the cli: [`compiler::check_source`] and [`compiler::compile`]
//! for `veil.compile`, [`runtime::exec::run_with_transports`] for
//! `Model.run`, [`compiler::reference`] for `check=True`, and `net` for
//! `veil.party`. NumPy arrays in and out without a copy: a run reads a
//! C-contiguous float64 input where NumPy holds it ([`Given`]), and
//! outputs are handed to NumPy.
//!
//! Nothing panics across the boundary: every entry point runs under
//! [`guard`], which turns a panic into a `VeilError` naming it as a bug.
//! Runs release the GIL, and Ctrl-C stops them (see [`Cancellable`]).

use numpy::{PyArray1, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use plan::{Plan, Tensor, TensorRef};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use runtime::exec::{ChannelTransport, ExecError, Outcome, Transport};
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// As the cli: the runtime allocates and frees large tensors every round,
/// which mimalloc keeps for reuse (see cli/src/main.rs and BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_decommits` (as cli/src/main.rs, whose test checks the index).
const MI_OPTION_PURGE_DECOMMITS: libmimalloc_sys::mi_option_t = 5;

create_exception!(
    veil,
    VeilError,
    PyException,
    "An error from Veil: a model that does not compile (`.diagnostics` lists \
     its errors), inputs that do not fit the model, or a run that failed. \
     The message is what the command line would print."
);
create_exception!(
    veil,
    InputError,
    VeilError,
    "Inputs that do not fit the model: unknown, missing, of the wrong shape, \
     or outside their declared range. Nothing was run."
);

/// Runs `f`, turning a panic (a bug in Veil) into a `VeilError`, so that
/// no panic crosses into Python.
fn guard<T>(f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => Err(VeilError::new_err(format!(
            "internal error: {} (this is a bug in Veil; please report it)",
            panic_text(&payload)
        ))),
    }
}

fn panic_text(payload: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic".into()
    }
}

/// One diagnostic of a model: its stable code (`E0201`), severity, message,
/// the place (`span`: byte offsets into the source; `line` and `column`:
/// 1-based, of the primary label), the labels, notes and help.
#[pyclass(module = "veil", frozen, get_all)]
struct Diagnostic {
    code: String,
    severity: String,
    message: String,
    /// `(start, end)` byte offsets of the primary label, or `None`.
    span: Option<(usize, usize)>,
    line: Option<usize>,
    column: Option<usize>,
    /// `(start, end, message, primary)` per label.
    labels: Vec<(usize, usize, String, bool)>,
    notes: Vec<String>,
    help: Option<String>,
}

#[pymethods]
impl Diagnostic {
    fn __repr__(&self) -> String {
        let at = match (self.line, self.column) {
            (Some(l), Some(c)) => format!(" at {l}:{c}"),
            _ => String::new(),
        };
        format!(
            "<Diagnostic {} {}{at}: {}>",
            self.severity, self.code, self.message
        )
    }
}

impl Diagnostic {
    fn new(d: &grammar::Diagnostic, source: &str) -> Diagnostic {
        let span = d.primary_span().map(|s| (s.start, s.end));
        let (line, column) = match span {
            Some((start, _)) => {
                let before = &source[..start.min(source.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                (Some(line), Some(column))
            }
            None => (None, None),
        };
        Diagnostic {
            code: d.code.as_str().to_string(),
            severity: if d.is_error() { "error" } else { "warning" }.to_string(),
            message: d.message.clone(),
            span,
            line,
            column,
            labels: d
                .labels
                .iter()
                .map(|l| (l.span.start, l.span.end, l.message.clone(), l.primary))
                .collect(),
            notes: d.notes.clone(),
            help: d.help.clone(),
        }
    }
}

/// A `VeilError` carrying `diagnostics`, its message their rendered text.
fn diagnostics_error(
    py: Python<'_>,
    message: String,
    diagnostics: &[grammar::Diagnostic],
    source: &str,
) -> PyErr {
    let err = VeilError::new_err(message);
    let list: Vec<Diagnostic> = diagnostics
        .iter()
        .map(|d| Diagnostic::new(d, source))
        .collect();
    if let Ok(list) = PyList::new(py, list) {
        let _ = err.value(py).setattr("diagnostics", list);
    }
    err
}

fn plain_error(py: Python<'_>, message: String) -> PyErr {
    let err = VeilError::new_err(message);
    let _ = err.value(py).setattr("diagnostics", PyList::empty(py));
    err
}

fn input_error(py: Python<'_>, message: String) -> PyErr {
    let err = InputError::new_err(message);
    let _ = err.value(py).setattr("diagnostics", PyList::empty(py));
    err
}

/// Warnings (the model's, or about the options) as Python warnings.
fn warn(py: Python<'_>, text: &str) -> PyResult<()> {
    if text.is_empty() {
        return Ok(());
    }
    let category = py.import("veil")?.getattr("VeilWarning")?;
    py.import("warnings")?
        .getattr("warn")?
        .call1((text, category, 3))?;
    Ok(())
}

/// The compile options from `veil.compile`'s keywords, checked as the cli
/// checks its flags.
#[allow(clippy::too_many_arguments)]
fn options(
    dealer: bool,
    network: &str,
    bandwidth: Option<f64>,
    latency: Option<f64>,
    correlations: Option<&str>,
    key_bits: u32,
    prefer: Option<&str>,
    assume: Option<BTreeMap<String, u64>>,
) -> Result<compiler::Options, String> {
    let network = match (bandwidth, latency) {
        (Some(b), Some(l)) if b > 0.0 && l >= 0.0 => compiler::Network::custom(b, l),
        (Some(_), Some(_)) => {
            return Err("bandwidth (Mbit/s) must be positive and latency (ms) at least 0".into())
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err("give bandwidth= and latency= together (Mbit/s and ms per round)".into())
        }
        (None, None) => match network {
            "lan" => compiler::Network::LAN,
            "wan" => compiler::Network::WAN,
            other => return Err(format!("network={other:?}: expected \"lan\" or \"wan\"")),
        },
    };
    if !(2048..=8192).contains(&key_bits) {
        return Err(format!(
            "key_bits={key_bits}: a Paillier key has 2048 to 8192 bits"
        ));
    }
    let correlations = match correlations {
        None => None,
        Some("ot") => Some(plan::CorrelationEngine::Ot),
        Some("paillier") => Some(plan::CorrelationEngine::Paillier),
        Some(other) => {
            return Err(format!(
                "correlations={other:?}: expected \"ot\" or \"paillier\""
            ))
        }
    };
    let prefer_name = prefer;
    let prefer = match prefer {
        None => None,
        Some("shares") => Some(compiler::ir::Protocol::Shares),
        Some("paillier") => Some(compiler::ir::Protocol::Paillier),
        Some("rlwe" | "rlwe-masked" | "rlwe-prepared") => Some(compiler::ir::Protocol::Rlwe),
        Some(other) => {
            return Err(format!(
                "prefer={other:?}: expected \"shares\", \"paillier\", \"rlwe\", \"rlwe-masked\" or \"rlwe-prepared\""
            ))
        }
    };
    let rlwe_form = match prefer_name {
        Some("rlwe-masked") => Some(compiler::choose::RlweForm::Masked),
        Some("rlwe-prepared") => Some(compiler::choose::RlweForm::Prepared),
        _ => None,
    };
    let assume = assume.unwrap_or_default();
    if let Some((name, _)) = assume.iter().find(|(_, &n)| n == 0) {
        return Err(format!("assume[{name:?}]: a dimension is at least 1"));
    }
    Ok(compiler::Options {
        network,
        key_bits,
        assume,
        use_dealer: dealer,
        prefer,
        correlations,
        rlwe_form,
        dealer_comparisons: None,
    })
}

/// Check and compile `source`: the model and what the compiler made, or
/// the error with its diagnostics. Warnings become Python warnings.
fn compile_source(
    py: Python<'_>,
    source: &str,
    name: &str,
    opts: &compiler::Options,
) -> PyResult<(compiler::ir::CheckedModel, compiler::Compiled)> {
    let checked = compiler::check_source(source);
    let Some(model) = checked.model else {
        return Err(model_error(py, &checked.diagnostics, name, source));
    };
    warn(py, &grammar::render(&checked.diagnostics, name, source))?;
    if let (Some(how), true, Some(_)) = (opts.correlations, opts.use_dealer, model.dealer()) {
        warn(
            py,
            &format!(
                "correlations=\"{}\" has no effect: the model's dealer supplies the correlations (add dealer=False to run without it)",
                how.name().to_lowercase()
            ),
        )?;
    }
    match compiler::compile(&model, opts) {
        Ok(c) => {
            warn(py, &grammar::render(&c.warnings, name, source))?;
            Ok((model, c))
        }
        Err(compiler::CompileError::Model(d)) => Err(model_error(py, &d, name, source)),
        Err(compiler::CompileError::Internal(e)) => Err(plain_error(py, e.render(name))),
    }
}

/// A model's errors as the cli prints them, with their diagnostics.
fn model_error(py: Python<'_>, d: &[grammar::Diagnostic], name: &str, source: &str) -> PyErr {
    let n = d.iter().filter(|d| d.is_error()).count();
    let text = format!(
        "{}error: could not compile `{name}` ({n} error{})",
        grammar::render(d, name, source),
        if n == 1 { "" } else { "s" }
    );
    diagnostics_error(py, text, d, source)
}

/// A compiled model: its report, inputs, plan, and `run`. Made by
/// `veil.compile` (or `veil.from_sklearn`, which also binds the weights).
#[pyclass(module = "veil", frozen)]
struct Model {
    source: String,
    /// The file name diagnostics show (the path, or `<source>`).
    file: String,
    options: compiler::Options,
    model: compiler::ir::CheckedModel,
    compiled: compiler::Compiled,
    plan: Arc<Plan>,
    /// Inputs bound into the model (`bind`): weights a run need not be given.
    bound: BTreeMap<String, Tensor>,
    /// The plan compiled for the last run's sizes (the analysis and the
    /// estimate depend on them, as in `veil run`).
    sized: Mutex<Option<Sized>>,
    /// The last run's: the parties' wall time (the Rust call alone) and
    /// each party's measurements.
    last: Mutex<Option<(f64, Vec<runtime::exec::Stats>)>>,
}

/// A plan compiled for the sizes (such as `batch`) it names.
type Sized = (BTreeMap<String, u64>, Arc<Plan>);

/// `(party, shape, (lo, hi))` of an input, as Python sees it.
fn dims_py<'py>(py: Python<'py>, shape: &plan::Shape) -> PyResult<Bound<'py, PyTuple>> {
    let dims: Vec<Bound<'py, PyAny>> = shape
        .0
        .iter()
        .map(|d| match d {
            plan::Dim::Known(n) => Ok(n.into_pyobject(py)?.into_any()),
            plan::Dim::Symbol(s) => Ok(PyString::new(py, s).into_any()),
        })
        .collect::<PyResult<_>>()?;
    PyTuple::new(py, dims)
}

/// A tensor as a NumPy array of its shape (the data moves, no copy).
fn array<'py>(py: Python<'py>, t: Tensor) -> PyResult<Bound<'py, PyAny>> {
    let shape = t.shape.clone();
    let flat = PyArray1::from_vec(py, t.data);
    Ok(flat.reshape(shape)?.into_any())
}

/// An input as Python gave it, for one call: a C-contiguous, aligned
/// float64 NumPy array is borrowed as it is (rust-numpy's shared borrow is
/// held, and the array with it, for as long as this lives), anything else
/// converted once, by `numpy.asarray(v, "float64", order="C")`, into an
/// array borrowed the same way. A run reads its inputs through
/// [`Given::view`], so the values of a large `x` are never copied.
///
/// The GIL is released while the parties read the values: as with NumPy's
/// own functions that release it, another Python thread that writes into
/// the array during the run changes what the run reads.
struct Given<'py> {
    /// The shape when given (a copy: Python code may reshape the array in
    /// place, which would not move its values).
    shape: Vec<usize>,
    array: PyReadonlyArrayDyn<'py, f64>,
}

impl Given<'_> {
    /// The values, borrowed from NumPy.
    fn view(&self) -> PyResult<TensorRef<'_>> {
        let data = self
            .array
            .as_slice()
            .map_err(|e| VeilError::new_err(format!("an input's array changed its layout: {e}")))?;
        TensorRef::new(&self.shape, data).map_err(VeilError::new_err)
    }

    /// An owned copy, for what outlives the call (`bind`, calibration).
    fn to_tensor(&self) -> PyResult<Tensor> {
        Ok(self.view()?.to_tensor())
    }
}

/// A Python value (a NumPy array, or anything `numpy.asarray` takes) as a
/// C-contiguous float64 array, borrowed when it is one already.
fn given<'py>(py: Python<'py>, name: &str, v: &Bound<'py, PyAny>) -> PyResult<Given<'py>> {
    if let Ok(a) = v.extract::<PyReadonlyArrayDyn<'py, f64>>() {
        // Row-major and aligned (`as_slice` also takes Fortran order,
        // whose memory is column-major, so C order is checked first).
        if a.is_c_contiguous() && a.as_slice().is_ok() {
            return Ok(Given {
                shape: a.shape().to_vec(),
                array: a,
            });
        }
    }
    let np = py.import("numpy")?;
    let kwargs = PyDict::new(py);
    kwargs.set_item("dtype", "float64")?;
    kwargs.set_item("order", "C")?;
    let converted = np
        .getattr("asarray")?
        .call((v,), Some(&kwargs))
        .map_err(|e| input_error(py, format!("input `{name}`: not an array of numbers ({e})")))?;
    let a = converted.extract::<PyReadonlyArrayDyn<'py, f64>>()?;
    if !(a.is_c_contiguous() && a.as_slice().is_ok()) {
        return Err(VeilError::new_err(format!(
            "input `{name}`: numpy.asarray(order=\"C\") gave an array that is not C-contiguous"
        )));
    }
    Ok(Given {
        shape: a.shape().to_vec(),
        array: a,
    })
}

/// The values of a dict of inputs, by name, borrowed (see [`Given`]).
fn given_all<'py>(
    py: Python<'py>,
    inputs: Option<&Bound<'py, PyDict>>,
) -> PyResult<BTreeMap<String, Given<'py>>> {
    let mut out = BTreeMap::new();
    if let Some(d) = inputs {
        for (k, v) in d.iter() {
            let name: String = k
                .extract()
                .map_err(|_| input_error(py, format!("input names are strings, not {k}")))?;
            let g = given(py, &name, &v)?;
            out.insert(name, g);
        }
    }
    Ok(out)
}

/// The values of a dict of inputs, by name, copied (to be kept).
fn tensors(
    py: Python<'_>,
    inputs: Option<&Bound<'_, PyDict>>,
) -> PyResult<BTreeMap<String, Tensor>> {
    given_all(py, inputs)?
        .iter()
        .map(|(k, g)| Ok((k.clone(), g.to_tensor()?)))
        .collect()
}

/// Views of every input of a call: those bound in the model, and those
/// given (borrowed from NumPy, see [`Given`]).
fn views<'a>(
    bound: impl IntoIterator<Item = (&'a String, &'a Tensor)>,
    given: &'a BTreeMap<String, Given<'_>>,
) -> PyResult<BTreeMap<String, TensorRef<'a>>> {
    let mut out: BTreeMap<String, TensorRef<'a>> = bound
        .into_iter()
        .map(|(k, t)| (k.clone(), t.view()))
        .collect();
    for (k, g) in given {
        out.insert(k.clone(), g.view()?);
    }
    Ok(out)
}

/// Names given that the plan has no input of, or that are bound already.
fn unknown_inputs<V>(
    plan: &Plan,
    given: &BTreeMap<String, V>,
    bound: &BTreeMap<String, Tensor>,
) -> Vec<String> {
    let known: Vec<&str> = plan.inputs.iter().map(|i| i.name.as_str()).collect();
    let mut errors = Vec::new();
    for name in given.keys() {
        if !known.contains(&name.as_str()) {
            errors.push(format!(
                "the model has no input `{name}` (its inputs: {})",
                known.join(", ")
            ));
        } else if bound.contains_key(name) {
            errors.push(format!(
                "input `{name}` is bound in this model already; give only {}",
                plan.inputs
                    .iter()
                    .filter(|i| !bound.contains_key(&i.name))
                    .map(|i| format!("`{}`", i.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    errors
}

/// A transport that fails every send and receive once `stop` is set: how
/// Ctrl-C stops a run. The executor has no cancellation flag of its own,
/// but every party meets its transport between steps, and a stopped party
/// drops its channels, so its peers stop at their next receive.
struct Cancellable<T> {
    inner: T,
    stop: Arc<AtomicBool>,
}

impl<T: Transport> Transport for Cancellable<T> {
    fn send(&mut self, to: plan::PartyIdx, frame: Vec<u8>) -> Result<(), ExecError> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(ExecError::transport("the run was interrupted"));
        }
        self.inner.send(to, frame)
    }

    fn flush(&mut self) -> Result<(), ExecError> {
        self.inner.flush()
    }

    fn send_held(&mut self, to: plan::PartyIdx, frame: Vec<u8>) -> Result<(), ExecError> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(ExecError::transport("the run was interrupted"));
        }
        self.inner.send_held(to, frame)
    }

    fn recv(&mut self, from: plan::PartyIdx) -> Result<Vec<u8>, ExecError> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(ExecError::transport("the run was interrupted"));
        }
        self.inner.recv(from)
    }

    fn try_recv(&mut self, from: plan::PartyIdx) -> Result<Option<Vec<u8>>, ExecError> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(ExecError::transport("the run was interrupted"));
        }
        self.inner.try_recv(from)
    }
}

/// Runs `work` on its own thread with the GIL released, checking for
/// signals (Ctrl-C) every 100 ms; on one, sets `stop`, waits for `work`
/// to end and raises the signal's exception.
fn interruptible<T: Send>(
    py: Python<'_>,
    stop: &Arc<AtomicBool>,
    work: impl FnOnce() -> T + Send,
) -> PyResult<T> {
    let mut interrupted: Option<PyErr> = None;
    let result = py.detach(|| {
        std::thread::scope(|s| {
            let (tx, rx) = mpsc::channel();
            s.spawn(move || {
                let r = catch_unwind(AssertUnwindSafe(work));
                let _ = tx.send(r);
            });
            loop {
                match rx.recv_timeout(Duration::from_millis(100)) {
                    Ok(r) => return r,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        if interrupted.is_none() {
                            if let Err(e) = Python::attach(|py| py.check_signals()) {
                                interrupted = Some(e);
                                stop.store(true, Ordering::Relaxed);
                            }
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        return Err(Box::new("the run's thread ended without a result")
                            as Box<dyn std::any::Any + Send>)
                    }
                }
            }
        })
    });
    if let Some(e) = interrupted {
        return Err(e);
    }
    result.map_err(|p| {
        VeilError::new_err(format!(
            "internal error: {} (this is a bug in Veil; please report it)",
            panic_text(&p)
        ))
    })
}

/// The executor's options from `run`'s keywords.
fn exec_options(timeout: f64, max_memory: Option<u64>) -> PyResult<runtime::exec::Options> {
    if !(timeout > 0.0 && timeout.is_finite()) {
        return Err(InputError::new_err(format!(
            "timeout={timeout}: seconds, more than 0"
        )));
    }
    let mut opts = runtime::exec::Options::default();
    opts.timeout = Duration::from_secs_f64(timeout);
    opts.max_memory = max_memory;
    Ok(opts)
}

fn valid(plan: &Plan) -> Result<plan::ValidPlan<'_>, String> {
    plan::validate(plan).map_err(|errors| {
        let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
        format!(
            "internal error: the plan does not validate ({}); please report this bug",
            errors.join("; ")
        )
    })
}

/// `{output: array}` of one party's outcome.
fn outputs_py<'py>(
    py: Python<'py>,
    outputs: Vec<(String, Tensor)>,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (name, t) in outputs {
        d.set_item(name, array(py, t)?)?;
    }
    Ok(d)
}

impl Model {
    /// The plan for inputs of these sizes: the model's own when they are
    /// the sizes it was compiled for, else compiled for them (and kept for
    /// the next run), as `veil run` does.
    fn plan_for(&self, py: Python<'_>, dims: BTreeMap<String, u64>) -> PyResult<Arc<Plan>> {
        if dims == self.plan.estimate.assumed_dims {
            return Ok(self.plan.clone());
        }
        if let Some((d, p)) = &*self.sized.lock().expect("not poisoned") {
            if *d == dims {
                return Ok(p.clone());
            }
        }
        let mut opts = self.options.clone();
        opts.assume = dims.clone();
        let plan = match compiler::compile(&self.model, &opts) {
            Ok(c) => Arc::new(c.plan),
            Err(compiler::CompileError::Model(d)) => {
                let sizes: Vec<String> = dims.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let err = model_error(py, &d, &self.file, &self.source);
                let msg = format!(
                    "{}\nnote: the model was compiled for the sizes of its data ({}); nothing was run",
                    err.value(py),
                    sizes.join(", ")
                );
                let diags = err.value(py).getattr("diagnostics")?;
                let e = VeilError::new_err(msg);
                e.value(py).setattr("diagnostics", diags)?;
                return Err(e);
            }
            Err(compiler::CompileError::Internal(e)) => {
                return Err(plain_error(py, e.render(&self.file)))
            }
        };
        *self.sized.lock().expect("not poisoned") = Some((dims, plan.clone()));
        Ok(plan)
    }

    fn with_bound(&self, bound: BTreeMap<String, Tensor>) -> Model {
        Model {
            source: self.source.clone(),
            file: self.file.clone(),
            options: self.options.clone(),
            model: self.model.clone(),
            compiled: compiler::Compiled {
                plan: self.compiled.plan.clone(),
                graph_text: self.compiled.graph_text.clone(),
                dot: self.compiled.dot.clone(),
                report: self.compiled.report.clone(),
                warnings: self.compiled.warnings.clone(),
            },
            plan: self.plan.clone(),
            bound,
            sized: Mutex::new(self.sized.lock().expect("not poisoned").clone()),
            last: Mutex::new(None),
        }
    }
}

#[pymethods]
impl Model {
    /// The model's name (`model NAME { ... }`).
    #[getter]
    fn name(&self) -> String {
        self.plan.model.clone()
    }

    /// The model's source text.
    #[getter]
    fn source(&self) -> String {
        self.source.clone()
    }

    /// The parties, in plan order: `{name: "compute" | "dealer"}`.
    #[getter]
    fn parties<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for p in &self.plan.parties {
            let role = match p.role {
                plan::Role::Compute => "compute",
                plan::Role::Dealer => "dealer",
            };
            d.set_item(&p.name, role)?;
        }
        Ok(d)
    }

    /// `{name: (party, shape, (lo, hi))}` per input: its owner (or
    /// `"public"`), its shape (numbers, or names such as `"batch"` that the
    /// data decides) and the range its values must lie in.
    #[getter]
    fn inputs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for i in &self.plan.inputs {
            let owner = match i.owner {
                plan::Owner::Public => "public",
                plan::Owner::Party(p) => self.plan.party_name(p),
            };
            d.set_item(&i.name, (owner, dims_py(py, &i.shape)?, i.range))?;
        }
        Ok(d)
    }

    /// `{name: (parties, shape, error_bound)}` per output: who learns it,
    /// its shape, and the compiler's bound on its error against exact
    /// arithmetic.
    #[getter]
    fn outputs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for o in &self.plan.outputs {
            let to: Vec<&str> = o.to.iter().map(|&p| self.plan.party_name(p)).collect();
            d.set_item(&o.name, (to, dims_py(py, &o.shape)?, o.error_bound))?;
        }
        Ok(d)
    }

    /// The names of the inputs bound into this model (see `bind`).
    #[getter]
    fn bound(&self) -> Vec<String> {
        self.bound.keys().cloned().collect()
    }

    /// The model's warnings (as `Diagnostic`s).
    #[getter]
    fn warnings(&self) -> Vec<Diagnostic> {
        self.compiled
            .warnings
            .iter()
            .map(|d| Diagnostic::new(d, &self.source))
            .collect()
    }

    /// The protocol report, as `veil compile` prints it: per operation the
    /// protocol, why, its estimated cost and the runner-up; totals; what
    /// each party sees.
    fn report(&self) -> String {
        self.compiled.report.clone()
    }

    /// The plan as JSON (`veil compile --emit json`): a plan file for
    /// `veil run --plan` and `veil party --plan`.
    fn plan_json(&self) -> String {
        self.compiled.plan.to_json() + "\n"
    }

    /// Each party's program, readable (`veil compile --emit plan`).
    fn plan_text(&self) -> String {
        self.compiled.plan.to_text()
    }

    /// The dataflow graph in Graphviz DOT, coloured by protocol
    /// (`veil compile --emit dot`).
    fn dot(&self) -> String {
        self.compiled.dot.clone()
    }

    /// The dataflow graph with shapes, visibility and ranges
    /// (`veil compile --emit graph`).
    fn graph(&self) -> String {
        self.compiled.graph_text.clone()
    }

    /// A copy of this model with `inputs` bound in (such as a model owner's
    /// weights): `run` then needs only the others. Each is checked against
    /// the model (its shape and range).
    fn bind(&self, py: Python<'_>, inputs: &Bound<'_, PyDict>) -> PyResult<Model> {
        guard(|| {
            // Copied: the model keeps them, whatever becomes of the arrays.
            let given = tensors(py, Some(inputs))?;
            let errors = unknown_inputs(&self.plan, &given, &self.bound);
            if !errors.is_empty() {
                return Err(input_error(py, errors.join("\n")));
            }
            // Shapes and ranges of what is given, as far as they go alone.
            if let Err(errs) = plan::infer_dims(&self.plan, None, &plan::views(&given)) {
                let errs: Vec<String> = errs
                    .iter()
                    .filter(|e| given.contains_key(&e.input))
                    .map(ToString::to_string)
                    .collect();
                if !errs.is_empty() {
                    return Err(input_error(py, errs.join("\n")));
                }
            }
            let mut bound = self.bound.clone();
            bound.extend(given);
            Ok(self.with_bound(bound))
        })
    }

    /// Run the model privately in this process, every party on its own
    /// thread, as `veil run` does. `inputs`: `{name: array}` for every input
    /// not bound in the model. Returns `{party: {output: array}}`.
    ///
    /// With `check=True`, the plaintext reference interpreter runs on the
    /// same inputs too, and the result is a `CheckedRun` (the same dict,
    /// with `.reference`, `.errors` and `.worst`); an error beyond the
    /// compiler's bound raises `VeilError`.
    ///
    /// A C-contiguous float64 array is read where it is, not copied (any
    /// other array is converted once); the result is new arrays, which
    /// later changes to the inputs do not touch.
    ///
    /// The GIL is released while the parties run (do not write into an
    /// input array from another thread meanwhile); Ctrl-C stops the run and
    /// raises `KeyboardInterrupt`. `timeout`: seconds a party waits for a
    /// message; `max_memory`: bytes a party may need (refused above).
    #[pyo3(signature = (inputs = None, *, check = false, timeout = 120.0, max_memory = None))]
    fn run<'py>(
        &self,
        py: Python<'py>,
        inputs: Option<&Bound<'py, PyDict>>,
        check: bool,
        timeout: f64,
        max_memory: Option<u64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        guard(|| {
            let opts = exec_options(timeout, max_memory)?;
            // Borrowed from NumPy for the call (no copy), with the bound
            // inputs beside them.
            let given = given_all(py, inputs)?;
            let errors = unknown_inputs(&self.plan, &given, &self.bound);
            if !errors.is_empty() {
                return Err(input_error(py, errors.join("\n")));
            }
            let all = views(&self.bound, &given)?;
            // Names and shapes here (for the sizes to compile for); the
            // values' ranges are checked by each party as it binds its
            // inputs (one pass over the data, as in the cli's runs).
            let shapes: BTreeMap<String, TensorRef<'_>> = all
                .iter()
                .map(|(k, t)| {
                    let t = TensorRef {
                        shape: t.shape,
                        data: &[],
                    };
                    (k.clone(), t)
                })
                .collect();
            let dims = match plan::infer_dims(&self.plan, None, &shapes) {
                Ok(d) => d,
                Err(errs) => {
                    let errs: Vec<String> = errs.iter().map(ToString::to_string).collect();
                    return Err(input_error(py, errs.join("\n")));
                }
            };
            let plan = self.plan_for(py, dims.into_iter().map(|(k, v)| (k, v as u64)).collect())?;
            // Each party reads its inputs where they are (no copy of a
            // large `x`), the GIL released.
            let per_party = runtime::exec::inputs_per_party(&plan, &all);
            let (outcomes, seconds) = run_in_process(py, &plan, &per_party, &opts)?;
            *self.last.lock().expect("not poisoned") =
                Some((seconds, outcomes.iter().map(|o| o.stats.clone()).collect()));
            let reference = if check {
                let all: BTreeMap<String, Tensor> = all
                    .iter()
                    .map(|(k, t)| (k.clone(), t.to_tensor()))
                    .collect();
                let r = py
                    .detach(|| compiler::reference::expected(&self.model, &all))
                    .map_err(|e| {
                        plain_error(py, format!("the reference interpreter failed: {e}"))
                    })?;
                Some(r)
            } else {
                None
            };
            let comparison = reference.as_ref().map(|r| {
                let learned: Vec<&[(String, Tensor)]> =
                    outcomes.iter().map(|o| &o.outputs[..]).collect();
                compiler::reference::compare(&plan, &learned, r)
            });
            if let Some(c) = &comparison {
                if !c.over_bound.is_empty() {
                    return Err(plain_error(
                        py,
                        format!(
                            "{}\nthe private result differs from the plaintext reference by more than \
                             the compiler's bound: {}\nnote: this is a bug in Veil; please report it with the model file",
                            c.lines.join("\n"),
                            c.over_bound.join("; ")
                        ),
                    ));
                }
            }
            let out = PyDict::new(py);
            for (p, o) in outcomes.into_iter().enumerate() {
                if !o.outputs.is_empty() {
                    out.set_item(plan.party_name(p as u32), outputs_py(py, o.outputs)?)?;
                }
            }
            let (Some(reference), Some(c)) = (reference, comparison) else {
                return Ok(out.into_any());
            };
            let refs = PyDict::new(py);
            for r in reference {
                refs.set_item(r.name, array(py, r.value)?)?;
            }
            let errors = PyList::empty(py);
            for (name, party, _, err, bound, slack) in &c.entries {
                let e = PyDict::new(py);
                e.set_item("output", name)?;
                e.set_item("party", party)?;
                e.set_item("error", err)?;
                e.set_item("bound", bound)?;
                e.set_item("near_tie", slack)?;
                errors.append(e)?;
            }
            let text = format!(
                "{}\nmax error over all outputs: {:.3e}",
                c.lines.join("\n"),
                c.worst
            );
            py.import("veil")?
                .getattr("CheckedRun")?
                .call1((out, refs, errors, c.worst, text))
        })
    }

    /// The last `run`'s measurements, as `veil run --stats` prints them:
    /// `{"seconds": wall time of the parties' run, "parties": {party:
    /// {"bytes_sent", "bytes_received", "rounds", "setup", "preprocessing",
    /// "online"}}}` (times in seconds); `None` before the first run.
    #[getter]
    fn last_stats<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some((seconds, stats)) = self.last.lock().expect("not poisoned").clone() else {
            return Ok(None);
        };
        let parties = PyDict::new(py);
        for (p, s) in stats.iter().enumerate() {
            let d = PyDict::new(py);
            d.set_item("bytes_sent", s.bytes_sent)?;
            d.set_item("bytes_received", s.bytes_received)?;
            d.set_item("rounds", s.rounds)?;
            d.set_item("setup", s.setup.as_secs_f64())?;
            d.set_item("preprocessing", s.preprocessing.as_secs_f64())?;
            d.set_item("online", s.online.as_secs_f64())?;
            parties.set_item(self.plan.party_name(p as u32), d)?;
        }
        let out = PyDict::new(py);
        out.set_item("seconds", seconds)?;
        out.set_item("parties", parties)?;
        Ok(Some(out))
    }

    /// The report as an HTML table, for Jupyter.
    fn _repr_html_(&self) -> String {
        report_html(&self.plan.model, &self.compiled.report)
    }

    fn __repr__(&self) -> String {
        let parties: Vec<&str> = self.plan.parties.iter().map(|p| p.name.as_str()).collect();
        let inputs: Vec<String> = self
            .plan
            .inputs
            .iter()
            .map(|i| {
                if self.bound.contains_key(&i.name) {
                    format!("{} (bound)", i.name)
                } else {
                    i.name.clone()
                }
            })
            .collect();
        let outputs: Vec<&str> = self.plan.outputs.iter().map(|o| o.name.as_str()).collect();
        format!(
            "<veil.Model {}: parties {}; inputs {}; outputs {}>",
            self.plan.model,
            parties.join(", "),
            inputs.join(", "),
            outputs.join(", ")
        )
    }
}

/// Every party in this process over cancellable channels, the GIL released.
fn run_in_process(
    py: Python<'_>,
    plan: &Plan,
    per_party: &[BTreeMap<String, TensorRef<'_>>],
    opts: &runtime::exec::Options,
) -> PyResult<(Vec<Outcome>, f64)> {
    let valid = valid(plan).map_err(|e| plain_error(py, e))?;
    let stop = Arc::new(AtomicBool::new(false));
    let names: Vec<String> = plan.parties.iter().map(|p| p.name.clone()).collect();
    let transports: Vec<Cancellable<ChannelTransport>> =
        ChannelTransport::mesh(&names, opts.timeout)
            .into_iter()
            .map(|inner| Cancellable {
                inner,
                stop: stop.clone(),
            })
            .collect();
    let (result, seconds) = interruptible(py, &stop, || {
        let start = std::time::Instant::now();
        let r = runtime::exec::run_with_transports(&valid, per_party, transports, opts);
        (r, start.elapsed().as_secs_f64())
    })?;
    result.map(|o| (o, seconds)).map_err(|e| match e.kind {
        runtime::exec::ErrorKind::Input => input_error(py, format!("{e}\nnote: nothing was run")),
        _ => plain_error(py, format!("{e}\nnote: the run was stopped")),
    })
}

/// The report for Jupyter: its first line as the caption, the operations
/// as a table (operation, protocol, estimate, why, and any further detail
/// such as the polynomial), and the rest (conversions, outputs, totals,
/// leakage) as preformatted text below it.
fn report_html(model: &str, report: &str) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let mut lines = report.lines();
    let title = lines.next().unwrap_or(model);
    // (operation, protocol, estimate, why, details)
    let mut ops: Vec<[String; 5]> = Vec::new();
    let mut rest = String::new();
    let mut in_ops = false;
    for line in lines {
        if line == "operations:" {
            in_ops = true;
            continue;
        }
        if in_ops && !line.starts_with("  ") {
            in_ops = false;
        }
        if !in_ops {
            rest += line;
            rest += "\n";
            continue;
        }
        if let Some(detail) = line.strip_prefix("    ") {
            let Some(op) = ops.last_mut() else { continue };
            if let Some(e) = detail.strip_prefix("estimate ") {
                op[2] = e.to_string();
            } else if let Some(w) = detail.strip_prefix("because ") {
                op[3] = w.to_string();
            } else {
                if !op[4].is_empty() {
                    op[4] += "; ";
                }
                op[4] += detail.trim();
            }
        } else {
            let head = line.trim();
            let (what, how) = head.rsplit_once(": ").unwrap_or((head, ""));
            ops.push([
                what.to_string(),
                how.to_string(),
                String::new(),
                String::new(),
                String::new(),
            ]);
        }
    }
    let td = "style=\"text-align:left; vertical-align:top\"";
    let mut html = format!(
        "<div><p><b>{}</b></p>\n<table>\n<tr><th {td}>operation</th><th {td}>protocol</th>\
         <th {td}>estimate</th><th {td}>why</th><th {td}>detail</th></tr>\n",
        esc(title)
    );
    for op in &ops {
        html += "<tr>";
        for (i, cell) in op.iter().enumerate() {
            if i == 0 {
                html += &format!("<td {td}><code>{}</code></td>", esc(cell));
            } else {
                html += &format!("<td {td}>{}</td>", esc(cell));
            }
        }
        html += "</tr>\n";
    }
    html += &format!("</table>\n<pre>{}</pre></div>", esc(rest.trim()));
    html
}

/// Compile a model: `veil.compile(path)` or `veil.compile(source=text)`,
/// with the command line's compile options as keywords.
///
/// - `dealer=False`: as `--no-dealer`; `correlations="ot" | "paillier"`.
/// - `network="lan" | "wan"`, or `bandwidth=` (Mbit/s) with `latency=` (ms).
/// - `key_bits=3072`, `prefer="shares" | "paillier" | "rlwe"` (or
///   `"rlwe-masked"` / `"rlwe-prepared"`, as `--prefer`),
///   `assume={"batch": 10000}` (sizes assumed in estimates).
///
/// Raises `VeilError` (with `.diagnostics`) when the model has errors;
/// warnings are issued as `veil.VeilWarning`.
#[pyfunction]
#[pyo3(signature = (path = None, *, source = None, name = None, dealer = true, network = "lan", bandwidth = None, latency = None, correlations = None, key_bits = 3072, prefer = None, assume = None))]
#[allow(clippy::too_many_arguments)]
fn compile(
    py: Python<'_>,
    path: Option<PathBuf>,
    source: Option<String>,
    name: Option<String>,
    dealer: bool,
    network: &str,
    bandwidth: Option<f64>,
    latency: Option<f64>,
    correlations: Option<&str>,
    key_bits: u32,
    prefer: Option<&str>,
    assume: Option<BTreeMap<String, u64>>,
) -> PyResult<Model> {
    guard(|| {
        let (source, file) = match (path, source) {
            (Some(p), None) => {
                let text = std::fs::read_to_string(&p).map_err(|e| {
                    pyo3::exceptions::PyOSError::new_err(format!(
                        "cannot read `{}`: {e}",
                        p.display()
                    ))
                })?;
                (text, name.unwrap_or_else(|| p.display().to_string()))
            }
            (None, Some(s)) => (s, name.unwrap_or_else(|| "<source>".into())),
            (Some(_), Some(_)) => {
                return Err(pyo3::exceptions::PyTypeError::new_err(
                    "give a path or source=, not both",
                ))
            }
            (None, None) => {
                return Err(pyo3::exceptions::PyTypeError::new_err(
                    "give a model file's path, or its text as source=",
                ))
            }
        };
        let opts = options(
            dealer,
            network,
            bandwidth,
            latency,
            correlations,
            key_bits,
            prefer,
            assume,
        )
        .map_err(pyo3::exceptions::PyValueError::new_err)?;
        let (model, compiled) = compile_source(py, &source, &file, &opts)?;
        let plan = Arc::new(compiled.plan.clone());
        Ok(Model {
            source,
            file,
            options: opts,
            model,
            compiled,
            plan,
            bound: BTreeMap::new(),
            sized: Mutex::new(None),
            last: Mutex::new(None),
        })
    })
}

/// Translate an ONNX model as `veil import` does (`onnx::fit`): returns
/// `(source, {weight: array}, notes)`; `veil.import_onnx` compiles it and
/// binds the weights. External data files are read from the model's folder.
#[pyfunction]
#[pyo3(signature = (path, *, calibrate = None, ranges = None, dealer = true, data_owner = "client", model_owner = "server", precision = None))]
#[allow(clippy::too_many_arguments)]
#[allow(clippy::type_complexity)]
fn _import_onnx<'py>(
    py: Python<'py>,
    path: PathBuf,
    calibrate: Option<&Bound<'py, PyDict>>,
    ranges: Option<BTreeMap<String, (f64, f64)>>,
    dealer: bool,
    data_owner: &str,
    model_owner: &str,
    precision: Option<u32>,
) -> PyResult<(String, Bound<'py, PyDict>, Vec<String>)> {
    guard(|| {
        let bytes = std::fs::read(&path).map_err(|e| {
            pyo3::exceptions::PyOSError::new_err(format!("cannot read `{}`: {e}", path.display()))
        })?;
        let folder = path
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default();
        let opts = onnx::Options {
            data_owner: data_owner.into(),
            model_owner: model_owner.into(),
            dealer: dealer.then(|| "helper".to_string()),
            ranges: ranges.unwrap_or_default(),
            calibration: tensors(py, calibrate)?,
            precision: precision.unwrap_or(onnx::DEFAULT_PRECISION),
            name: None,
            source_name: path
                .file_name()
                .map(|f| f.to_string_lossy().to_string())
                .unwrap_or_default(),
            clamps: BTreeMap::new(),
        };
        // Only files inside the model's folder (as `veil import`).
        let mut external = |location: &str| -> Result<Vec<u8>, String> {
            let rel = std::path::Path::new(location);
            if rel.is_absolute()
                || rel
                    .components()
                    .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                return Err("the location must be a path inside the model's folder".into());
            }
            std::fs::read(folder.join(rel)).map_err(|e| e.to_string())
        };
        let precisions = match precision {
            Some(p) => vec![p],
            None => onnx::fit::PRECISIONS.to_vec(),
        };
        let file = path.display().to_string();
        let fitted = py
            .detach(|| onnx::fit::import_compiling(&bytes, &mut external, &opts, &precisions))
            .map_err(|e| match e {
                onnx::fit::FitError::Import(e) => plain_error(py, format!("{file}: {e}")),
                onnx::fit::FitError::NotChecked { diagnostics, source } => diagnostics_error(
                    py,
                    format!("the model translated from `{file}` does not check (a bug: please report it with the model)\n{}", grammar::render(&diagnostics, &file, &source)),
                    &diagnostics,
                    &source,
                ),
                onnx::fit::FitError::DoesNotCompile { diagnostics, source } => diagnostics_error(
                    py,
                    format!("the model imported from `{file}` does not compile: narrow the data ranges (calibrate= or ranges=)\n{}", grammar::render(&diagnostics, &file, &source)),
                    &diagnostics,
                    &source,
                ),
                onnx::fit::FitError::Internal(m) => plain_error(py, format!("{file}: {m}")),
            })?;
        let mut notes = fitted.imported.warnings.clone();
        if fitted.clamped > 0 {
            notes.push(format!(
                "each of the model's {} relu activations is clamped at its maximum on the calibration sample, widened by {}%",
                fitted.clamped,
                onnx::CALIBRATION_MARGIN * 100.0
            ));
        }
        let weights = PyDict::new(py);
        for (name, t) in fitted.imported.weights {
            weights.set_item(name, array(py, t)?)?;
        }
        Ok((fitted.imported.source, weights, notes))
    })
}

/// Run one party of `model` over the network, as `veil party` does:
/// `as_` names the party, `config` the deployment file (`parties.toml`,
/// see docs/deployment.md), `inputs` this party's inputs (its own and the
/// public ones; the model's bound inputs of this party are used too).
/// Every party must compile the same model with the same options. Returns
/// this party's outputs, `{output: array}`.
#[pyfunction]
#[pyo3(signature = (model, *, as_, config, inputs = None, session = "default", timeout = 120.0, connect_timeout = 60.0, max_frame_mib = 1024, chunk_rows = None))]
#[allow(clippy::too_many_arguments)]
fn party<'py>(
    py: Python<'py>,
    model: &Model,
    as_: &str,
    config: PathBuf,
    inputs: Option<&Bound<'py, PyDict>>,
    session: &str,
    timeout: f64,
    connect_timeout: f64,
    max_frame_mib: u64,
    chunk_rows: Option<u64>,
) -> PyResult<Bound<'py, PyDict>> {
    guard(|| {
        let plan = &model.plan;
        let Some(me) = plan.parties.iter().position(|p| p.name == as_) else {
            let names: Vec<&str> = plan.parties.iter().map(|p| p.name.as_str()).collect();
            return Err(input_error(
                py,
                format!(
                    "as_={as_:?}: the model has no such party (its parties: {})",
                    names.join(", ")
                ),
            ));
        };
        let me = me as plan::PartyIdx;
        if !plan.takes_part(me) {
            return Err(input_error(
                py,
                format!("as_={as_:?}: {as_} takes no part in this plan (it was compiled without a dealer)"),
            ));
        }
        if !(connect_timeout > 0.0 && connect_timeout.is_finite()) {
            return Err(InputError::new_err("connect_timeout: seconds, more than 0"));
        }
        if !(1..=4095).contains(&max_frame_mib) {
            return Err(InputError::new_err("max_frame_mib: 1 to 4095"));
        }
        let mut opts = exec_options(timeout, None)?;
        // The chunks' sessions continue one OT extension (as `veil party`).
        opts.ot_link = Some(std::sync::Arc::new(runtime::exec::OtLink::new()));
        // And its RLWE weights made ready once for all of them.
        opts.rlwe_weights = Some(std::sync::Arc::new(runtime::exec::WeightCache::new(
            runtime::exec::WeightCache::DEFAULT_BYTES,
        )));
        // This party's inputs: given, or bound in the model (its own and
        // the public ones only: another party's bound values stay here).
        let given = given_all(py, inputs)?;
        let errors = unknown_inputs(plan, &given, &model.bound);
        if !errors.is_empty() {
            return Err(input_error(py, errors.join("\n")));
        }
        for name in given.keys() {
            let spec = plan.inputs.iter().find(|i| &i.name == name).expect("known");
            if let plan::Owner::Party(p) = spec.owner {
                if p != me {
                    return Err(input_error(
                        py,
                        format!(
                            "input `{name}` belongs to {}, not {as_}: each party gives only its own",
                            plan.party_name(p)
                        ),
                    ));
                }
            }
        }
        let mine = views(
            model.bound.iter().filter(|(n, _)| {
                plan.inputs.iter().any(|i| {
                    &i.name == *n
                        && (i.owner == plan::Owner::Public || i.owner == plan::Owner::Party(me))
                })
            }),
            &given,
        )?;
        if plan.parties[me as usize].role == plan::Role::Dealer && !mine.is_empty() {
            return Err(input_error(
                py,
                format!("{as_} is the dealer: it takes no inputs"),
            ));
        }
        if let Err(errs) = plan::infer_dims(plan, Some(me), &mine) {
            let errs: Vec<String> = errs.iter().map(ToString::to_string).collect();
            return Err(input_error(py, errs.join("\n")));
        }
        let text = std::fs::read_to_string(&config).map_err(|e| {
            pyo3::exceptions::PyOSError::new_err(format!("cannot read `{}`: {e}", config.display()))
        })?;
        let read = |p: &Path| std::fs::read(p);
        let d = net::deployment::load(&text, &config, plan, as_, &read)
            .map_err(|e| input_error(py, e))?;
        let tcp = net::TcpConfig {
            me,
            parties: d.parties,
            key: d.key,
            listen: d.listen,
            plan: plan.fingerprint(),
            session: session.to_string(),
            connect_timeout: Duration::from_secs_f64(connect_timeout),
            io_timeout: opts.timeout,
            max_frame: (max_frame_mib as usize) << 20,
            log: None,
        };
        let valid = valid(plan).map_err(|e| plain_error(py, e))?;
        let stop = Arc::new(AtomicBool::new(false));
        // A plan whose rows are independent runs as `veil party` runs it:
        // in chunks the parties agree on, so either can be a peer.
        let rows = runtime::exec::chunks::row_dim(plan).ok().flatten();
        let outputs = interruptible(py, &stop, || {
            let inner = net::TcpTransport::connect(&tcp).map_err(ExecError::from)?;
            let mut t = Cancellable {
                inner,
                stop: stop.clone(),
            };
            match &rows {
                None => {
                    runtime::exec::run_party(&valid, me, &mine, &mut t, &opts).map(|o| o.outputs)
                }
                Some(dim) => party_in_chunks(&valid, me, &mine, dim, chunk_rows, &mut t, &opts),
            }
        })?
        .map_err(|e| plain_error(py, format!("{as_}: {e}")))?;
        outputs_py(py, outputs)
    })
}

/// One party's run of a plan whose rows (along `dim`) are independent, as
/// `veil party` runs it (cli/src/party_cmd.rs): the parties agree on the
/// rows of a chunk (this party's rows, or `chunk_rows`, or 0 when it reads
/// none), then before each chunk on its rows; each chunk is a run of the
/// plan with fresh correlations. This party's outputs, the chunks' rows
/// one after another.
fn party_in_chunks(
    plan: &plan::ValidPlan<'_>,
    me: plan::PartyIdx,
    inputs: &BTreeMap<String, TensorRef<'_>>,
    dim: &str,
    chunk_rows: Option<u64>,
    t: &mut dyn Transport,
    opts: &runtime::exec::Options,
) -> Result<Vec<(String, Tensor)>, ExecError> {
    use runtime::exec::chunks;
    let row_inputs: Vec<&String> = plan
        .inputs
        .iter()
        .filter(|i| matches!(i.shape.0.first(), Some(plan::Dim::Symbol(s)) if s == dim))
        .filter_map(|i| inputs.get_key_value(&i.name).map(|(k, _)| k))
        .collect();
    let total = row_inputs.first().map_or(0, |n| inputs[*n].shape[0]);
    let reads_rows = !row_inputs.is_empty();
    let said = match (chunk_rows, reads_rows) {
        (Some(n), _) => n,
        (None, true) => total.max(1) as u64,
        (None, false) => 0,
    };
    let agreed = chunks::agree_chunking(plan, me, said, t).map_err(ExecError::protocol)?;
    let chunk = agreed.max(1) as usize;
    let mut done = 0usize;
    let mut outputs: Vec<(String, Tensor)> = Vec::new();
    loop {
        let mine = reads_rows.then(|| (total - done).min(chunk) as u64);
        let n = chunks::next_rows(plan, me, mine, done as u64, t).map_err(ExecError::protocol)?
            as usize;
        if n == 0 {
            break;
        }
        // The chunk's rows of each input that has them, borrowed.
        let shapes: BTreeMap<&String, Vec<usize>> = row_inputs
            .iter()
            .map(|k| {
                let mut shape = inputs[*k].shape.to_vec();
                shape[0] = n;
                (*k, shape)
            })
            .collect();
        let part = inputs
            .iter()
            .map(|(k, v)| {
                let v = match shapes.get(k) {
                    Some(shape) => rows_of(*v, done, shape)?,
                    None => *v,
                };
                Ok((k.clone(), v))
            })
            .collect::<Result<BTreeMap<String, TensorRef<'_>>, ExecError>>()?;
        let o = runtime::exec::run_party(plan, me, &part, t, opts).map_err(|e| {
            let at = format!("(in the chunk of rows {}..{})", done + 1, done + n);
            ExecError::new(e.kind, format!("{} {at}", e.message))
        })?;
        for (name, t) in o.outputs {
            match outputs.iter_mut().find(|(m, _)| *m == name) {
                Some((_, all)) => {
                    all.data.extend_from_slice(&t.data);
                    if let (Some(a), Some(b)) = (all.shape.first_mut(), t.shape.first()) {
                        *a += b;
                    }
                }
                None => outputs.push((name, t)),
            }
        }
        done += n;
    }
    Ok(outputs)
}

/// Rows `start..` of a tensor (along its first dimension), as many as
/// `shape` (the chunk's) says, borrowed.
fn rows_of<'a>(
    t: TensorRef<'a>,
    start: usize,
    shape: &'a [usize],
) -> Result<TensorRef<'a>, ExecError> {
    let row: usize = shape.iter().skip(1).product();
    let n = shape.first().copied().unwrap_or(0);
    let data = t.data.get(start * row..(start + n) * row).ok_or_else(|| {
        ExecError::protocol("the parties agreed on rows this party does not have")
    })?;
    TensorRef::new(shape, data).map_err(ExecError::protocol)
}

/// The address of the values a run would read for `value` as an input:
/// the array's own data when it is borrowed, a converted copy's otherwise
/// (for the tests that C-contiguous float64 arrays are not copied).
#[pyfunction]
fn _input_address_for_tests(py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<usize> {
    guard(|| {
        let g = given(py, "value", value)?;
        Ok(g.view()?.data.as_ptr() as usize)
    })
}

/// Raises the error a panic inside Veil becomes (for the tests of that path).
#[pyfunction]
fn _panic_for_tests() -> PyResult<()> {
    guard(|| panic!("a panic raised on purpose by _panic_for_tests"))
}

#[pymodule]
fn _veil(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // SAFETY: sets a plain integer option (see cli/src/main.rs).
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DECOMMITS, 0) };
    m.add_function(wrap_pyfunction!(compile, m)?)?;
    m.add_function(wrap_pyfunction!(party, m)?)?;
    m.add_function(wrap_pyfunction!(_import_onnx, m)?)?;
    m.add_function(wrap_pyfunction!(_panic_for_tests, m)?)?;
    m.add_function(wrap_pyfunction!(_input_address_for_tests, m)?)?;
    m.add_class::<Model>()?;
    m.add_class::<Diagnostic>()?;
    m.add("VeilError", m.py().get_type::<VeilError>())?;
    m.add("InputError", m.py().get_type::<InputError>())?;
    Ok(())
}
