//! Run one party of a model over TCP with mutual TLS, as `veil party` does:
//! this is the client of models/logreg_100.veil, with its own inputs; the
//! server and the dealer run on threads of this process here, but talk to
//! it only over loopback TLS, exactly as they would from other machines.
//!
//! ```sh
//! cargo run --release --example one_party
//! ```

use net::{free_loopback_addresses, PeerSpec, TcpConfig, TcpTransport, DEFAULT_MAX_FRAME};
use plan::{Plan, TensorRef, ValidPlan};
use runtime::exec::{run_party, ExecError, Options, Outcome};
use std::collections::BTreeMap;
use std::error::Error;
use std::time::Duration;

const LOGREG: &str = include_str!("../models/logreg_100.veil");

/// One party's connection settings: every party's address and pinned
/// certificate (what parties.toml lists), and this party's key.
fn config(plan: &Plan, me: u32, parties: &[PeerSpec], key: &[u8]) -> TcpConfig {
    TcpConfig {
        me,
        // Every party of this plan takes part (a plan compiled without a
        // dealer would leave the dealer's entry `None`).
        parties: parties.iter().cloned().map(Some).collect(),
        key: key.to_vec(),
        listen: None,
        // Every party compiles the same model with the same flags: the
        // handshake checks, section by section, that the plans agree.
        plan: plan.fingerprint(),
        session: "example".into(),
        connect_timeout: Duration::from_secs(10),
        io_timeout: Duration::from_secs(10),
        max_frame: DEFAULT_MAX_FRAME,
        // Where a dropped stranger's connection would be reported.
        log: None,
    }
}

/// Connect, then run party `me` with its inputs.
fn party(
    cfg: &TcpConfig,
    plan: &ValidPlan<'_>,
    inputs: &BTreeMap<String, TensorRef<'_>>,
) -> Result<Outcome, ExecError> {
    let mut transport = TcpTransport::connect(cfg)?;
    let mut opts = Options::default();
    opts.timeout = Duration::from_secs(10);
    // Refuse (at session setup, once the batch size is known) a run this
    // party could not hold.
    opts.max_memory = Some(1 << 30);
    run_party(plan, cfg.me, inputs, &mut transport, &opts)
}

fn main() -> Result<(), Box<dyn Error>> {
    let model = compiler::check_source(LOGREG)
        .model
        .ok_or("the bundled model checks")?;
    let plan = compiler::compile(&model, &compiler::Options::default())?.plan;

    // A self-signed certificate per party (`veil certs` writes these to
    // files), and a free loopback port for each.
    let mut keys = Vec::new();
    let mut parties = Vec::new();
    for (p, address) in plan
        .parties
        .iter()
        .zip(free_loopback_addresses(plan.parties.len())?)
    {
        let ck = rcgen::generate_simple_self_signed(vec![p.name.clone()])?;
        parties.push(PeerSpec {
            name: p.name.clone(),
            address,
            cert: ck.cert.pem().into_bytes(),
        });
        keys.push(ck.signing_key.serialize_pem().into_bytes());
    }

    // Inputs, split by owner: the client's rows stay with the client.
    let all = runtime::exec::random_inputs(&plan, 5, &mut rand::rng())?;
    let per_party = runtime::exec::inputs_per_party(&plan, &all);
    let me = plan
        .parties
        .iter()
        .position(|p| p.name == "client")
        .ok_or("the model has a client")? as u32;
    // The executor runs only a validated plan.
    let valid = plan::validate(&plan).map_err(|e| format!("invalid plan: {e:?}"))?;

    let outcome = std::thread::scope(|s| {
        // The other parties: their own threads here, their own machines in
        // a deployment.
        let others: Vec<_> = (0..plan.parties.len() as u32)
            .filter(|p| *p != me)
            .map(|p| {
                let cfg = config(&plan, p, &parties, &keys[p as usize]);
                let (plan, inputs) = (&valid, &per_party[p as usize]);
                s.spawn(move || party(&cfg, plan, inputs))
            })
            .collect();
        let mine = party(
            &config(&plan, me, &parties, &keys[me as usize]),
            &valid,
            &per_party[me as usize],
        );
        for other in others {
            other.join().map_err(|_| "a party's thread panicked")??;
        }
        Ok::<_, Box<dyn Error>>(mine?)
    })?;

    for (name, t) in &outcome.outputs {
        println!("client learns {name} {:?}: {:?}", t.shape, t.data);
    }
    let s = &outcome.stats;
    println!(
        "client: sent {} B, received {} B, {} rounds; setup {:.3} s, preprocessing {:.3} s, online {:.3} s",
        s.bytes_sent,
        s.bytes_received,
        s.rounds,
        s.setup.as_secs_f64(),
        s.preprocessing.as_secs_f64(),
        s.online.as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_example_runs() {
        super::main().unwrap();
    }
}
