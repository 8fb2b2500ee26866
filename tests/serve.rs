//! End-to-end tests of the service (issue 20): `veil serve` for the model
//! owner and the dealer of models/relu_classifier.veil, `veil predict`
//! clients with certificates from `veil certs --new-ca`, on 127.0.0.1 only.
//! Answers are compared with the plaintext reference interpreter. Every
//! process is killed when its test ends, passed or not.

use plan::Tensor;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const MODEL: &str = "models/relu_classifier.veil";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn veil() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_veil"));
    c.current_dir(root()).stdin(Stdio::null());
    c
}

/// Runs `cmd` to completion within `limit` (killed past it).
fn finish(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "a process overran {limit:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Deterministic values in [-1, 1] (test data, not randomness).
fn value(i: usize, salt: usize) -> f64 {
    (((i * 7919 + salt * 104_729) % 2001) as f64 - 1000.0) / 1000.0
}

/// A deployment in a fresh folder: certificates for lab and helper (or lab
/// alone), a client CA, clients alice and bob, the lab's weights and
/// `rows` rows of hospital data in x.csv.
struct Deployment {
    dir: PathBuf,
    weights: BTreeMap<String, Tensor>,
    x: Tensor,
    lab: String,
    helper: String,
    dealer: bool,
    children: Vec<Child>,
}

impl Drop for Deployment {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn tensor(shape: &[usize], salt: usize) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor {
        shape: shape.to_vec(),
        data: (0..n).map(|i| value(i, salt)).collect(),
    }
}

fn json(t: &Tensor) -> String {
    match t.shape.len() {
        1 => serde_json::to_string(&t.data).unwrap(),
        _ => {
            let w = t.shape[1];
            let rows: Vec<&[f64]> = t.data.chunks(w).collect();
            serde_json::to_string(&rows).unwrap()
        }
    }
}

impl Deployment {
    fn new(test: &str, rows: usize, dealer: bool) -> Deployment {
        let dir = std::env::temp_dir().join(format!("veil-serve-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let addrs = net::free_loopback_addresses(2).unwrap();
        let parties: &[&str] = if dealer { &["lab", "helper"] } else { &["lab"] };
        let run = |args: &[&str]| {
            let o = veil().args(args).output().unwrap();
            assert!(o.status.success(), "{args:?}: {}", stderr(&o));
            String::from_utf8(o.stdout).unwrap()
        };
        let d = |f: &str| dir.join(f).display().to_string();
        let out = d("dep");
        let mut certs = vec!["certs", "--out", out.as_str()];
        certs.extend_from_slice(parties);
        run(&certs);
        // The addresses: free ports rather than the default ones.
        let mut toml = String::new();
        for (p, a) in parties.iter().zip(&addrs) {
            toml.push_str(&format!(
                "[[party]]\nname = \"{p}\"\naddress = \"{a}\"\ncert = \"{p}.crt\"\nkey = \"{p}.key\"\n\n"
            ));
        }
        std::fs::write(dir.join("dep/parties.toml"), toml).unwrap();
        run(&["certs", "--out", &d("ca"), "--new-ca"]);
        run(&[
            "certs",
            "--out",
            &d("clients"),
            "--ca",
            &d("ca"),
            "--client",
            "alice",
            "--client",
            "bob",
        ]);
        let mut weights = BTreeMap::new();
        weights.insert("w1".to_string(), tensor(&[8, 16], 1));
        weights.insert("b1".to_string(), tensor(&[16], 2));
        weights.insert("w2".to_string(), tensor(&[16, 4], 3));
        for (k, t) in &weights {
            std::fs::write(dir.join(format!("{k}.json")), json(t)).unwrap();
        }
        let mut x = tensor(&[rows, 8], 4);
        for v in &mut x.data {
            *v *= 2.0;
        }
        let csv: String = x
            .data
            .chunks(8)
            .map(|r| {
                r.iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
                    + "\n"
            })
            .collect();
        std::fs::write(dir.join("x.csv"), csv).unwrap();
        Deployment {
            dir,
            weights,
            x,
            lab: addrs[0].clone(),
            helper: addrs[1].clone(),
            dealer,
            children: Vec::new(),
        }
    }

    fn path(&self, f: &str) -> String {
        self.dir.join(f).display().to_string()
    }

    fn compile_flags(&self) -> Vec<String> {
        if self.dealer {
            vec![]
        } else {
            vec!["--no-dealer".into()]
        }
    }

    /// Starts `veil serve --as WHO` with `extra` flags; waits until it
    /// listens. Its standard error goes to WHO.log.
    fn serve(&mut self, who: &str, extra: &[&str]) -> usize {
        let log = self.path(&format!("{who}.log"));
        let _ = std::fs::remove_file(&log);
        let mut cmd = veil();
        cmd.arg("serve")
            .arg(MODEL)
            .args(["--as", who, "--config", &self.path("dep/parties.toml")])
            .args(["--client-ca", &self.path("ca/ca.crt")])
            .args(self.compile_flags())
            .args(extra);
        if who == "lab" {
            for k in ["w1", "b1", "w2"] {
                cmd.args(["-i", &format!("{k}={}", self.path(&format!("{k}.json")))]);
            }
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        self.children.push(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.log(who).contains("serving") {
            assert!(
                Instant::now() < deadline,
                "{who} did not start: {}",
                self.log(who)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.children.len() - 1
    }

    fn log(&self, who: &str) -> String {
        std::fs::read_to_string(self.path(&format!("{who}.log"))).unwrap_or_default()
    }

    /// `veil predict` as `client` into OUT (started, not waited for).
    fn predict(&self, client: &str, out: &str, extra: &[&str]) -> Child {
        veil()
            .arg("predict")
            .arg(MODEL)
            .args(["--config", &self.path("dep/parties.toml")])
            .args(["--cert", &self.path(&format!("clients/{client}.crt"))])
            .args(["--key", &self.path(&format!("clients/{client}.key"))])
            .args(["-i", &format!("x={}", self.path("x.csv"))])
            .args(["-o", &self.path(out)])
            .args(self.compile_flags())
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Runs a prediction to the end; asserts it succeeded with answers
    /// equal to the reference's.
    fn predict_ok(&self, client: &str, out: &str, extra: &[&str]) {
        let o = finish(self.predict(client, out, extra), Duration::from_secs(60));
        assert!(o.status.success(), "{client}: {}", stderr(&o));
        self.check_answers(out);
    }

    /// The plan the services run, as `veil compile --emit json` writes it.
    fn plan(&self) -> plan::Plan {
        let path = self.path("plan.json");
        let o = veil()
            .args(["compile", MODEL, "--emit", "json", "-o", &path])
            .args(self.compile_flags())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        plan::Plan::load_json(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    /// The outputs in OUT/hospital.json against the plaintext reference.
    fn check_answers(&self, out: &str) {
        let text = std::fs::read_to_string(self.dir.join(out).join("hospital.json")).unwrap();
        let got: BTreeMap<String, Vec<f64>> = serde_json::from_str(&text).unwrap();
        let source = std::fs::read_to_string(root().join(MODEL)).unwrap();
        let checked = compiler::check_source(&source).model.unwrap();
        let plan = self.plan();
        let mut inputs = self.weights.clone();
        inputs.insert("x".into(), self.x.clone());
        let expected = compiler::reference::expected(&checked, &inputs).unwrap();
        let rows = self.x.shape[0];
        for spec in &plan.outputs {
            let want = expected.iter().find(|e| e.name == spec.name).unwrap();
            let values = &got[&spec.name];
            assert_eq!(values.len(), rows, "{}", spec.name);
            let t = Tensor {
                shape: vec![rows],
                data: values.clone(),
            };
            let devs = compiler::reference::deviations(spec, &t, want).unwrap();
            for (r, d) in devs.iter().enumerate() {
                assert!(
                    *d <= spec.error_bound,
                    "{} row {r}: {} vs reference {} (bound {})",
                    spec.name,
                    values[r],
                    want.value.data[r],
                    spec.error_bound
                );
            }
        }
    }

    fn start(&mut self, extra: &[&str]) {
        if self.dealer {
            self.serve("helper", extra);
        }
        self.serve("lab", extra);
    }

    fn signal(&self, index: usize, sig: &str) {
        let pid = self.children[index].id().to_string();
        let s = Command::new("kill").args([sig, &pid]).status().unwrap();
        assert!(s.success());
    }

    /// Count of the service's log lines of sessions with `outcome`.
    fn sessions(&self, who: &str, outcome: &str) -> usize {
        self.log(who)
            .lines()
            .filter(|l| l.contains(" session ") && l.contains(&format!("outcome=\"{outcome}\"")))
            .count()
    }
}

#[test]
fn answers_equal_the_reference_with_and_without_a_dealer() {
    for dealer in [true, false] {
        let mut d = Deployment::new(&format!("answers-{dealer}"), 6, dealer);
        d.start(&[]);
        // One session for the whole batch, then one per row over one
        // connection, then (issue 22) one per chunk of 4 rows, the last one
        // of 2, the file read a chunk at a time.
        d.predict_ok("alice", "out-batch", &[]);
        d.predict_ok("bob", "out-rows", &["--per-row"]);
        d.predict_ok("alice", "out-chunks", &["--chunk-rows", "4"]);
        assert_eq!(d.sessions("lab", "ok"), 9, "{}", d.log("lab"));
        if dealer {
            assert_eq!(d.sessions("helper", "ok"), 9, "{}", d.log("helper"));
        }
        // Each session has its own id, and the log names the client.
        let ids: std::collections::BTreeSet<String> = d
            .log("lab")
            .lines()
            .filter(|l| l.contains("outcome=\"ok\""))
            .map(|l| l.split("session=").nth(1).unwrap()[..34].to_string())
            .collect();
        assert_eq!(ids.len(), 9);
        assert!(d.log("lab").contains("client=bob/"), "{}", d.log("lab"));
        // No secret in the log: no input value appears.
        let w = format!("{}", d.weights["w1"].data[1]);
        assert!(!d.log("lab").contains(&w));
    }
}

/// `veil predict --ahead` (no dealer): each next session's preprocessing
/// runs before its rows are read, the rows then run the rest, and every
/// answer equals the reference. A session prepared for rows that never
/// come (after the last row) is abandoned: the service logs it as failed.
/// A shorter last chunk runs in the session prepared for a full one.
/// `--repeat` prepares exactly the sessions it runs. A plan with a dealer
/// is refused.
#[test]
fn predict_ahead_prepares_each_next_session_before_its_rows() {
    let mut d = Deployment::new("ahead", 6, false);
    d.start(&[]);
    d.predict_ok("alice", "out-rows", &["--per-row", "--ahead"]);
    // Six rows, six sessions; the seventh, prepared, had no row.
    assert_eq!(d.sessions("lab", "ok"), 6, "{}", d.log("lab"));
    assert_eq!(d.sessions("lab", "failed"), 1, "{}", d.log("lab"));
    // Chunks of 4 and 2: the 2 rows run in the session prepared for 4
    // (their last row repeated, its outputs dropped: the answers are the 6
    // rows'), and nothing is prepared after the input's last (short) chunk.
    d.predict_ok("bob", "out-chunks", &["--chunk-rows", "4", "--ahead"]);
    assert_eq!(d.sessions("lab", "ok"), 8, "{}", d.log("lab"));
    assert_eq!(d.sessions("lab", "failed"), 1, "{}", d.log("lab"));
    d.predict_ok("alice", "out-repeat", &["--repeat", "3", "--ahead"]);
    assert_eq!(d.sessions("lab", "ok"), 11, "{}", d.log("lab"));
    assert_eq!(d.sessions("lab", "failed"), 1, "{}", d.log("lab"));
    let dealt = Deployment::new("ahead-dealer", 2, true);
    let o = finish(
        dealt.predict("alice", "out", &["--ahead"]),
        Duration::from_secs(60),
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--ahead") && stderr(&o).contains("dealer"),
        "{}",
        stderr(&o)
    );
}

/// `--ahead-wait`: a prepared session whose rows take longer than that is
/// abandoned (the service logs it failed), and the rows, when they come,
/// run in a new session on a new connection; every answer is right. The
/// rows come on standard input, the second chunk 1.5 s after the first.
#[test]
fn a_prepared_session_that_waits_too_long_gives_way_to_a_new_one() {
    let mut d = Deployment::new("ahead-wait", 6, false);
    d.start(&[]);
    let csv = std::fs::read_to_string(d.path("x.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    let mut child = veil()
        .arg("predict")
        .arg(MODEL)
        .args(["--config", &d.path("dep/parties.toml")])
        .args(["--cert", &d.path("clients/alice.crt")])
        .args(["--key", &d.path("clients/alice.key")])
        .args(["-i", "x=-", "-o", &d.path("out-wait")])
        .args(["--chunk-rows", "3", "--ahead", "--ahead-wait", "0.3"])
        .args(d.compile_flags())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    use std::io::Write;
    writeln!(stdin, "{}", lines[..3].join("\n")).unwrap();
    stdin.flush().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    writeln!(stdin, "{}", lines[3..].join("\n")).unwrap();
    drop(stdin);
    let o = finish(child, Duration::from_secs(60));
    assert!(o.status.success(), "{}", stderr(&o));
    d.check_answers("out-wait");
    // Two chunks, two sessions answered; the one prepared for the second
    // gave up after 0.3 s, and after the last (full) chunk one more was
    // prepared and abandoned at the input's end.
    assert_eq!(d.sessions("lab", "ok"), 2, "{}", d.log("lab"));
    assert_eq!(d.sessions("lab", "failed"), 2, "{}", d.log("lab"));
}

/// `--rate` starts the queries on a schedule: six rows at 20 a second
/// take at least five periods, with every answer right and each query's
/// latency written.
#[test]
fn rate_starts_queries_on_a_schedule() {
    let mut d = Deployment::new("rate", 6, true);
    d.start(&[]);
    let timings = d.path("t.txt");
    let t = Instant::now();
    d.predict_ok(
        "alice",
        "out",
        &["--per-row", "--rate", "20", "--timings", &timings],
    );
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );
    let text = std::fs::read_to_string(&timings).unwrap();
    assert_eq!(text.lines().count(), 6, "{text}");
    assert!(text
        .lines()
        .all(|l| l.parse::<f64>().is_ok_and(|v| v > 0.0)));
}

#[test]
fn a_batch_over_the_limit_is_refused_with_the_reason() {
    let mut d = Deployment::new("maxbatch", 3, true);
    d.start(&["--max-batch", "2"]);
    let o = finish(d.predict("alice", "out", &[]), Duration::from_secs(30));
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("refused the session") && e.contains("--max-batch of 2"),
        "{e}"
    );
    assert!(!d.dir.join("out").exists());
    // A client that compiled the model otherwise is told which part of
    // the plan differs.
    let o = finish(
        d.predict("alice", "out-other", &["--no-dealer"]),
        Duration::from_secs(30),
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("plan mismatch"), "{}", stderr(&o));
    // An authenticated client whose request is not a hello is refused.
    let dep = std::fs::read(d.path("dep/lab.crt")).unwrap();
    let cert = std::fs::read(d.path("clients/alice.crt")).unwrap();
    let key = std::fs::read(d.path("clients/alice.key")).unwrap();
    let dialer = net::service::Dialer::new(&dep, &cert, &key, 1 << 20).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut conn = dialer.dial("lab", &d.lab, deadline).unwrap();
    conn.send(b"\x00garbage", deadline).unwrap();
    let reply = conn.recv(Duration::from_secs(10)).unwrap();
    assert!(matches!(
        net::service::ServiceReply::parse(&reply, "lab").unwrap(),
        net::service::ServiceReply::Refused { reason } if reason.contains("malformed")
    ));
    // One row at a time fits.
    d.predict_ok("alice", "out-rows", &["--per-row"]);
    assert!(
        d.log("lab").contains("outcome=\"refused\""),
        "{}",
        d.log("lab")
    );
}

/// The service checks its memory limit once at --max-batch; where that
/// does not fit, each session is checked at its own size: a session that
/// fits runs, one above the limit is refused (named in the model owner's
/// log) and its client writes nothing.
#[test]
fn sessions_over_the_memory_limit_are_refused_and_the_others_served() {
    let mut d = Deployment::new("memory", 3, true);
    let plan = d.plan();
    let lab = plan.parties.iter().position(|p| p.name == "lab").unwrap();
    let at = |batch: usize| {
        let dims = [("batch".to_string(), batch)].into_iter().collect();
        runtime::exec::memory::estimate(&plan, &dims, None)
            .unwrap()
            .parties[lab]
            .total()
    };
    let (one, three) = (at(1), at(3));
    assert!(one < three, "{one} {three}");
    let limit = ((one + three) / 2).to_string();
    d.serve("helper", &[]);
    d.serve("lab", &["--max-memory", &limit]);
    let o = finish(d.predict("alice", "out", &[]), Duration::from_secs(30));
    assert!(!o.status.success(), "{}", stderr(&o));
    assert!(!d.dir.join("out").exists());
    assert!(d.log("lab").contains("--max-memory"), "{}", d.log("lab"));
    d.predict_ok("alice", "out-rows", &["--per-row"]);
}

#[test]
fn a_client_killed_mid_session_leaves_the_service_serving() {
    let mut d = Deployment::new("killed", 3, true);
    d.start(&["--idle-timeout", "2"]);
    for _ in 0..3 {
        let mut c = d.predict("alice", "out-killed", &["--repeat", "100000", "-q"]);
        std::thread::sleep(Duration::from_millis(300));
        c.kill().unwrap();
        let _ = c.wait();
    }
    d.predict_ok("bob", "out", &[]);
    assert!(
        !d.dir.join("out-killed").exists(),
        "a killed client wrote outputs"
    );
}

#[test]
fn a_silent_client_times_out_and_frees_its_slot() {
    let mut d = Deployment::new("silent", 2, true);
    d.serve("helper", &[]);
    d.serve(
        "lab",
        &[
            "--max-sessions",
            "1",
            "--queue",
            "0",
            "--handshake-timeout",
            "1",
            "--idle-timeout",
            "3",
        ],
    );
    // Silent before TLS: dropped after the handshake timeout.
    let raw = std::net::TcpStream::connect(&d.lab).unwrap();
    // Authenticated, asks for a session, then says nothing: it holds the
    // only slot until the idle timeout.
    let dep = std::fs::read(d.path("dep/lab.crt")).unwrap();
    let cert = std::fs::read(d.path("clients/alice.crt")).unwrap();
    let key = std::fs::read(d.path("clients/alice.key")).unwrap();
    let dialer = net::service::Dialer::new(&dep, &cert, &key, 1 << 20).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut conn = dialer.dial("lab", &d.lab, deadline).unwrap();
    let plan = d.plan();
    let mut hello = net::service::ServiceHello::new("hospital", "lab", &plan.fingerprint(), "");
    hello.dims = vec![("batch".into(), 1)];
    conn.send(&hello.to_bytes(), deadline).unwrap();
    let reply = conn.recv(Duration::from_secs(10)).unwrap();
    assert!(matches!(
        net::service::ServiceReply::parse(&reply, "lab").unwrap(),
        net::service::ServiceReply::Ok { .. }
    ));
    // Meanwhile another client is told the service is busy.
    let o = finish(
        d.predict("bob", "out-busy", &["--retries", "0"]),
        Duration::from_secs(30),
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("busy"), "{}", stderr(&o));
    // Once the silent session timed out (3 s), the slot is free again.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !d.log("lab").contains("outcome=\"timed_out\"") {
        assert!(Instant::now() < deadline, "{}", d.log("lab"));
        std::thread::sleep(Duration::from_millis(50));
    }
    d.predict_ok("bob", "out", &[]);
    drop(raw);
    drop(conn);
    let log = d.log("lab");
    assert!(log.contains("outcome=\"timed_out\""), "{log}");
    assert!(log.contains("timed out in the TLS handshake"), "{log}");
}

#[test]
fn garbage_and_unauthenticated_connections_are_dropped_without_disturbing_sessions() {
    let mut d = Deployment::new("strangers", 4, true);
    d.start(&["--handshake-timeout", "2"]);
    let client = d.predict("alice", "out", &["--per-row", "--repeat", "1"]);
    // Garbage, HTTP, and TLS with a certificate the CA did not sign, at both services.
    let (stranger, stranger_key) = {
        let o = veil()
            .args(["certs", "--out", &d.path("strangers"), "mallory"])
            .output()
            .unwrap();
        assert!(o.status.success());
        (
            std::fs::read(d.path("strangers/mallory.crt")).unwrap(),
            std::fs::read(d.path("strangers/mallory.key")).unwrap(),
        )
    };
    for (addr, cert) in [(&d.lab, "dep/lab.crt"), (&d.helper, "dep/helper.crt")] {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        let _ = s.write_all(&[0x16, 3, 1, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7, 8]);
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        let server_cert = std::fs::read(d.path(cert)).unwrap();
        let dialer =
            net::service::Dialer::new(&server_cert, &stranger, &stranger_key, 1 << 20).unwrap();
        let r = dialer
            .dial("svc", addr, Instant::now() + Duration::from_secs(5))
            .and_then(|mut c| {
                c.send(b"{}", Instant::now() + Duration::from_secs(5))?;
                c.recv(Duration::from_secs(5))
            });
        assert!(r.is_err(), "an unsigned client got an answer");
    }
    let o = finish(client, Duration::from_secs(60));
    assert!(o.status.success(), "{}", stderr(&o));
    d.check_answers("out");
    d.predict_ok("bob", "out2", &[]);
    std::thread::sleep(Duration::from_millis(2500));
    for who in ["lab", "helper"] {
        let log = d.log(who);
        assert!(
            log.matches("connection dropped").count() >= 3,
            "{who}: {log}"
        );
        assert_eq!(d.sessions(who, "failed"), 0, "{who}: {log}");
    }
}

#[test]
fn a_revoked_client_is_refused_until_the_deny_list_is_reloaded() {
    let mut d = Deployment::new("revoked", 2, true);
    let deny = d.path("deny.txt");
    std::fs::write(&deny, "bob\n").unwrap();
    let lab = {
        if d.dealer {
            d.serve("helper", &["--deny", &deny]);
        }
        d.serve("lab", &["--deny", &deny])
    };
    let o = finish(
        d.predict("bob", "out-bob", &["--retries", "0"]),
        Duration::from_secs(30),
    );
    assert!(!o.status.success(), "a revoked client was served");
    assert!(!d.dir.join("out-bob").exists());
    d.predict_ok("alice", "out-alice", &[]);
    assert!(
        d.log("lab").contains("connection dropped"),
        "{}",
        d.log("lab")
    );
    // An empty list lets him in after SIGHUP.
    std::fs::write(&deny, "# nobody\n").unwrap();
    d.signal(lab, "-HUP");
    if d.dealer {
        d.signal(0, "-HUP");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !d.log("lab").contains("deny list reloaded") {
        assert!(Instant::now() < deadline, "{}", d.log("lab"));
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    d.predict_ok("bob", "out-bob2", &[]);
}

#[test]
fn sigterm_under_load_drains_sessions_and_exits_zero() {
    let mut d = Deployment::new("sigterm", 2, true);
    d.start(&[]);
    let clients: Vec<Child> = (0..4)
        .map(|i| {
            d.predict(
                if i % 2 == 0 { "alice" } else { "bob" },
                &format!("out-{i}"),
                &["--repeat", "100000", "-q", "--retries", "0"],
            )
        })
        .collect();
    std::thread::sleep(Duration::from_millis(800));
    let lab = d.children.len() - 1;
    d.signal(lab, "-TERM");
    let mut child = d.children.remove(lab);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the service did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{}", d.log("lab"));
    for c in clients {
        let o = finish(c, Duration::from_secs(30));
        // A client in its loop of queries is told the service is stopping.
        assert!(!o.status.success());
        let e = stderr(&o);
        assert!(
            e.contains("stopping")
                || e.contains("closed the connection")
                || e.contains("stopped or crashed"),
            "{e}"
        );
    }
    let log = d.log("lab");
    assert!(log.contains("draining"), "{log}");
    assert!(d.sessions("lab", "ok") > 0, "{log}");
    // In-flight sessions finished: none failed.
    assert_eq!(d.sessions("lab", "failed"), 0, "{log}");
    // New connections are refused.
    assert!(std::net::TcpStream::connect(&d.lab).is_err());
}

#[test]
fn a_restarted_dealer_fails_sessions_in_flight_cleanly_and_serves_later_ones() {
    let mut d = Deployment::new("dealer", 2, true);
    d.start(&["--connect-timeout", "2"]);
    let c = d.predict("alice", "out-during", &["--repeat", "100000", "-q"]);
    // Sessions are in flight once the first has ended well (a fixed sleep
    // could end before the client connects on a loaded machine).
    let deadline = Instant::now() + Duration::from_secs(60);
    while d.sessions("lab", "ok") == 0 {
        assert!(Instant::now() < deadline, "{}", d.log("lab"));
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut helper = d.children.remove(0);
    helper.kill().unwrap();
    let _ = helper.wait();
    let o = finish(c, Duration::from_secs(60));
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no output was written"),
        "{}",
        stderr(&o)
    );
    assert!(!d.dir.join("out-during").exists());
    d.serve("helper", &[]);
    d.predict_ok("bob", "out-after", &[]);
    assert!(d.sessions("lab", "failed") >= 1, "{}", d.log("lab"));
}

#[test]
fn metrics_are_served_in_the_prometheus_text_format() {
    let mut d = Deployment::new("metrics", 2, true);
    let addrs = net::free_loopback_addresses(2).unwrap();
    let (addr, dealer_addr) = (&addrs[0], &addrs[1]);
    let get = |addr: &str| {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut s, &mut text).unwrap();
        text
    };
    // Issue 20: the dealer deals 3 streams for batch 1 ahead of the sessions.
    d.serve(
        "helper",
        &[
            "--metrics",
            dealer_addr,
            "--deal-ahead",
            "3",
            "--deal-ahead-batch",
            "1",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !get(dealer_addr).contains("veil_dealt_ahead 3") {
        assert!(Instant::now() < deadline, "{}", get(dealer_addr));
        std::thread::sleep(Duration::from_millis(50));
    }
    d.serve("lab", &["--metrics", addr]);
    d.predict_ok("alice", "out", &["--per-row"]);
    // Both rows' sessions took a stream dealt ahead.
    let dealer = get(dealer_addr);
    assert!(
        dealer.contains("veil_dealt_ahead_sessions_total{ready=\"yes\"} 2")
            && dealer.contains("veil_dealt_ahead_sessions_total{ready=\"no\"} 0"),
        "{dealer}"
    );
    let text = get(addr);
    assert!(text.starts_with("HTTP/1.0 200 OK"), "{text}");
    assert!(
        !text.contains("veil_dealt_ahead"),
        "the model owner deals nothing: {text}"
    );
    // Both services, each with its own metrics if asked; the lab's here.
    assert!(
        text.contains("veil_sessions_total{outcome=\"ok\"} 2"),
        "{text}"
    );
    assert!(text.contains("veil_session_seconds_count 2"), "{text}");
    assert!(text.contains("veil_pool{state=\"active\"} 0"), "{text}");
}

/// Scale-out with an existing balancer: two model-owner replicas (the same
/// certificate and weights, each on its own port) behind HAProxy in TCP
/// mode (TLS passes through), one dealer, 16 clients through the balancer.
#[test]
fn haproxy_spreads_clients_over_two_replicas() {
    let haproxy = std::env::var("VEIL_HAPROXY").unwrap_or_else(|_| "haproxy".into());
    if Command::new(&haproxy).arg("-v").output().is_err() {
        eprintln!(
            "skipped: `{haproxy}` is not installed (Debian package haproxy; .ci/run installs it)"
        );
        return;
    }
    let mut d = Deployment::new("haproxy", 3, true);
    let ports = net::free_loopback_addresses(3).unwrap();
    let (front, replicas) = (&ports[0], &ports[1..]);
    d.serve("helper", &[]);
    let mut logs = Vec::new();
    for (i, addr) in replicas.iter().enumerate() {
        // Each replica logs to its own file.
        d.serve("lab", &["--listen", addr]);
        let log = d.path(&format!("lab{i}.log"));
        std::fs::rename(d.path("lab.log"), &log).unwrap();
        logs.push(log);
    }
    let cfg = format!(
        "global\n  maxconn 256\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  \
         timeout server 60s\nfrontend veil\n  bind {front}\n  default_backend replicas\n\
         backend replicas\n  balance roundrobin\n  server r0 {}\n  server r1 {}\n",
        replicas[0], replicas[1]
    );
    let cfg_path = d.path("haproxy.cfg");
    std::fs::write(&cfg_path, cfg).unwrap();
    let proxy = Command::new(&haproxy)
        .args(["-db", "-f", &cfg_path])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    d.children.push(proxy);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(front).is_err() {
        assert!(Instant::now() < deadline, "haproxy did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let clients: Vec<Child> = (0..16)
        .map(|i| {
            d.predict(
                if i % 2 == 0 { "alice" } else { "bob" },
                &format!("out{i}"),
                &["--server", front, "--per-row", "-q"],
            )
        })
        .collect();
    for (i, c) in clients.into_iter().enumerate() {
        let o = finish(c, Duration::from_secs(120));
        assert!(o.status.success(), "client {i}: {}", stderr(&o));
        d.check_answers(&format!("out{i}"));
    }
    let ok = |log: &str| {
        std::fs::read_to_string(log)
            .unwrap()
            .lines()
            .filter(|l| l.contains("outcome=\"ok\""))
            .count()
    };
    let (a, b) = (ok(&logs[0]), ok(&logs[1]));
    assert_eq!(a + b, 16 * 3);
    assert!(a > 0 && b > 0, "one replica served everything: {a} and {b}");
}

#[test]
fn certs_make_a_ca_and_sign_clients_without_replacing_files() {
    let dir = std::env::temp_dir().join(format!("veil-serve-{}-certs", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = |f: &str| dir.join(f).display().to_string();
    let certs = |args: &[&str]| veil().arg("certs").args(args).output().unwrap();
    assert!(certs(&["--out", &d("ca"), "--new-ca"]).status.success());
    let again = certs(&["--out", &d("ca"), "--new-ca"]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("nothing was written"),
        "{}",
        stderr(&again)
    );
    let o = certs(&["--out", &d("c"), "--ca", &d("ca"), "--client", "carol"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The fingerprint it prints is the certificate's SHA-256.
    let pem = std::fs::read(dir.join("c/carol.crt")).unwrap();
    let der = net::parse_cert(&pem).unwrap();
    let fp = net::hex(&net::service::fingerprint(der.as_ref()));
    assert!(String::from_utf8_lossy(&o.stdout).contains(&fp));
    // Without the CA's key nothing is issued.
    let o = certs(&["--out", &d("c2"), "--ca", &d("nowhere"), "--client", "dave"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("cannot read the CA's key"),
        "{}",
        stderr(&o)
    );
    assert!(!dir.join("c2/dave.crt").exists());
}
