//! End-to-end tests of the networked mode: `veil certs`, then one `veil party`
//! process per party of models/logreg_100.veil, on 127.0.0.1 only. Every
//! process is bounded by a deadline and killed if it overruns.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const MODEL: &str = "models/logreg_100.veil";
const PARTIES: [&str; 3] = ["client", "server", "helper"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tempdir(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("veil-mp-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn free_addresses(n: usize) -> Vec<String> {
    net::free_loopback_addresses(n).unwrap()
}

/// `veil certs` for the model's parties into `dir`; returns its stdout
/// (the summary of what it wrote).
fn certs(dir: &Path) -> String {
    certs_for(dir, &PARTIES)
}

/// `veil certs ARGS`: its output.
fn veil_certs(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_veil"))
        .args(["certs", "--out"])
        .arg(dir)
        .args(args)
        .output()
        .unwrap()
}

/// `veil certs` for `names` into `dir` (certificates, keys and
/// `dir/parties.toml`); returns its stdout.
fn certs_for(dir: &Path, names: &[&str]) -> String {
    let out = veil_certs(names, dir);
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// A parties.toml in `dir` pinning the certificates of `cert_dir`, with free
/// loopback addresses; `key_dir` holds the keys.
fn config(dir: &Path, name: &str, addrs: &[String], cert_dir: &Path, key_dir: &Path) -> PathBuf {
    let mut s = String::new();
    for (p, addr) in PARTIES.iter().zip(addrs) {
        s.push_str(&format!(
            "[[party]]\nname = \"{p}\"\naddress = \"{addr}\"\ncert = {:?}\nkey = {:?}\n\n",
            cert_dir.join(format!("{p}.crt")),
            key_dir.join(format!("{p}.key")),
        ));
    }
    let path = dir.join(name);
    std::fs::write(&path, s).unwrap();
    path
}

/// Inputs: 700 rows of 100 features (enough that the dealer streams party
/// 1's corrections in several frames), weights, bias. Returns the
/// plaintext probabilities sigmoid(x @ w + b).
fn inputs(dir: &Path) -> Vec<f64> {
    inputs_rows(dir, 700)
}

/// [`inputs`] with `rows` rows.
fn inputs_rows(dir: &Path, rows: usize) -> Vec<f64> {
    let x: Vec<Vec<f64>> = (0..rows)
        .map(|r| {
            (0..100)
                .map(|c| (((r * 37 + c * 11) % 17) as f64 - 8.0) / 4.0)
                .collect()
        })
        .collect();
    let w: Vec<f64> = (0..100)
        .map(|c| (((c * 7) % 13) as f64 - 6.0) / 80.0)
        .collect();
    let b = 0.25;
    let csv: String = x
        .iter()
        .map(|r| {
            r.iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(",")
                + "\n"
        })
        .collect();
    std::fs::write(dir.join("x.csv"), csv).unwrap();
    std::fs::write(
        dir.join("w.json"),
        serde_json::to_string(&w).unwrap().into_bytes(),
    )
    .unwrap();
    std::fs::write(dir.join("b.json"), "0.25").unwrap();
    x.iter()
        .map(|r| {
            let z: f64 = r.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>() + b;
            1.0 / (1.0 + (-z).exp())
        })
        .collect()
}

fn spawn_party(dir: &Path, who: &str, config: &Path, extra: &[&str]) -> Child {
    let d = |f: &str| dir.join(f).display().to_string();
    let inputs = match who {
        "client" => vec![format!("x={}", d("x.csv"))],
        "server" => vec![format!("w={}", d("w.json")), format!("b={}", d("b.json"))],
        _ => vec![],
    };
    let out = (who != "helper").then(|| dir.join(format!("out-{who}")));
    let mut flags = vec!["--connect-timeout", "4", "--timeout", "4"];
    flags.extend_from_slice(extra);
    spawn(
        Path::new(MODEL),
        who,
        config,
        &inputs,
        out.as_deref(),
        &flags,
    )
}

/// `veil party MODEL --as WHO --config CONFIG`, with `-i` for each of
/// `inputs`, `-o OUT` if given, and `flags`.
fn spawn(
    model: &Path,
    who: &str,
    config: &Path,
    inputs: &[String],
    out: Option<&Path>,
    flags: &[&str],
) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_veil"));
    cmd.current_dir(root())
        .arg("party")
        .arg(model)
        .args(["--as", who, "--config"])
        .arg(config)
        .args(flags)
        .args(inputs.iter().flat_map(|i| ["-i", i.as_str()]));
    if let Some(out) = out {
        cmd.arg("-o").arg(out);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Wait for a party, killing it if it runs past `limit`.
fn finish(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "a party overran {limit:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Reads `party`'s standard error (taking it) until it says it is
/// connected to every peer; kills it and fails the test if it never does.
fn wait_until_connected(party: &mut Child, who: &str) {
    use std::io::BufRead as _;
    let mut lines = std::io::BufReader::new(party.stderr.take().unwrap()).lines();
    let deadline = Instant::now() + LIMIT;
    loop {
        match lines.next() {
            Some(Ok(l)) if l.contains("connected to every peer") => return,
            Some(Ok(_)) if Instant::now() < deadline => {}
            other => {
                let _ = party.kill();
                panic!("the {who} never connected: {other:?}");
            }
        }
    }
}

fn assert_failed_without_output(o: &Output, dir: &Path, who: &str) {
    assert!(!o.status.success(), "{who} should fail: {}", stderr(o));
    assert!(
        stderr(o).contains("no output was written"),
        "{who}: {}",
        stderr(o)
    );
    assert!(
        !dir.join(format!("out-{who}"))
            .join(format!("{who}.json"))
            .exists(),
        "{who} wrote output"
    );
}

const LIMIT: Duration = Duration::from_secs(20);

/// `veil certs` for `names` into `dir`, and the `dir/parties.toml` it
/// writes moved to free loopback ports (the ports from 7100 may be taken).
fn certs_and_config(dir: &Path, names: &[&str]) {
    certs_for(dir, names);
    let path = dir.join("parties.toml");
    let mut toml = std::fs::read_to_string(&path).unwrap();
    for (i, addr) in free_addresses(names.len()).iter().enumerate() {
        let default = format!("address = \"127.0.0.1:{}\"", 7100 + i);
        assert!(toml.contains(&default), "{toml}");
        toml = toml.replace(&default, &format!("address = \"{addr}\""));
    }
    std::fs::write(path, toml).unwrap();
}

/// [`spawn`] with `dir/parties.toml` and output to `dir/out-WHO`.
fn spawn_in(dir: &Path, model: &Path, who: &str, inputs: &[String], flags: &[&str]) -> Child {
    let out = dir.join(format!("out-{who}"));
    spawn(
        model,
        who,
        &dir.join("parties.toml"),
        inputs,
        Some(&out),
        flags,
    )
}

/// Output `name` that party `who` wrote to `dir/out-{who}/{who}.json`.
fn output(dir: &Path, who: &str, name: &str) -> Vec<f64> {
    let path = dir.join(format!("out-{who}")).join(format!("{who}.json"));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v[name]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

#[test]
fn three_processes_compute_logistic_regression_over_tls() {
    let dir = tempdir("ok");
    let summary = certs(&dir);
    assert!(summary.contains("parties.toml"), "{summary}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.join("client.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "key files are private");
    }
    let expected = inputs(&dir);
    let cfg = config(&dir, "parties.toml", &free_addresses(3), &dir, &dir);
    // Start in the "wrong" order: the client (who others dial) last.
    let helper = spawn_party(&dir, "helper", &cfg, &["--session", "t1"]);
    let server = spawn_party(&dir, "server", &cfg, &["--session", "t1"]);
    std::thread::sleep(Duration::from_millis(300));
    let client = spawn_party(&dir, "client", &cfg, &["--session", "t1", "--stats"]);
    for (who, o) in [
        ("client", finish(client, LIMIT)),
        ("server", finish(server, LIMIT)),
        ("helper", finish(helper, LIMIT)),
    ] {
        assert!(o.status.success(), "{who}: {}", stderr(&o));
    }
    let got = output(&dir, "client", "p");
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(&expected) {
        assert!((g - e).abs() < 0.02, "private {g} vs plaintext {e}");
    }
    // The server learns nothing: no output file.
    assert!(!dir.join("out-server").join("server.json").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 14: `veil certs --out certs ... > certs/parties.toml` failed in a
/// fresh folder (the shell opens the file before veil creates the folder),
/// and a second run emptied parties.toml before refusing. veil certs now
/// writes parties.toml itself, and refuses to replace anything without
/// --force, before writing anything.
#[test]
fn certs_writes_parties_toml_into_a_fresh_folder_and_never_replaces_it() {
    let base = tempdir("certs");
    let dir = base.join("fresh").join("certs");
    let o = veil_certs(
        &["alice", "bob", "--host", "10.0.0.5", "--base-port", "9000"],
        &dir,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let summary = String::from_utf8(o.stdout).unwrap();
    assert!(
        summary.contains(&format!("wrote {}", dir.join("parties.toml").display())),
        "{summary}"
    );
    assert!(
        !summary.contains("[[party]]"),
        "no template on stdout: {summary}"
    );
    let toml = std::fs::read_to_string(dir.join("parties.toml")).unwrap();
    for (name, port) in [("alice", 9000), ("bob", 9001)] {
        let entry = format!(
            "[[party]]\nname = \"{name}\"\naddress = \"10.0.0.5:{port}\"\ncert = \"{name}.crt\"\nkey = \"{name}.key\"\n"
        );
        assert!(toml.contains(&entry), "{toml}");
        assert!(dir.join(format!("{name}.crt")).is_file());
        assert!(dir.join(format!("{name}.key")).is_file());
    }
    // A second run refuses, names the files, and changes nothing.
    let before: Vec<Vec<u8>> = ["parties.toml", "alice.crt", "alice.key"]
        .iter()
        .map(|f| std::fs::read(dir.join(f)).unwrap())
        .collect();
    let o = veil_certs(&["alice", "bob"], &dir);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("parties.toml`") && e.contains("alice.key`") && e.contains("--force"),
        "{e}"
    );
    assert!(e.contains("nothing was written"), "{e}");
    let after: Vec<Vec<u8>> = ["parties.toml", "alice.crt", "alice.key"]
        .iter()
        .map(|f| std::fs::read(dir.join(f)).unwrap())
        .collect();
    assert_eq!(before, after);
    // Even a parties.toml alone is not replaced.
    let lone = base.join("lone");
    std::fs::create_dir_all(&lone).unwrap();
    std::fs::write(lone.join("parties.toml"), "# mine\n").unwrap();
    assert!(!veil_certs(&["alice"], &lone).status.success());
    assert_eq!(
        std::fs::read_to_string(lone.join("parties.toml")).unwrap(),
        "# mine\n"
    );
    assert!(!lone.join("alice.key").exists(), "nothing was written");
    // An empty one (what `> DIR/parties.toml` leaves) is.
    std::fs::write(lone.join("parties.toml"), "").unwrap();
    certs_for(&lone, &["alice"]);
    assert!(std::fs::read_to_string(lone.join("parties.toml"))
        .unwrap()
        .contains("name = \"alice\""));
    // --force replaces everything.
    let o = veil_certs(&["alice", "bob", "--force"], &dir);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_ne!(std::fs::read(dir.join("alice.key")).unwrap(), before[2]);
    let _ = std::fs::remove_dir_all(&base);
}

/// Issue 14: `veil party` could not run the plan `veil compile --emit json`
/// writes. The client runs the plan file, the others compile the model
/// file: the same fingerprint, so the run completes. A plan file of
/// another format version is refused before connecting.
#[test]
fn a_plan_file_runs_with_parties_that_compile_the_model() {
    let dir = tempdir("planfile");
    certs(&dir);
    let expected = inputs(&dir);
    let cfg = config(&dir, "parties.toml", &free_addresses(3), &dir, &dir);
    let plan = dir.join("logreg_100.json");
    let o = Command::new(env!("CARGO_BIN_EXE_veil"))
        .current_dir(root())
        .args(["compile", MODEL, "--emit", "json", "-o"])
        .arg(&plan)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&plan).unwrap();
    let v2 = dir.join("next.json");
    let (now, next) = (plan::FORMAT_VERSION, plan::FORMAT_VERSION + 1);
    assert!(text.contains(&format!("\"format\": {now},")));
    std::fs::write(
        &v2,
        text.replace(
            &format!("\"format\": {now},"),
            &format!("\"format\": {next},"),
        ),
    )
    .unwrap();
    let d = |f: &str| dir.join(f).display().to_string();
    let x = [format!("x={}", d("x.csv"))];
    let out = dir.join("out-client");
    let flags = ["--connect-timeout", "4", "--timeout", "4"];
    let old = Command::new(env!("CARGO_BIN_EXE_veil"))
        .current_dir(root())
        .args(["party", "--plan"])
        .arg(&v2)
        .args(["--as", "client", "--config"])
        .arg(&cfg)
        .args(["-i", &x[0]])
        .output()
        .unwrap();
    assert_failed_without_output(&old, &dir, "client");
    assert!(
        stderr(&old).contains(&format!(
            "plan format {next}, but this veil runs plans of format {now}"
        )),
        "{}",
        stderr(&old)
    );
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_veil"));
    cmd.current_dir(root())
        .args(["party", "--plan"])
        .arg(&plan)
        .args(["--as", "client", "--config"])
        .arg(&cfg)
        .args(flags)
        .args(["-i", &x[0], "-o"])
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let client = cmd.spawn().unwrap();
    let server = spawn_party(&dir, "server", &cfg, &[]);
    let helper = spawn_party(&dir, "helper", &cfg, &[]);
    for (who, o) in [
        ("client", finish(client, LIMIT)),
        ("server", finish(server, LIMIT)),
        ("helper", finish(helper, LIMIT)),
    ] {
        assert!(o.status.success(), "{who}: {}", stderr(&o));
    }
    let got = output(&dir, "client", "p");
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(&expected) {
        assert!((g - e).abs() < 0.02, "private {g} vs plaintext {e}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_party_stops_the_others_with_an_error() {
    let dir = tempdir("missing");
    certs(&dir);
    inputs(&dir);
    let cfg = config(&dir, "parties.toml", &free_addresses(3), &dir, &dir);
    let started = Instant::now();
    let client = spawn_party(&dir, "client", &cfg, &[]);
    let server = spawn_party(&dir, "server", &cfg, &[]);
    let (c, s) = (finish(client, LIMIT), finish(server, LIMIT));
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_failed_without_output(&c, &dir, "client");
    assert_failed_without_output(&s, &dir, "server");
    assert!(stderr(&c).contains("helper"), "{}", stderr(&c));
    assert!(stderr(&s).contains("helper"), "{}", stderr(&s));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_killed_party_stops_the_others_with_an_error() {
    let dir = tempdir("killed");
    certs(&dir);
    inputs(&dir);
    let cfg = config(&dir, "parties.toml", &free_addresses(3), &dir, &dir);
    let client = spawn_party(&dir, "client", &cfg, &[]);
    let mut server = spawn_party(&dir, "server", &cfg, &[]);
    // The server connects to the client, then dies before the run.
    std::thread::sleep(Duration::from_millis(700));
    server.kill().unwrap();
    let _ = server.wait();
    let helper = spawn_party(&dir, "helper", &cfg, &[]);
    let started = Instant::now();
    let (c, h) = (finish(client, LIMIT), finish(helper, LIMIT));
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_failed_without_output(&c, &dir, "client");
    assert_failed_without_output(&h, &dir, "helper");
    assert!(stderr(&c).contains("server"), "{}", stderr(&c));
    assert!(stderr(&h).contains("server"), "{}", stderr(&h));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 14: `--assume` and `--network` changed the plan hash, so parties
/// that differed only in the compiler's estimates refused each other with
/// "plan mismatch". Only what executes is compared now. (Sizes that change
/// the cost model's choices change the plan: a helper assuming 3 rows gets
/// comparisons by DCF keys, and the parties refuse each other, naming
/// `--assume`. Here every size keeps the carry tree.)
#[test]
fn flags_that_change_only_the_estimates_do_not_stop_the_run() {
    let dir = tempdir("estimates");
    certs(&dir);
    let expected = inputs(&dir);
    let cfg = config(&dir, "parties.toml", &free_addresses(3), &dir, &dir);
    let client = spawn_party(&dir, "client", &cfg, &[]);
    let server = spawn_party(
        &dir,
        "server",
        &cfg,
        &["--network", "wan", "--assume", "batch=5000"],
    );
    let helper = spawn_party(&dir, "helper", &cfg, &["--assume", "batch=300"]);
    for (who, o) in [
        ("client", finish(client, LIMIT)),
        ("server", finish(server, LIMIT)),
        ("helper", finish(helper, LIMIT)),
    ] {
        assert!(o.status.success(), "{who}: {}", stderr(&o));
    }
    let got = output(&dir, "client", "p");
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(&expected) {
        assert!((g - e).abs() < 0.02, "private {g} vs plaintext {e}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A really different model (the server's copy declares another range for
/// `w`) is refused by both sides, naming what differs and the likely cause.
#[test]
fn a_different_model_is_refused_by_both_sides_naming_what_differs() {
    let dir = tempdir("plan");
    certs(&dir);
    inputs(&dir);
    let cfg = config(&dir, "parties.toml", &free_addresses(3), &dir, &dir);
    let source = std::fs::read_to_string(root().join(MODEL)).unwrap();
    let changed = source.replace("in [-0.1, 0.1]", "in [-0.2, 0.2]");
    assert_ne!(source, changed);
    let theirs = dir.join("logreg_100.veil");
    std::fs::write(&theirs, changed).unwrap();
    let client = spawn_party(&dir, "client", &cfg, &[]);
    let d = |f: &str| dir.join(f).display().to_string();
    let server = spawn(
        &theirs,
        "server",
        &cfg,
        &[format!("w={}", d("w.json")), format!("b={}", d("b.json"))],
        Some(&dir.join("out-server")),
        &["--connect-timeout", "4", "--timeout", "4"],
    );
    let helper = spawn_party(&dir, "helper", &cfg, &[]);
    let (c, s, h) = (
        finish(client, LIMIT),
        finish(server, LIMIT),
        finish(helper, LIMIT),
    );
    assert_failed_without_output(&c, &dir, "client");
    assert_failed_without_output(&s, &dir, "server");
    assert!(!h.status.success());
    let why = "the plans differ first in `inputs` (the inputs' names, owners, shapes or \
               ranges), most likely because of different model files";
    assert!(
        stderr(&c).contains(&format!("plan mismatch with server: {why}")),
        "{}",
        stderr(&c)
    );
    assert!(
        stderr(&s).contains(&format!("plan mismatch with client: {why}")),
        "{}",
        stderr(&s)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_different_session_is_refused() {
    let dir = tempdir("session");
    certs(&dir);
    inputs(&dir);
    let cfg = config(&dir, "parties.toml", &free_addresses(3), &dir, &dir);
    let client = spawn_party(&dir, "client", &cfg, &["--session", "a"]);
    let server = spawn_party(&dir, "server", &cfg, &["--session", "a"]);
    let helper = spawn_party(&dir, "helper", &cfg, &["--session", "b"]);
    let (c, s, h) = (
        finish(client, LIMIT),
        finish(server, LIMIT),
        finish(helper, LIMIT),
    );
    assert_failed_without_output(&c, &dir, "client");
    assert_failed_without_output(&s, &dir, "server");
    assert!(!h.status.success());
    assert!(stderr(&h).contains("session mismatch"), "{}", stderr(&h));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unpinned_certificate_is_refused() {
    let dir = tempdir("cert");
    let other = dir.join("other");
    std::fs::create_dir_all(&other).unwrap();
    certs(&dir);
    certs(&other);
    inputs(&dir);
    let addrs = free_addresses(3);
    let cfg = config(&dir, "parties.toml", &addrs, &dir, &dir);
    // The server presents a certificate (and key) the others have not pinned.
    let rogue = config(&dir, "rogue.toml", &addrs, &other, &other);
    let client = spawn_party(&dir, "client", &cfg, &[]);
    let server = spawn_party(&dir, "server", &rogue, &[]);
    let helper = spawn_party(&dir, "helper", &cfg, &[]);
    let (c, s, h) = (
        finish(client, LIMIT),
        finish(server, LIMIT),
        finish(helper, LIMIT),
    );
    assert_failed_without_output(&c, &dir, "client");
    assert_failed_without_output(&s, &dir, "server");
    assert!(!h.status.success());
    assert!(stderr(&c).contains("certificate"), "{}", stderr(&c));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Defect 4 of issue 14: a connection from anyone made the listening party
/// exit (and the others followed), and a silent one blocked its accept loop.
/// Before the real peers start, the client (which only listens) gets a
/// silent connection, random bytes, an HTTP request and a `veil party`
/// with a certificate nobody pinned; it drops each with a warning and the
/// run completes.
#[test]
fn strangers_connecting_before_the_peers_do_not_stop_the_run() {
    use std::io::Write as _;
    use std::net::TcpStream;
    let dir = tempdir("strangers");
    let other = dir.join("other");
    std::fs::create_dir_all(&other).unwrap();
    certs(&dir);
    certs_for(&other, &["server"]);
    let expected = inputs(&dir);
    let addrs = free_addresses(5);
    let cfg = config(&dir, "parties.toml", &addrs[..3], &dir, &dir);
    // The rogue server trusts the real client but has its own certificate,
    // and listens elsewhere.
    let rogue = dir.join("rogue.toml");
    std::fs::write(
        &rogue,
        format!(
            "[[party]]\nname = \"client\"\naddress = \"{}\"\ncert = {:?}\n\n\
             [[party]]\nname = \"server\"\naddress = \"{}\"\ncert = {:?}\nkey = {:?}\n\n\
             [[party]]\nname = \"helper\"\naddress = \"{}\"\ncert = {:?}\n",
            addrs[0],
            dir.join("client.crt"),
            addrs[3],
            other.join("server.crt"),
            other.join("server.key"),
            addrs[4],
            dir.join("helper.crt"),
        ),
    )
    .unwrap();
    let d = |f: &str| dir.join(f).display().to_string();
    let timeouts = ["--connect-timeout", "15", "--timeout", "10"];
    let client = spawn(
        Path::new(MODEL),
        "client",
        &cfg,
        &[format!("x={}", d("x.csv"))],
        Some(&dir.join("out-client")),
        &timeouts,
    );
    // The silent stranger connects as soon as the client listens, and
    // stays until the end of the test.
    let deadline = Instant::now() + LIMIT;
    let _silent = loop {
        match TcpStream::connect(&addrs[0]) {
            Ok(s) => break s,
            Err(e) if Instant::now() > deadline => panic!("the client never listened: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let mut garbage = TcpStream::connect(&addrs[0]).unwrap();
    let bytes: Vec<u8> = (0u32..600).map(|i| (i * 7919 % 251) as u8).collect();
    garbage.write_all(&bytes).unwrap();
    let mut http = TcpStream::connect(&addrs[0]).unwrap();
    http.write_all(b"GET / HTTP/1.1\r\nHost: veil\r\n\r\n")
        .unwrap();
    let impostor = spawn(
        Path::new(MODEL),
        "server",
        &rogue,
        &[format!("w={}", d("w.json")), format!("b={}", d("b.json"))],
        Some(&dir.join("out-impostor")),
        &["--connect-timeout", "4", "--timeout", "4"],
    );
    let i = finish(impostor, LIMIT);
    assert!(!i.status.success(), "the impostor was accepted");
    let server = spawn(
        Path::new(MODEL),
        "server",
        &cfg,
        &[format!("w={}", d("w.json")), format!("b={}", d("b.json"))],
        Some(&dir.join("out-server")),
        &timeouts,
    );
    let helper = spawn(Path::new(MODEL), "helper", &cfg, &[], None, &timeouts);
    let (c, s, h) = (
        finish(client, LIMIT),
        finish(server, LIMIT),
        finish(helper, LIMIT),
    );
    for (who, o) in [("client", &c), ("server", &s), ("helper", &h)] {
        assert!(o.status.success(), "{who}: {}", stderr(o));
    }
    let got = output(&dir, "client", "p");
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(&expected) {
        assert!((g - e).abs() < 0.02, "private {g} vs plaintext {e}");
    }
    let log = stderr(&c);
    let dropped: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("warning: client: dropped a connection from 127.0.0.1:"))
        .collect();
    // The silent connection may still be open when the run ends.
    assert!(dropped.len() >= 3, "{log}");
    assert!(dropped.iter().any(|l| l.contains("certificate")), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// credit_2p (two parties, Paillier keys of 2048 bits) runs for a second or
/// more: kill the bank as soon as it is connected, in the middle of the run.
#[test]
fn a_party_killed_mid_run_stops_its_peer_promptly() {
    let dir = tempdir("midrun");
    certs_and_config(&dir, &["applicant", "bank"]);
    std::fs::write(dir.join("inc.csv"), "1,2,3,4\n5,6,7,8\n").unwrap();
    std::fs::write(dir.join("w.json"), "[0.01, -0.02, 0.03, 0.05]").unwrap();
    std::fs::write(dir.join("t.json"), "0.1").unwrap();
    let party = |who: &str, inputs: &[String]| {
        spawn_in(
            &dir,
            Path::new("models/credit_2p.veil"),
            who,
            inputs,
            &["--connect-timeout", "5", "--timeout", "10"],
        )
    };
    let d = |f: &str| dir.join(f).display().to_string();
    let applicant = party(
        "applicant",
        &[
            format!("income_debt={}", d("inc.csv")),
            format!("threshold={}", d("t.json")),
        ],
    );
    let mut bank = party(
        "bank",
        &[
            format!("weights={}", d("w.json")),
            format!("threshold={}", d("t.json")),
        ],
    );
    // Wait until the bank reports it is connected, then kill it.
    wait_until_connected(&mut bank, "bank");
    bank.kill().unwrap();
    let _ = bank.wait();
    let killed = Instant::now();
    let a = finish(applicant, LIMIT);
    assert!(
        killed.elapsed() < Duration::from_secs(5),
        "{:?}",
        killed.elapsed()
    );
    assert_failed_without_output(&a, &dir, "applicant");
    assert!(stderr(&a).contains("bank"), "{}", stderr(&a));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 14: two `veil party` processes of a model with a dealer, compiled
/// with `--no-dealer`, waited for the dealer, and a parties.toml without it
/// was refused. Now the two run alone, from a two-party parties.toml; the
/// dealer is told it takes no part, and without `--no-dealer` the missing
/// dealer is named with the fix.
#[test]
fn two_processes_run_a_dealer_model_compiled_without_a_dealer() {
    // Without a dealer the model's product runs on RLWE (issue 17): its
    // key, query and response cross the TLS connection below.
    let source = std::fs::read_to_string(root().join(MODEL)).unwrap();
    let checked = compiler::check_source(&source).model.unwrap();
    let plan = compiler::compile(
        &checked,
        &compiler::Options {
            use_dealer: false,
            ..compiler::Options::default()
        },
    )
    .unwrap()
    .plan;
    assert!(
        plan.to_text().contains("rlwe.respond"),
        "{}",
        plan.to_text()
    );
    let dir = tempdir("nodealer");
    certs_and_config(&dir, &["client", "server"]);
    let expected = inputs_rows(&dir, 5);
    let d = |f: &str| dir.join(f).display().to_string();
    let flags = [
        "--no-dealer",
        "--key-bits",
        "2048",
        "--connect-timeout",
        "10",
        "--timeout",
        "60",
    ];
    let model = Path::new(MODEL);
    let server = spawn_in(
        &dir,
        model,
        "server",
        &[format!("w={}", d("w.json")), format!("b={}", d("b.json"))],
        &flags,
    );
    let client = spawn_in(
        &dir,
        model,
        "client",
        &[format!("x={}", d("x.csv"))],
        &flags,
    );
    let limit = Duration::from_secs(60);
    let (c, s) = (finish(client, limit), finish(server, limit));
    assert!(c.status.success(), "client: {}", stderr(&c));
    assert!(s.status.success(), "server: {}", stderr(&s));
    let got = output(&dir, "client", "p");
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(&expected) {
        assert!((g - e).abs() < 0.02, "private {g} vs plaintext {e}");
    }
    // The dealer has nothing to do.
    let h = finish(spawn_in(&dir, model, "helper", &[], &flags), LIMIT);
    assert_failed_without_output(&h, &dir, "helper");
    assert!(
        stderr(&h).contains(
            "helper takes no part in this plan (it was compiled without a dealer); \
             start only client and server"
        ),
        "{}",
        stderr(&h)
    );
    // With the dealer, the two-party file lacks it: say so, and the fix.
    std::fs::remove_dir_all(dir.join("out-client")).unwrap();
    let c = finish(
        spawn_in(&dir, model, "client", &[format!("x={}", d("x.csv"))], &[]),
        LIMIT,
    );
    assert_failed_without_output(&c, &dir, "client");
    assert!(
        stderr(&c).contains("party `helper` of the model is missing (the dealer of this plan; to run without it, every party compiles with --no-dealer)"),
        "{}",
        stderr(&c)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Two `veil party` processes and no dealer: relu and argmax run secure
/// comparison on correlations the parties generate with Paillier (2048-bit
/// keys), over mutual TLS. The labels match plaintext.
#[test]
fn two_processes_compare_without_a_dealer_over_tls() {
    let dir = tempdir("cmp2p");
    let model = dir.join("cmp_2p.veil");
    std::fs::write(
        &model,
        "model cmp_2p {
    party alice;
    party bob;
    input x: fixed[batch, 4] private(alice) in [-2, 2];
    input w: fixed[4, 3] private(bob) in [-1, 1];
    let h = relu(x @ w);
    let cls = argmax(h);
    output cls to alice;
}
",
    )
    .unwrap();
    certs_and_config(&dir, &["alice", "bob"]);
    // Scores with clear margins (no near-ties), one row per winning class,
    // and a row whose relu zeroes a negative score.
    let x = [
        [1.0, 0.5, -0.5, 0.2],
        [-1.0, 1.0, 0.3, 0.4],
        [0.0, 0.0, 1.0, 0.0],
    ];
    let w = [
        [0.9, 0.1, 0.3],
        [0.2, 0.8, 0.1],
        [0.1, 0.2, 0.7],
        [0.3, 0.3, 0.3],
    ];
    let csv: String = x
        .iter()
        .map(|r| r.map(|v| v.to_string()).join(",") + "\n")
        .collect();
    std::fs::write(dir.join("x.csv"), csv).unwrap();
    std::fs::write(dir.join("w.json"), serde_json::to_string(&w).unwrap()).unwrap();
    let expected: Vec<f64> = x
        .iter()
        .map(|r| {
            let h: Vec<f64> = (0..3)
                .map(|j| (0..4).map(|l| r[l] * w[l][j]).sum::<f64>().max(0.0))
                .collect();
            // First maximum, as the protocol resolves ties.
            (0..3).fold(0, |best, j| if h[j] > h[best] { j } else { best }) as f64
        })
        .collect();
    assert_eq!(
        expected,
        vec![0.0, 1.0, 2.0],
        "the inputs cover every class"
    );
    let party = |who: &str, input: String| {
        let extra = [
            "--key-bits",
            "2048",
            "--connect-timeout",
            "10",
            "--timeout",
            "60",
        ];
        spawn_in(&dir, &model, who, &[input], &extra)
    };
    let d = |f: &str| dir.join(f).display().to_string();
    let bob = party("bob", format!("w={}", d("w.json")));
    let alice = party("alice", format!("x={}", d("x.csv")));
    let limit = Duration::from_secs(120);
    let (a, b) = (finish(alice, limit), finish(bob, limit));
    assert!(a.status.success(), "alice: {}", stderr(&a));
    assert!(b.status.success(), "bob: {}", stderr(&b));
    let got = output(&dir, "alice", "cls");
    assert_eq!(got, expected);
    assert!(!dir.join("out-bob").join("bob.json").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 14, defect 10, for `veil party`: the dealer learns the batch size
/// only at session setup; a party whose estimated memory at that size is
/// over its --max-memory stops there, before the run allocates anything,
/// and says what it needs; the others stop with an error, without output.
#[test]
fn a_party_over_its_memory_limit_stops_at_session_setup() {
    let dir = tempdir("max-memory");
    certs(&dir);
    inputs(&dir);
    let cfg = config(&dir, "parties.toml", &free_addresses(3), &dir, &dir);
    let started = Instant::now();
    let helper = spawn_party(&dir, "helper", &cfg, &["--max-memory", "16KiB"]);
    let server = spawn_party(&dir, "server", &cfg, &[]);
    let client = spawn_party(&dir, "client", &cfg, &[]);
    let (h, s, c) = (
        finish(helper, LIMIT),
        finish(server, LIMIT),
        finish(client, LIMIT),
    );
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_failed_without_output(&h, &dir, "helper");
    let err = stderr(&h);
    assert!(
        err.contains("error: helper: this party would need about ")
            && err.contains(" at batch = 700 (")
            && err.contains("more than its limit of 16 KiB")
            && err.contains("--max-memory"),
        "{err}"
    );
    assert_eq!(h.status.code(), Some(1), "{err}");
    assert_failed_without_output(&c, &dir, "client");
    assert_failed_without_output(&s, &dir, "server");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 22: the client reads its file in chunks (`--chunk-rows` on the
/// client only: the server and the dealer learn the chunking at session
/// setup and follow it), and the result is the whole file's.
#[test]
fn three_processes_score_a_file_in_chunks() {
    let dir = tempdir("chunks");
    certs(&dir);
    let expected = inputs(&dir);
    let cfg = config(&dir, "parties.toml", &free_addresses(3), &dir, &dir);
    let helper = spawn_party(&dir, "helper", &cfg, &["--session", "c1"]);
    let server = spawn_party(&dir, "server", &cfg, &["--session", "c1"]);
    let client = spawn_party(
        &dir,
        "client",
        &cfg,
        &["--session", "c1", "--chunk-rows", "300"],
    );
    let client = finish(client, LIMIT);
    assert!(client.status.success(), "client: {}", stderr(&client));
    assert!(
        stderr(&client).contains("700 rows in 3 chunks of up to 300 rows"),
        "{}",
        stderr(&client)
    );
    for (who, o) in [
        ("server", finish(server, LIMIT)),
        ("helper", finish(helper, LIMIT)),
    ] {
        assert!(o.status.success(), "{who}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("700 rows in 3 chunks"),
            "{who}: {}",
            stderr(&o)
        );
    }
    let got = output(&dir, "client", "p");
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(&expected) {
        assert!((g - e).abs() < 0.02, "private {g} vs plaintext {e}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 22: a party killed in the middle of a stream stops the others;
/// the client names the chunk of rows it was in (or the last one done, when
/// the kill lands between chunks) and writes nothing (no output, no
/// staging file).
#[test]
fn a_party_killed_mid_stream_stops_the_others_and_names_the_rows() {
    let dir = tempdir("killed-stream");
    certs(&dir);
    // 20,000 rows in chunks of 2: thousands of sessions, seconds of work.
    inputs_rows(&dir, 20_000);
    let cfg = config(&dir, "parties.toml", &free_addresses(3), &dir, &dir);
    let helper = spawn_party(&dir, "helper", &cfg, &["--session", "k1"]);
    let mut server = spawn_party(&dir, "server", &cfg, &["--session", "k1"]);
    let client = spawn_party(
        &dir,
        "client",
        &cfg,
        &["--session", "k1", "--chunk-rows", "2"],
    );
    wait_until_connected(&mut server, "server");
    // Well past the session's setup (one round trip after connecting) and
    // long before the last of 10,000 chunks.
    std::thread::sleep(Duration::from_millis(1500));
    server.kill().unwrap();
    let _ = server.wait();
    let c = finish(client, LIMIT);
    assert_failed_without_output(&c, &dir, "client");
    let err = stderr(&c);
    // Killed during a chunk, or between two (agreeing on the next one).
    assert!(
        err.contains("in the chunk of rows") || err.contains("after the chunk of rows"),
        "{err}"
    );
    // The killed server, or the helper that stopped because of it: the
    // client reads whichever closed connection it waits on first (a race
    // this test lost about one run in ten).
    assert!(
        err.contains("server") || err.contains("helper closed the connection"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.join("out-client"))
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    let h = finish(helper, LIMIT);
    assert!(!h.status.success(), "helper: {}", stderr(&h));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 22: parties given different `--chunk-rows` stop at session setup,
/// saying so, and write nothing.
#[test]
fn parties_that_disagree_on_the_chunking_stop_at_setup() {
    let dir = tempdir("chunk-mismatch");
    certs(&dir);
    inputs(&dir);
    let cfg = config(&dir, "parties.toml", &free_addresses(3), &dir, &dir);
    let helper = spawn_party(&dir, "helper", &cfg, &["--session", "c2"]);
    let server = spawn_party(
        &dir,
        "server",
        &cfg,
        &["--session", "c2", "--chunk-rows", "200"],
    );
    let client = spawn_party(
        &dir,
        "client",
        &cfg,
        &["--session", "c2", "--chunk-rows", "300"],
    );
    for (who, o) in [
        ("client", finish(client, LIMIT)),
        ("server", finish(server, LIMIT)),
    ] {
        assert_failed_without_output(&o, &dir, who);
        let err = stderr(&o);
        assert!(
            err.contains("the parties disagree on the chunking") && err.contains("--chunk-rows"),
            "{who}: {err}"
        );
    }
    let helper = finish(helper, LIMIT);
    assert!(!helper.status.success(), "{}", stderr(&helper));
    let _ = std::fs::remove_dir_all(&dir);
}
