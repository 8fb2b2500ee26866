//! `validate`: the plan's internal consistency. Every failure is a compiler
//! bug, reported with the party and instruction.

use crate::*;
use std::collections::HashSet;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationError {
    pub party: Option<String>,
    pub instr: Option<usize>,
    pub message: String,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.party, self.instr) {
            (Some(p), Some(i)) => write!(f, "{p}, instruction {i}: {}", self.message),
            (Some(p), None) => write!(f, "{p}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ValidationError {}

/// A plan that [`validate`] accepted: the only form of plan the executor
/// runs. Its one constructor is [`validate`], so holding one means the plan
/// is internally consistent (the runtime indexes with its registers and
/// parties without checking them again). It borrows the plan and derefs
/// to it. Nothing else can make one:
///
/// ```compile_fail
/// fn forge(plan: &plan::Plan) -> plan::ValidPlan<'_> {
///     plan::ValidPlan(plan)
/// }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct ValidPlan<'a>(&'a Plan);

impl<'a> ValidPlan<'a> {
    /// The plan itself, for as long as it is borrowed.
    pub fn plan(self) -> &'a Plan {
        self.0
    }
}

/// A validated plan that shares its plan: for a holder that validates once
/// and runs many sessions (a service), where a borrowed [`ValidPlan`] would
/// have to be made again for each.
#[derive(Clone, Debug)]
pub struct SharedValidPlan(std::sync::Arc<Plan>);

impl SharedValidPlan {
    /// Validates `plan` ([`validate`]) and keeps it.
    pub fn new(plan: std::sync::Arc<Plan>) -> Result<SharedValidPlan, Vec<ValidationError>> {
        validate(&plan)?;
        Ok(SharedValidPlan(plan))
    }

    /// The witness the executor accepts, borrowed from this one.
    pub fn valid(&self) -> ValidPlan<'_> {
        ValidPlan(&self.0)
    }

    /// The plan itself.
    pub fn plan(&self) -> &std::sync::Arc<Plan> {
        &self.0
    }
}

impl std::ops::Deref for ValidPlan<'_> {
    type Target = Plan;
    fn deref(&self) -> &Plan {
        self.0
    }
}

/// Check that every register read was written before at that party, every
/// `Recv` has its `Send` with matching kinds and shapes, no party talks to
/// itself or deadlocks, the dealer touches no input or output, and every
/// output reaches exactly its addressees. The witness it returns is what
/// the executor accepts.
pub fn validate(plan: &Plan) -> Result<ValidPlan<'_>, Vec<ValidationError>> {
    let mut errors = Vec::new();
    let err = |party: Option<PartyIdx>, instr: Option<usize>, message: String| ValidationError {
        party: party.map(|p| {
            plan.parties
                .get(p as usize)
                .map_or(format!("party {p}"), |x| x.name.clone())
        }),
        instr,
        message,
    };
    if plan.programs.len() != plan.parties.len() {
        errors.push(err(
            None,
            None,
            format!(
                "{} programs for {} parties",
                plan.programs.len(),
                plan.parties.len()
            ),
        ));
        return Err(errors);
    }
    // Indices and operand counts first: the checks below (and the runtime)
    // index with them.
    check_structure(plan, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    for (i, prog) in plan.programs.iter().enumerate() {
        let p = i as PartyIdx;
        if prog.party != p {
            errors.push(err(
                Some(p),
                None,
                format!("program {i} claims party {}", prog.party),
            ));
        }
        let dealer = plan.parties[i].role == Role::Dealer;
        let mut defined: HashSet<Reg> = HashSet::new();
        for (at, ins) in prog.instrs.iter().enumerate() {
            for r in ins.reads().into_iter().chain(ins.writes()) {
                if r.0 as usize >= plan.regs.len() {
                    errors.push(err(
                        Some(p),
                        Some(at),
                        format!("register {r} does not exist"),
                    ));
                }
            }
            for r in ins.reads() {
                if !defined.contains(&r) {
                    errors.push(err(
                        Some(p),
                        Some(at),
                        format!("reads {r} before writing it"),
                    ));
                }
            }
            defined.extend(ins.writes());
            match ins {
                Instr::Send { to, .. }
                | Instr::Recv { from: to, .. }
                | Instr::Nonlinear { peer: to, .. }
                    if *to == p =>
                {
                    errors.push(err(Some(p), Some(at), "talks to itself".into()));
                }
                Instr::Send { to, .. } | Instr::Recv { from: to, .. }
                    if *to as usize >= plan.parties.len() =>
                {
                    errors.push(err(
                        Some(p),
                        Some(at),
                        format!("talks to unknown party {to}"),
                    ));
                }
                Instr::Input { input, dst } => match plan.inputs.get(*input as usize) {
                    None => errors.push(err(Some(p), Some(at), format!("unknown input {input}"))),
                    Some(spec) => {
                        if dealer
                            || !matches!(spec.owner, Owner::Public) && spec.owner != Owner::Party(p)
                        {
                            errors.push(err(
                                Some(p),
                                Some(at),
                                format!("binds input `{}` it does not own", spec.name),
                            ));
                        }
                        if let Some(info) = plan.regs.get(dst.0 as usize) {
                            if info.shape != spec.shape {
                                errors.push(err(
                                    Some(p),
                                    Some(at),
                                    format!(
                                        "input `{}` has shape {}, register {}",
                                        spec.name, spec.shape, info.shape
                                    ),
                                ));
                            }
                        }
                    }
                },
                Instr::RlwePrepareRespond {
                    weights, dst, w, ..
                }
                | Instr::RlweRespond {
                    weights: Some(weights),
                    dst,
                    w,
                    ..
                } => {
                    // A convolution's kernels `[Cout, C, kh, kw]` for its
                    // `W` `[C kh kw, Cout]`: as many entries.
                    let conv = matches!(ins, Instr::RlweRespond { conv: Some(_), .. });
                    match plan.inputs.get(*weights as usize) {
                        None => errors.push(err(
                            Some(p),
                            Some(at),
                            format!("prepares an RLWE product with unknown input {weights}"),
                        )),
                        Some(spec) if dealer || spec.owner != Owner::Party(p) => errors.push(err(
                            Some(p),
                            Some(at),
                            format!(
                                "prepares an RLWE product with input `{}` it does not own",
                                spec.name
                            ),
                        )),
                        Some(spec) => {
                            let known = |s: &crate::Shape| {
                                s.0.iter().try_fold(1u64, |n, d| match d {
                                    crate::Dim::Known(k) => n.checked_mul(*k),
                                    crate::Dim::Symbol(_) => None,
                                })
                            };
                            if plan.regs.get(w.0 as usize).is_some_and(|i| {
                                if conv {
                                    known(&i.shape).is_none()
                                        || known(&i.shape) != known(&spec.shape)
                                        || spec.shape.0.len() != 4
                                } else {
                                    i.shape != spec.shape
                                }
                            }) {
                                errors.push(err(
                                    Some(p),
                                    Some(at),
                                    format!(
                                        "prepares an RLWE product with input `{}` of shape {} in register {w}",
                                        spec.name, spec.shape
                                    ),
                                ));
                            }
                        }
                    }
                    for r in [dst, w] {
                        if r.0 as usize >= plan.regs.len() {
                            errors.push(err(
                                Some(p),
                                Some(at),
                                format!("register {r} does not exist"),
                            ));
                        }
                    }
                }
                Instr::RlwePrepare { x, dst, .. }
                | Instr::RlwePrepareFinish { response: x, dst } => {
                    for r in [x, dst] {
                        if r.0 as usize >= plan.regs.len() {
                            errors.push(err(
                                Some(p),
                                Some(at),
                                format!("register {r} does not exist"),
                            ));
                        }
                    }
                }
                Instr::Output { output, src } => match plan.outputs.get(*output as usize) {
                    None => errors.push(err(Some(p), Some(at), format!("unknown output {output}"))),
                    Some(spec) => {
                        if !spec.to.contains(&p) {
                            errors.push(err(
                                Some(p),
                                Some(at),
                                format!("learns output `{}` not addressed to it", spec.name),
                            ));
                        }
                        if let Some(info) = plan.regs.get(src.0 as usize) {
                            if info.shape != spec.shape || info.kind != Kind::Clear {
                                errors.push(err(
                                    Some(p),
                                    Some(at),
                                    format!(
                                        "output `{}` from a non-clear or misshapen register",
                                        spec.name
                                    ),
                                ));
                            }
                        }
                    }
                },
                _ => {}
            }
        }
    }
    for (o, spec) in plan.outputs.iter().enumerate() {
        for &p in &spec.to {
            let learns = plan.programs[p as usize]
                .instrs
                .iter()
                .any(|i| matches!(i, Instr::Output { output, .. } if *output as usize == o));
            if !learns {
                errors.push(err(
                    Some(p),
                    None,
                    format!("never learns its output `{}`", spec.name),
                ));
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    check_messages(plan, &mut errors);
    if let Err(blocked) = simulate(plan) {
        for (p, at) in blocked {
            errors.push(err(
                Some(p),
                Some(at),
                "waits for a message that is never sent (deadlock)".into(),
            ));
        }
    }
    if errors.is_empty() {
        Ok(ValidPlan(plan))
    } else {
        Err(errors)
    }
}

/// Pair the n-th send from A to B with the n-th receive at B from A and
/// compare what is sent with what is expected.
fn check_messages(plan: &Plan, errors: &mut Vec<ValidationError>) {
    let n = plan.parties.len();
    for a in 0..n {
        for b in 0..n {
            let sends: Vec<&Vec<Reg>> = plan.programs[a]
                .instrs
                .iter()
                .filter_map(|i| match i {
                    Instr::Send { to, regs } if *to as usize == b => Some(regs),
                    _ => None,
                })
                .collect();
            let recvs: Vec<&Vec<Reg>> = plan.programs[b]
                .instrs
                .iter()
                .filter_map(|i| match i {
                    Instr::Recv { from, regs } if *from as usize == a => Some(regs),
                    _ => None,
                })
                .collect();
            let name = |p: usize| plan.parties[p].name.clone();
            if sends.len() != recvs.len() {
                errors.push(ValidationError {
                    party: Some(name(a)),
                    instr: None,
                    message: format!(
                        "sends {} messages to {}, which receives {}",
                        sends.len(),
                        name(b),
                        recvs.len()
                    ),
                });
                continue;
            }
            for (k, (s, r)) in sends.iter().zip(&recvs).enumerate() {
                let compatible = s.len() == r.len()
                    && s.iter().zip(r.iter()).all(|(x, y)| {
                        let (x, y) = (plan.reg(*x), plan.reg(*y));
                        x.shape == y.shape && x.kind == y.kind
                    });
                if !compatible {
                    errors.push(ValidationError {
                        party: Some(name(a)),
                        instr: None,
                        message: format!(
                            "message {k} to {} does not match what it expects",
                            name(b)
                        ),
                    });
                }
            }
        }
    }
}

/// Operands an operation reads, at least.
fn arity_clear(op: &ClearOp) -> usize {
    match op {
        ClearOp::Add
        | ClearOp::Sub
        | ClearOp::Mul
        | ClearOp::MatMul
        | ClearOp::Max
        | ClearOp::Min => 2,
        _ => 1,
    }
}

fn arity_share(op: &ShareOp) -> usize {
    match op {
        ShareOp::Neg
        | ShareOp::Sum
        | ShareOp::MulInt(_)
        | ShareOp::Broadcast
        | ShareOp::Permute(_)
        | ShareOp::Reshape
        | ShareOp::Im2col(_)
        | ShareOp::Concat
        | ShareOp::Narrow { .. } => 1,
        _ => 2,
    }
}

fn arity_hom(op: &HomOp) -> usize {
    match op {
        HomOp::Neg | HomOp::Sum => 1,
        _ => 2,
    }
}

fn arity_nonlinear(op: &NonlinearOp) -> usize {
    match op {
        NonlinearOp::Max | NonlinearOp::Min => 2,
        _ => 1,
    }
}

/// Every party, input, output and correlation index in range, every
/// operation with its operands, the dealer's message one per computing
/// party. A plan the compiler wrote always passes; a hand-edited plan file
/// may not.
/// Whether a convolution triple's kernel `rhs` fits its `input` and
/// window, as far as their sizes are numbers (the batch may be named): one
/// group takes `[C·K, O]`, groups `[groups·per_group, C/groups·K]`.
fn conv_fits(input: &Shape, window: &crate::Window, rhs: &Shape) -> Result<(), String> {
    let known = |d: &Dim| match d {
        Dim::Known(k) => usize::try_from(*k).ok(),
        Dim::Symbol(_) => None,
    };
    // The batch does not change the patches' width: one image stands in.
    let Some(rest) = input
        .0
        .get(1..)
        .and_then(|r| r.iter().map(known).collect::<Option<Vec<_>>>())
    else {
        return Ok(());
    };
    let image: Vec<usize> = std::iter::once(1).chain(rest).collect();
    let width = *window.out_shape(&image)?.last().unwrap_or(&0);
    let dims: Vec<Option<usize>> = rhs.0.iter().map(known).collect();
    let want = if window.groups > 1 {
        [window.groups.checked_mul(window.per_group), Some(width)]
    } else {
        [Some(width), None]
    };
    let fits = dims.len() == 2
        && dims
            .iter()
            .zip(want)
            .all(|(d, w)| d.is_none() || w.is_none() || *d == w);
    if fits {
        Ok(())
    } else if window.groups > 1 {
        Err(format!(
            "{} groups of {} output channels, patches of {width}: the kernel must be [{}, {width}]",
            window.groups,
            window.per_group,
            window.groups.saturating_mul(window.per_group)
        ))
    } else {
        Err(format!(
            "patches of {width}: the kernel must be [{width}, out_channels]"
        ))
    }
}

fn check_structure(plan: &Plan, errors: &mut Vec<ValidationError>) {
    let n = plan.parties.len();
    let party_ok = |p: PartyIdx| (p as usize) < n;
    let mut top = |message: String| {
        errors.push(ValidationError {
            party: None,
            instr: None,
            message,
        })
    };
    for i in &plan.inputs {
        if let Owner::Party(p) = i.owner {
            if !party_ok(p) {
                top(format!("input `{}` is owned by unknown party {p}", i.name));
            }
        }
        if !i.columns.is_empty() {
            let k = match i.shape.0.last() {
                Some(Dim::Known(k)) => Some(*k),
                _ => None,
            };
            if k != Some(i.columns.len() as u64) {
                top(format!(
                    "input `{}` of shape {} has {} column ranges",
                    i.name,
                    i.shape,
                    i.columns.len()
                ));
            }
            let (lo, hi) = i.range;
            if i.columns
                .iter()
                .any(|&(l, h)| !(lo <= l && l <= h && h <= hi))
            {
                top(format!(
                    "input `{}` has a column range outside its range or empty",
                    i.name
                ));
            }
        }
    }
    for o in &plan.outputs {
        for &p in &o.to {
            if !party_ok(p) {
                top(format!("output `{}` goes to unknown party {p}", o.name));
            }
        }
    }
    if let RandomnessSource::Dealer(d) = plan.randomness {
        if !party_ok(d) {
            top(format!("the dealer is unknown party {d}"));
        }
    }
    for k in &plan.keys {
        if !party_ok(k.owner) || !party_ok(k.peer) {
            top(format!(
                "a Paillier key between unknown parties {} and {}",
                k.owner, k.peer
            ));
        }
    }
    for c in &plan.correlations {
        if let Correlation::HolderMatMul { lhs_holder, .. }
        | Correlation::HolderConv { lhs_holder, .. } = c
        {
            if !party_ok(*lhs_holder) {
                top(format!("a correlation held by unknown party {lhs_holder}"));
            }
        }
        if let Correlation::Conv { input, window, rhs }
        | Correlation::HolderConv {
            input, window, rhs, ..
        } = c
        {
            if let Err(e) = conv_fits(input, window, rhs) {
                top(format!(
                    "a convolution triple of {input} by {rhs} does not fit its window: {e}"
                ));
            }
        }
    }
    let computing = plan
        .parties
        .iter()
        .filter(|p| p.role == Role::Compute)
        .count();
    for (i, prog) in plan.programs.iter().enumerate() {
        for (at, ins) in prog.instrs.iter().enumerate() {
            let mut bad = |message: String| {
                errors.push(ValidationError {
                    party: Some(plan.parties[i].name.clone()),
                    instr: Some(at),
                    message,
                })
            };
            match ins {
                Instr::Send { to: q, .. }
                | Instr::Recv { from: q, .. }
                | Instr::Nonlinear { peer: q, .. }
                | Instr::GenerateCorrelations { peer: q, .. }
                    if !party_ok(*q) =>
                {
                    bad(format!("talks to unknown party {q}"))
                }
                _ => {}
            }
            match ins {
                Instr::HolderOpen { corr, .. }
                | Instr::HolderClose { corr, .. }
                | Instr::BeaverOpen { corr, .. }
                | Instr::BeaverClose { corr, .. }
                | Instr::TruncOpen { corr, .. }
                | Instr::TruncClose { corr, .. }
                    if *corr as usize >= plan.correlations.len() =>
                {
                    bad(format!(
                        "uses correlation #{corr}, but the plan has {}",
                        plan.correlations.len()
                    ))
                }
                _ => {}
            }
            match ins {
                Instr::RlweQuery { w_bits, .. }
                | Instr::RlweRespond { w_bits, .. }
                | Instr::RlwePrepare { w_bits, .. }
                | Instr::RlwePrepareRespond { w_bits, .. }
                    if !(1..=params::RLWE_MAX_W_BITS).contains(w_bits) =>
                {
                    bad(format!(
                        "an RLWE product with {w_bits}-bit plaintext entries (1 to {} allowed)",
                        params::RLWE_MAX_W_BITS
                    ))
                }
                _ => {}
            }
            match ins {
                Instr::RlweQuery {
                    conv: Some(_),
                    prepared: true,
                    ..
                }
                | Instr::RlweRespond {
                    conv: Some(_),
                    prepared: true,
                    ..
                } => bad("a prepared RLWE convolution (only products are prepared)".into()),
                Instr::RlweRespond {
                    weights: Some(_),
                    add,
                    prepared,
                    ..
                } if add.is_some() || *prepared => bad(
                    "a masked RLWE product's preprocessing with a share of x or a prepared query (it takes neither)".into(),
                ),
                Instr::RlweQuery { conv: Some(w), .. }
                | Instr::RlweRespond { conv: Some(w), .. }
                    if !w.is_homconv() =>
                {
                    bad(format!(
                        "an RLWE convolution over {} (only 2-D, one group, dilation 1, zero padding)",
                        w.kernel.len()
                    ))
                }
                _ => {}
            }
            let (want, got) = match ins {
                Instr::Clear { op, args, .. } => (arity_clear(op), args.len()),
                Instr::Local { op, args, .. } => (arity_share(op), args.len()),
                Instr::Hom { op, args, .. } => (arity_hom(op), args.len()),
                Instr::Nonlinear { op, args, bits, .. } => {
                    if !(1..=crate::params::COMPARE_FULL_BITS).contains(bits) {
                        bad(format!(
                            "compares values within 2^{bits} (1 to {} bits)",
                            crate::params::COMPARE_FULL_BITS
                        ));
                    }
                    (arity_nonlinear(op), args.len())
                }
                Instr::Deal { out, .. } if out.len() != computing => {
                    bad(format!(
                        "deals {} messages for {computing} computing parties",
                        out.len()
                    ));
                    (0, 0)
                }
                _ => (0, 0),
            };
            if got < want {
                bad(format!("has {got} operands, needs {want}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A convolution triple's kernel must fit its window: `[C·K, O]` with
    /// one group, `[groups·per_group, C/groups·K]` with groups (the batch
    /// may be named); one that does not is refused with both shapes named.
    #[test]
    fn a_convolution_triple_whose_kernel_does_not_fit_is_refused() {
        let shape = |dims: &[u64]| {
            Shape(
                std::iter::once(Dim::Symbol("batch".into()))
                    .chain(dims.iter().map(|&d| Dim::Known(d)))
                    .collect(),
            )
        };
        let known = |dims: &[u64]| Shape(dims.iter().map(|&d| Dim::Known(d)).collect());
        let window = |groups: usize, per_group: usize| Window {
            kernel: vec![3, 3],
            stride: vec![1, 1],
            padding: vec![1, 1],
            dilation: vec![1, 1],
            groups,
            per_group,
            edge: false,
            extra: vec![],
        };
        let conv_errors = |window: Window, rhs: Shape| {
            let mut plan = crate::fingerprint::tests::echo_plan();
            plan.correlations.push(Correlation::Conv {
                input: shape(&[4, 6, 6]),
                window,
                rhs,
            });
            let mut errors = Vec::new();
            check_structure(&plan, &mut errors);
            errors
                .into_iter()
                .map(|e| e.message)
                .filter(|m| m.contains("convolution triple"))
                .collect::<Vec<_>>()
        };
        // One group: 4 channels of 3x3 patches, any output channels.
        assert!(conv_errors(window(1, 1), known(&[36, 5])).is_empty());
        // Depthwise: 4 groups of one channel, one row of 9 per output.
        assert!(conv_errors(window(4, 1), known(&[4, 9])).is_empty());
        assert!(conv_errors(window(2, 3), known(&[6, 18])).is_empty());
        for (w, rhs) in [
            (window(1, 1), known(&[9, 4])),
            (window(4, 1), known(&[36, 4])),
            (window(4, 1), known(&[4, 36])),
            (window(2, 3), known(&[2, 18])),
        ] {
            let errors = conv_errors(w.clone(), rhs.clone());
            assert_eq!(errors.len(), 1, "{w:?} {rhs}: {errors:?}");
            assert!(errors[0].contains(&rhs.to_string()), "{}", errors[0]);
        }
    }

    /// A shared validated plan is made only from a plan that validates.
    #[test]
    fn a_shared_valid_plan_is_made_only_from_a_valid_plan() {
        let plan = crate::fingerprint::tests::echo_plan();
        assert!(validate(&plan).is_ok());
        let shared = SharedValidPlan::new(std::sync::Arc::new(plan.clone())).unwrap();
        assert_eq!(shared.valid().plan().programs.len(), plan.programs.len());
        let mut broken = plan;
        broken.programs.truncate(1);
        broken.programs[0].instrs.push(Instr::Send {
            to: 0,
            regs: vec![Reg(9999)],
        });
        let errors = SharedValidPlan::new(std::sync::Arc::new(broken)).unwrap_err();
        assert!(!errors.is_empty());
    }
}
