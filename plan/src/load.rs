//! Reading a plan file (`veil compile --emit json`) to run it: the format
//! version first, then the plan itself, then [`validate`]. Every problem is
//! an error that says where and what to do, never a panic.

use crate::{validate, Plan, ValidationError, FORMAT_VERSION};
use std::fmt;

/// Why a plan file cannot be run.
#[derive(Clone, Debug, PartialEq)]
pub enum LoadError {
    /// Not JSON, or JSON that does not have the plan's structure; `line`
    /// and `column` count from 1.
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    /// JSON, but without a `format` number: not a Veil plan.
    NotAPlan(String),
    /// A plan of another format version.
    Version { found: u64 },
    /// A plan whose parts do not fit together (a tampered or damaged file).
    Invalid(Vec<ValidationError>),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let again =
            "compile the model again with this veil: veil compile MODEL --emit json -o FILE";
        match self {
            LoadError::Syntax {
                line,
                column,
                message,
            } => write!(f, "line {line}, column {column}: {message}"),
            LoadError::NotAPlan(why) => write!(
                f,
                "not a Veil plan: {why} (a plan file is what `veil compile MODEL --emit json` writes)"
            ),
            LoadError::Version { found } => write!(
                f,
                "plan format {found}, but this veil runs plans of format {FORMAT_VERSION}; {again}"
            ),
            LoadError::Invalid(errors) => {
                write!(
                    f,
                    "the plan is inconsistent ({} problem{}), so it was not written by `veil \
                     compile` or was changed since; {again}",
                    errors.len(),
                    if errors.len() == 1 { "" } else { "s" }
                )?;
                for e in errors.iter().take(10) {
                    write!(f, "\n  {e}")?;
                }
                if errors.len() > 10 {
                    write!(f, "\n  ... and {} more", errors.len() - 10)?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for LoadError {}

fn syntax(e: serde_json::Error) -> LoadError {
    // serde_json's message ends with " at line L column C"; say it first.
    let text = e.to_string();
    let message = match text.rfind(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    LoadError::Syntax {
        line: e.line(),
        column: e.column(),
        message,
    }
}

impl Plan {
    /// A plan from its JSON text, checked: the format version, the
    /// structure, then [`validate`].
    pub fn load_json(text: &str) -> Result<Plan, LoadError> {
        // The version first, from the JSON alone: a plan of another format
        // may not parse as this one.
        let value: serde_json::Value = serde_json::from_str(text).map_err(syntax)?;
        let Some(object) = value.as_object() else {
            return Err(LoadError::NotAPlan("the JSON is not an object".into()));
        };
        match object.get("format") {
            None => return Err(LoadError::NotAPlan("it has no `format` field".into())),
            Some(v) => match v.as_u64() {
                Some(found) if found == u64::from(FORMAT_VERSION) => {}
                Some(found) => return Err(LoadError::Version { found }),
                None => {
                    return Err(LoadError::NotAPlan(format!(
                        "its `format` is {v}, not a version number"
                    )))
                }
            },
        }
        let plan: Plan = serde_json::from_str(text).map_err(syntax)?;
        validate(&plan).map_err(LoadError::Invalid)?;
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::tests::echo_plan;
    use crate::*;

    #[test]
    fn a_written_plan_loads_back_unchanged() {
        let plan = echo_plan();
        assert_eq!(Plan::load_json(&plan.to_json()), Ok(plan));
    }

    #[test]
    fn malformed_json_says_line_and_column() {
        let text = echo_plan().to_json();
        // Cut it in the middle of line 3.
        let cut: String = text.lines().take(3).collect::<Vec<_>>().join("\n") + ",";
        let e = Plan::load_json(&cut).unwrap_err();
        assert!(matches!(e, LoadError::Syntax { line: 3, .. }), "{e:?}");
        let e = Plan::load_json("{\n  \"format\": 2,\n  oops\n}").unwrap_err();
        assert_eq!(
            e,
            LoadError::Syntax {
                line: 3,
                column: 3,
                message: "key must be a string".into()
            }
        );
        assert_eq!(e.to_string(), "line 3, column 3: key must be a string");
        // Valid JSON, wrong structure: still a place.
        let text = echo_plan()
            .to_json()
            .replace("\"precision\": 16", "\"precision\": \"16\"");
        let e = Plan::load_json(&text).unwrap_err();
        let LoadError::Syntax { line, message, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(*line, 4);
        assert!(message.contains("invalid type"), "{message}");
    }

    #[test]
    fn another_format_version_is_refused_before_parsing() {
        let (now, next) = (FORMAT_VERSION, FORMAT_VERSION + 1);
        let text = echo_plan()
            .to_json()
            .replace(
                &format!("\"format\": {now}"),
                &format!("\"format\": {next}"),
            )
            .replace("\"model\"", "\"renamed_in_the_next_format\"");
        let e = Plan::load_json(&text).unwrap_err();
        assert_eq!(e, LoadError::Version { found: next.into() });
        assert!(e.to_string().contains(&format!(
            "format {next}, but this veil runs plans of format {now}"
        )));
        assert!(matches!(
            Plan::load_json("{\"model\": \"m\"}"),
            Err(LoadError::NotAPlan(_))
        ));
        assert!(matches!(
            Plan::load_json("{\"format\": \"one\"}"),
            Err(LoadError::NotAPlan(_))
        ));
        assert!(matches!(
            Plan::load_json("[1, 2]"),
            Err(LoadError::NotAPlan(_))
        ));
    }

    /// A relu of `x` with `peer`, its values within `2^bits`.
    fn relu(x: Reg, peer: u32, bits: u32) -> Instr {
        Instr::Nonlinear {
            dst: x,
            op: NonlinearOp::Relu,
            args: vec![x],
            peer,
            leader: true,
            bits,
        }
    }

    /// Hand edits that would make the runtime index out of range are
    /// refused by `validate`, not run.
    #[test]
    fn tampered_plans_are_refused_with_what_is_wrong() {
        type Edit = Box<dyn Fn(&mut Plan)>;
        let edits: Vec<(&str, Edit)> = vec![
            (
                "learns output `y` not addressed to it",
                Box::new(|p: &mut Plan| p.outputs[0].to = vec![1]),
            ),
            (
                "output `y` goes to unknown party 9",
                Box::new(|p: &mut Plan| p.outputs[0].to.push(9)),
            ),
            (
                "input `x` is owned by unknown party 5",
                Box::new(|p: &mut Plan| p.inputs[0].owner = Owner::Party(5)),
            ),
            (
                "the dealer is unknown party 4",
                Box::new(|p: &mut Plan| p.randomness = RandomnessSource::Dealer(4)),
            ),
            (
                "talks to unknown party 3",
                Box::new(|p: &mut Plan| p.programs[0].instrs.insert(1, relu(Reg(0), 3, 63))),
            ),
            (
                "compares values within 2^64 (1 to 63 bits)",
                Box::new(|p: &mut Plan| p.programs[0].instrs.insert(1, relu(Reg(0), 1, 64))),
            ),
            (
                "uses correlation #0, but the plan has 0",
                Box::new(|p: &mut Plan| {
                    p.programs[0].instrs.insert(
                        1,
                        Instr::TruncOpen {
                            msg: Reg(0),
                            x: Reg(0),
                            corr: 0,
                        },
                    )
                }),
            ),
            (
                "has 1 operands, needs 2",
                Box::new(|p: &mut Plan| {
                    p.programs[0].instrs.insert(
                        1,
                        Instr::Clear {
                            dst: Reg(0),
                            op: ClearOp::Add,
                            args: vec![Reg(0)],
                        },
                    )
                }),
            ),
            (
                "reads %7 before writing it",
                Box::new(|p: &mut Plan| {
                    p.programs[0].instrs[1] = Instr::Output {
                        src: Reg(7),
                        output: 0,
                    }
                }),
            ),
        ];
        for (want, edit) in edits {
            let mut plan = echo_plan();
            edit(&mut plan);
            let e = Plan::load_json(&plan.to_json()).unwrap_err();
            assert!(matches!(e, LoadError::Invalid(_)), "{want}: {e:?}");
            let text = e.to_string();
            assert!(text.contains(want), "{want}: {text}");
            assert!(text.contains("not written by `veil compile`"), "{text}");
        }
    }
}
