//! What parties compare before they run a plan together: a SHA-256 per
//! section of what executes. The compiler's estimates (cost, error bounds)
//! and the registers' notes are left out, so flags that change only the
//! estimates (`--assume`, or `--network` when it changes no choice) give the
//! same fingerprint; when fingerprints differ, the first differing section
//! says what differs and why that usually happens.

use crate::{Correlation, Instr, KeySpec, Kind, PartyIdx, Plan, RandomnessSource, Shape};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// A plan's sections and their SHA-256, in a fixed order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    pub sections: Vec<(String, [u8; 32])>,
}

/// Where two fingerprints first differ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    /// The section's name, such as `inputs` or `program of client`.
    pub section: String,
    /// What the section holds, for people.
    pub what: String,
    /// What usually makes it differ between parties.
    pub cause: &'static str,
}

fn sha256(value: &impl Serialize) -> [u8; 32] {
    let bytes = serde_json::to_vec(value).expect("plan parts always serialize");
    Sha256::digest(bytes).into()
}

impl Plan {
    /// The plan's fingerprint: every part that executes, section by section.
    pub fn fingerprint(&self) -> Fingerprint {
        #[derive(Serialize)]
        struct Output<'a> {
            name: &'a str,
            to: &'a [PartyIdx],
            shape: &'a Shape,
            // What the receiver is given: absent (and so the digests of
            // plans without tables unchanged) unless there is a table.
            #[serde(skip_serializing_if = "Option::is_none")]
            labels: &'a Option<Vec<f64>>,
        }
        #[derive(Serialize)]
        struct Register<'a> {
            kind: Kind,
            shape: &'a Shape,
        }
        #[derive(Serialize)]
        struct Preprocessing<'a> {
            randomness: RandomnessSource,
            correlations: &'a [Correlation],
            keys: &'a [KeySpec],
        }
        let outputs: Vec<Output> = self
            .outputs
            .iter()
            .map(|o| Output {
                name: &o.name,
                to: &o.to,
                shape: &o.shape,
                labels: &o.labels,
            })
            .collect();
        let registers: Vec<Register> = self
            .regs
            .iter()
            .map(|r| Register {
                kind: r.kind,
                shape: &r.shape,
            })
            .collect();
        let mut sections = vec![
            ("format".to_string(), sha256(&self.format)),
            ("model".to_string(), sha256(&self.model)),
            ("precision".to_string(), sha256(&self.precision)),
            ("parties".to_string(), sha256(&self.parties)),
            ("inputs".to_string(), sha256(&self.inputs)),
            ("dimension limits".to_string(), sha256(&self.dim_limits)),
            ("outputs".to_string(), sha256(&outputs)),
            ("registers".to_string(), sha256(&registers)),
            (
                "preprocessing".to_string(),
                sha256(&Preprocessing {
                    randomness: self.randomness,
                    correlations: &self.correlations,
                    keys: &self.keys,
                }),
            ),
        ];
        for prog in &self.programs {
            let name = self
                .parties
                .get(prog.party as usize)
                .map_or_else(|| format!("party {}", prog.party), |p| p.name.clone());
            let instrs: &[Instr] = &prog.instrs;
            sections.push((format!("program of {name}"), sha256(&(prog.party, instrs))));
        }
        Fingerprint { sections }
    }
}

impl Fingerprint {
    /// One SHA-256 over every section (names and hashes), to show and to
    /// compare at once.
    pub fn digest(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        for (name, hash) in &self.sections {
            h.update((name.len() as u64).to_le_bytes());
            h.update(name.as_bytes());
            h.update(hash);
        }
        h.finalize().into()
    }

    /// The first section in which `theirs` differs from this fingerprint,
    /// `None` if they are the same.
    pub fn first_difference(&self, theirs: &[(String, [u8; 32])]) -> Option<Difference> {
        let n = self.sections.len().max(theirs.len());
        (0..n).find_map(|i| match (self.sections.get(i), theirs.get(i)) {
            (Some(a), Some(b)) if a == b => None,
            (Some((name, _)), _) | (None, Some((name, _))) => Some(explain(name)),
            (None, None) => None,
        })
    }
}

/// What a section holds and why it usually differs.
pub fn explain(section: &str) -> Difference {
    let (what, cause) = match section {
        "format" => (
            "the plan format version".to_string(),
            "different veil versions",
        ),
        "model" => ("the model's name".to_string(), "different model files"),
        "precision" => (
            "the fixed-point precision".to_string(),
            "different veil versions",
        ),
        "parties" => (
            "the parties' names, order or roles".to_string(),
            "different model files",
        ),
        "inputs" => (
            "the inputs' names, owners, shapes or ranges".to_string(),
            "different model files",
        ),
        "dimension limits" => (
            "the sizes of named dimensions (such as `batch`) a sum or mean along them was compiled for"
                .to_string(),
            "different --assume sizes, or model files",
        ),
        "outputs" => (
            "the outputs' names, shapes or recipients".to_string(),
            "different model files",
        ),
        "registers" => (
            "the values computed, their representations and shapes".to_string(),
            "different model files, compile flags (such as --no-dealer, --prefer, \
             --comparisons, or --network and --assume where they change the cost \
             model's choices) or veil versions",
        ),
        "preprocessing" => (
            "the source of correlated randomness, the correlations or the Paillier keys"
                .to_string(),
            "different compile flags (--no-dealer, --key-bits), model files or veil versions",
        ),
        other => match other.strip_prefix("program of ") {
            Some(party) => (
                format!("what {party} computes, sends and receives"),
                "different model files, compile flags (such as --no-dealer, --prefer, \
                 --comparisons, or --network and --assume where they change the cost \
                 model's choices) or veil versions",
            ),
            None => (format!("`{other}`"), "different veil versions"),
        },
    };
    Difference {
        section: section.to_string(),
        what,
        cause,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::*;

    /// Party a learns its own input back; b does nothing.
    pub(crate) fn echo_plan() -> Plan {
        Plan {
            format: FORMAT_VERSION,
            model: "echo".into(),
            precision: 16,
            parties: vec![
                Party {
                    name: "a".into(),
                    role: Role::Compute,
                },
                Party {
                    name: "b".into(),
                    role: Role::Compute,
                },
            ],
            inputs: vec![InputSpec {
                name: "x".into(),
                owner: Owner::Party(0),
                shape: Shape(vec![Dim::Symbol("batch".into())]),
                range: (-1.0, 1.0),
                range_declared: true,
                columns: vec![],
            }],
            dim_limits: vec![],
            outputs: vec![OutputSpec {
                name: "y".into(),
                to: vec![0],
                shape: Shape(vec![Dim::Symbol("batch".into())]),
                error_bound: 0.0,
                near_tie: None,
                labels: None,
            }],
            regs: vec![RegInfo {
                kind: Kind::Clear,
                shape: Shape(vec![Dim::Symbol("batch".into())]),
                note: "x".into(),
            }],
            randomness: RandomnessSource::TwoParty,
            correlations: vec![],
            keys: vec![],
            programs: vec![
                Program {
                    party: 0,
                    instrs: vec![
                        Instr::Input {
                            dst: Reg(0),
                            input: 0,
                        },
                        Instr::Output {
                            src: Reg(0),
                            output: 0,
                        },
                    ],
                },
                Program {
                    party: 1,
                    instrs: vec![],
                },
            ],
            estimate: Estimate::default(),
        }
    }

    #[test]
    fn estimates_error_bounds_and_notes_do_not_count() {
        let plan = echo_plan();
        assert!(validate(&plan).is_ok());
        let mut other = plan.clone();
        other.estimate.seconds = 12.5;
        other.estimate.bytes = 1e9;
        other.estimate.assumed_dims.insert("batch".into(), 100_000);
        other.outputs[0].error_bound = 0.25;
        other.outputs[0].near_tie = Some(0.5);
        other.regs[0].note = "renamed".into();
        assert_eq!(plan.fingerprint(), other.fingerprint());
        assert_eq!(plan.fingerprint().digest(), other.fingerprint().digest());
        assert_eq!(
            plan.fingerprint()
                .first_difference(&other.fingerprint().sections),
            None
        );
    }

    #[test]
    fn a_label_table_counts() {
        let plan = echo_plan();
        let mut other = plan.clone();
        other.outputs[0].labels = Some(vec![3.0, 5.0]);
        assert_ne!(plan.fingerprint().digest(), other.fingerprint().digest());
    }

    #[test]
    fn the_first_differing_section_is_named() {
        let plan = echo_plan();
        type Change = Box<dyn Fn(&mut Plan)>;
        let changes: Vec<(&str, Change)> = vec![
            ("format", Box::new(|p: &mut Plan| p.format += 1)),
            ("model", Box::new(|p: &mut Plan| p.model = "other".into())),
            ("precision", Box::new(|p: &mut Plan| p.precision = 20)),
            (
                "parties",
                Box::new(|p: &mut Plan| p.parties[1].name = "c".into()),
            ),
            (
                "inputs",
                Box::new(|p: &mut Plan| p.inputs[0].range = (-2.0, 2.0)),
            ),
            (
                "dimension limits",
                Box::new(|p: &mut Plan| {
                    p.dim_limits.push(DimLimit {
                        name: "batch".into(),
                        size: 10,
                        exact: false,
                        because: "s = sum(x)".into(),
                    })
                }),
            ),
            (
                "outputs",
                Box::new(|p: &mut Plan| p.outputs[0].to = vec![0, 1]),
            ),
            (
                "registers",
                Box::new(|p: &mut Plan| p.regs[0].kind = Kind::Share { scale: 16 }),
            ),
            (
                "preprocessing",
                Box::new(|p: &mut Plan| p.randomness = RandomnessSource::Dealer(1)),
            ),
            (
                "program of b",
                Box::new(|p: &mut Plan| {
                    p.programs[1].instrs.push(Instr::Const {
                        dst: Reg(0),
                        data: vec![1.0],
                    })
                }),
            ),
        ];
        for (section, change) in changes {
            let mut other = plan.clone();
            change(&mut other);
            let (a, b) = (plan.fingerprint(), other.fingerprint());
            assert_ne!(a.digest(), b.digest(), "{section}");
            let d = a.first_difference(&b.sections).expect(section);
            assert_eq!(d.section, section);
            assert_eq!(d, b.first_difference(&a.sections).unwrap(), "symmetric");
            assert!(!d.what.is_empty() && !d.cause.is_empty());
        }
        // A fingerprint with fewer sections (another party count) differs too.
        let a = plan.fingerprint();
        let d = a.first_difference(&a.sections[..6]).unwrap();
        assert_eq!(d.section, "outputs");
        assert_eq!(
            explain("program of a").what,
            "what a computes, sends and receives"
        );
    }
}
