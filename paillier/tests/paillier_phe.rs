//! Interop with python-paillier (`pheutil` JSON), fixtures made by
//! benches/peers/gen_phe_fixtures.py with phe 1.5. The tests that run the
//! real `pheutil` find it through `$VEIL_PHEUTIL` or on `PATH`, and skip
//! (saying why on stderr) when there is none.

use std::path::{Path, PathBuf};
use std::process::Command;

use paillier::jwk::{
    encrypted_number_from_json, encrypted_number_to_json, private_key_from_jwk,
    private_key_from_jwk_insecure_for_tests, private_key_to_jwk, public_key_from_jwk,
    public_key_to_jwk,
};
use paillier::{EncodedNumber, Keypair, PaillierError, PrivateKey};
use serde_json::{json, Value};

fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/phe")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn sk() -> PrivateKey {
    private_key_from_jwk(&fixture("priv.json")).unwrap()
}

/// python-paillier's `pheutil`: `$VEIL_PHEUTIL`, else `pheutil` on `PATH`.
/// `None`, after saying why on stderr, when there is none; a `$VEIL_PHEUTIL`
/// that does not run is a failure, not a skip.
fn pheutil(test: &str) -> Option<PathBuf> {
    let explicit = std::env::var_os("VEIL_PHEUTIL").filter(|v| !v.is_empty());
    let path = match &explicit {
        Some(p) => PathBuf::from(p),
        None => {
            let found = std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join("pheutil"))
                    .find(|p| p.is_file())
            });
            match found {
                Some(p) => p,
                None => {
                    eprintln!(
                        "skipping {test}: no pheutil (set VEIL_PHEUTIL, or put python-paillier's \
                         pheutil on PATH: python3 -m venv v && v/bin/pip install 'phe[cli]')"
                    );
                    return None;
                }
            }
        }
    };
    match Command::new(&path).arg("--help").output() {
        Ok(o) if o.status.success() => Some(path),
        other => {
            let why = match other {
                Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
                Err(e) => e.to_string(),
            };
            assert!(
                explicit.is_none(),
                "VEIL_PHEUTIL={} does not run: {why}",
                path.display()
            );
            eprintln!(
                "skipping {test}: {} does not run ({}); install phe[cli] for the click it needs",
                path.display(),
                why.lines().last().unwrap_or("")
            );
            None
        }
    }
}

/// Run pheutil; its stdout, or a failure showing its stderr.
fn phe(pheutil: &Path, args: &[&dyn AsRef<std::ffi::OsStr>]) -> String {
    let out = Command::new(pheutil)
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pheutil {:?} failed: {}",
        args.iter().map(|a| a.as_ref()).collect::<Vec<_>>(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("veil-phe-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write_json(path: &Path, v: &Value) {
    std::fs::write(path, v.to_string()).unwrap();
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn keys_load_and_match() {
    let pk = public_key_from_jwk(&fixture("pub.json")).unwrap();
    let sk = sk();
    assert_eq!(&pk, sk.public_key());
    assert_eq!(pk.bits(), 2048);
    assert_eq!(public_key_to_jwk(&pk, "x")["n"], fixture("pub.json")["n"]);
    let again = private_key_from_jwk(&private_key_to_jwk(&sk, "k", "p")).unwrap();
    assert_eq!(again.phi(), sk.phi());
}

/// Issue 14: Veil writes the private key form that phe 1.5's pheutil reads
/// ("p" and "q", as `pheutil genpkey` writes them), not the older
/// "lambda"/"mu" that pheutil 1.5 refuses.
#[test]
fn private_keys_are_written_in_the_pheutil_1_5_form() {
    let priv_fx = fixture("priv.json");
    let ours = private_key_to_jwk(&sk(), "Paillier private key k", "Paillier public key k");
    let mut fields: Vec<&str> = ours
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["key_ops", "kid", "kty", "p", "pub", "q"]);
    // p < q and the same encoding as phe's
    assert_eq!(ours["p"], priv_fx["p"]);
    assert_eq!(ours["q"], priv_fx["q"]);
    assert_eq!(ours["kty"], "DAJ");
    assert_eq!(ours["key_ops"], json!(["decrypt"]));
    assert_eq!(ours["pub"]["n"], priv_fx["pub"]["n"]);
    assert_eq!(ours["pub"]["alg"], "PAI-GN1");
    assert_eq!(ours["kid"], "Paillier private key k");
    assert_eq!(ours["pub"]["kid"], "Paillier public key k");
}

/// Issue 14: both private key forms load, and give the same key.
#[test]
fn both_private_key_forms_load() {
    let new = private_key_from_jwk(&fixture("priv.json")).unwrap();
    let old = private_key_from_jwk(&fixture("priv_lambda_mu.json")).unwrap();
    assert_eq!(new.public_key(), old.public_key());
    assert_eq!(new.phi(), old.phi());
    let case = &fixture("encrypted.json")[4];
    for sk in [&new, &old] {
        let enc = encrypted_number_from_json(sk.public_key(), &case["enc"]).unwrap();
        assert_eq!(
            sk.decrypt_f64(&enc).unwrap(),
            case["plain"].as_f64().unwrap()
        );
    }
    // a file with both forms loads when they agree, and is refused otherwise
    let mut both = fixture("priv.json");
    let old_fx = fixture("priv_lambda_mu.json");
    both["lambda"] = old_fx["lambda"].clone();
    both["mu"] = old_fx["mu"].clone();
    assert_eq!(private_key_from_jwk(&both).unwrap().phi(), new.phi());
    both["mu"] = json!("AQAB");
    let e = private_key_from_jwk(&both).unwrap_err();
    assert!(e.to_string().contains("mu"), "{e}");
}

#[test]
fn phe_ciphertexts_decrypt() {
    let sk = sk();
    let pk = sk.public_key();
    for case in fixture("encrypted.json").as_array().unwrap() {
        let want = case["plain"].as_f64().unwrap();
        let enc = encrypted_number_from_json(pk, &case["enc"]).unwrap();
        assert_eq!(enc.exponent, -32);
        assert_eq!(sk.decrypt_f64(&enc).unwrap(), want);
        // our serialisation is byte-identical to phe's
        assert_eq!(encrypted_number_to_json(&enc), case["enc"]);
    }
}

#[test]
fn phe_ops_reproduced() {
    let sk = sk();
    let pk = sk.public_key();
    for op in fixture("ops.json").as_array().unwrap() {
        let a = encrypted_number_from_json(pk, &op["a"]).unwrap();
        let ours = match op["op"].as_str().unwrap() {
            "add" => {
                let b = encrypted_number_from_json(pk, &op["b"]).unwrap();
                pk.add_encrypted(&a, &b).unwrap()
            }
            "add_plain" => {
                let k =
                    EncodedNumber::from_f64(op["k"].as_f64().unwrap(), Some(a.exponent)).unwrap();
                pk.add_encoded(&a, &k).unwrap()
            }
            "mul" => {
                let k = EncodedNumber::from_f64(op["k"].as_f64().unwrap(), None).unwrap();
                pk.mul_encoded(&a, &k).unwrap()
            }
            other => panic!("unknown op {other}"),
        };
        let ours = if ours.exponent > -32 {
            pk.decrease_exponent_to(&ours, -32).unwrap()
        } else {
            ours
        };
        let theirs = encrypted_number_from_json(pk, &op["result"]).unwrap();
        let want = op["plain"].as_f64().unwrap();
        assert_eq!(sk.decrypt_f64(&theirs).unwrap(), want);
        assert_eq!(sk.decrypt_f64(&ours).unwrap(), want);
        // phe re-randomises results on serialisation, so compare plaintexts
        assert_eq!(ours.exponent, theirs.exponent, "op {}", op["op"]);
    }
}

/// Issue 14, direction Veil -> pheutil: pheutil 1.5 reads a private key
/// Veil wrote (it refused the old form with `AssertionError: Invalid private
/// key`), decrypts Veil's ciphertexts, and Veil decrypts pheutil's.
#[test]
fn pheutil_reads_veil_keys_and_ciphertexts() {
    let Some(pheutil) = pheutil("pheutil_reads_veil_keys_and_ciphertexts") else {
        return;
    };
    let d = tmpdir("veil-to-phe");
    // a small key is enough for the format (pheutil has no floor)
    let kp = Keypair::generate_insecure_for_tests(1024, &mut rand::rng()).unwrap();
    let key = d.join("key.json");
    write_json(&key, &private_key_to_jwk(&kp.private, "k", "p"));
    let pub_path = d.join("pub.json");
    phe(&pheutil, &[&"extract", &key, &pub_path]);
    assert_eq!(
        read_json(&pub_path)["n"],
        public_key_to_jwk(&kp.public, "p")["n"]
    );
    let pk = &kp.public;
    for v in [-7.25, 0.1, 123456.75] {
        // Veil encrypts, pheutil decrypts with Veil's private key
        let e = pk.encrypt_f64(v).unwrap();
        let e = pk.decrease_exponent_to(&e, e.exponent.min(-32)).unwrap();
        let enc_path = d.join("veil.json");
        write_json(&enc_path, &encrypted_number_to_json(&e));
        let out = phe(&pheutil, &[&"decrypt", &key, &enc_path]);
        assert_eq!(out.trim().parse::<f64>().unwrap(), v, "{out}");
        // pheutil encrypts with the public key it extracted, Veil decrypts
        let arg = v.to_string();
        let out = phe(&pheutil, &[&"encrypt", &pub_path, &"--", &arg]);
        let theirs: Value = serde_json::from_str(&out).unwrap();
        let sk = private_key_from_jwk_insecure_for_tests(&read_json(&key)).unwrap();
        let enc = encrypted_number_from_json(sk.public_key(), &theirs).unwrap();
        assert_eq!(sk.decrypt_f64(&enc).unwrap(), v);
    }
    std::fs::remove_dir_all(&d).ok();
}

/// Issue 14, direction pheutil -> Veil: a key from `pheutil genpkey` (phe
/// 1.5: "p" and "q") loads, and ciphertexts go both ways.
#[test]
fn veil_reads_pheutil_genpkey_keys() {
    let Some(pheutil) = pheutil("veil_reads_pheutil_genpkey_keys") else {
        return;
    };
    let d = tmpdir("phe-to-veil");
    let key = d.join("key.json");
    phe(&pheutil, &[&"genpkey", &"--keysize", &"2048", &key]);
    let sk = private_key_from_jwk(&read_json(&key)).unwrap();
    let pk = sk.public_key();
    assert_eq!(pk.bits(), 2048);
    let pub_path = d.join("pub.json");
    phe(&pheutil, &[&"extract", &key, &pub_path]);
    assert_eq!(&public_key_from_jwk(&read_json(&pub_path)).unwrap(), pk);
    for v in [-0.25, 42.0] {
        let arg = v.to_string();
        let out = phe(&pheutil, &[&"encrypt", &pub_path, &"--", &arg]);
        let enc = encrypted_number_from_json(pk, &serde_json::from_str(&out).unwrap()).unwrap();
        assert_eq!(sk.decrypt_f64(&enc).unwrap(), v);
        let ours = pk.encrypt_f64(v).unwrap();
        let ours = pk.decrease_exponent_to(&ours, -32).unwrap();
        let enc_path = d.join("veil.json");
        write_json(&enc_path, &encrypted_number_to_json(&ours));
        let out = phe(&pheutil, &[&"decrypt", &key, &enc_path]);
        assert_eq!(out.trim().parse::<f64>().unwrap(), v, "{out}");
    }
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn malformed_inputs_are_errors() {
    let pub_fx = fixture("pub.json");
    let priv_fx = fixture("priv.json");
    let sk = sk();
    let pk = sk.public_key();
    let mutate = |base: &Value, f: &str, v: Value| {
        let mut x = base.clone();
        x[f] = v;
        x
    };
    assert!(public_key_from_jwk(&json!([1, 2])).is_err());
    assert!(public_key_from_jwk(&mutate(&pub_fx, "kty", json!("RSA"))).is_err());
    assert!(public_key_from_jwk(&mutate(&pub_fx, "alg", json!("X"))).is_err());
    assert!(public_key_from_jwk(&mutate(&pub_fx, "n", json!("!!"))).is_err());
    assert!(public_key_from_jwk(&mutate(&pub_fx, "n", json!(5))).is_err());
    assert!(matches!(
        public_key_from_jwk(&mutate(&pub_fx, "n", json!("Iw"))),
        Err(PaillierError::KeyTooSmall(_))
    ));
    let old_fx = fixture("priv_lambda_mu.json");
    assert!(private_key_from_jwk(&mutate(&old_fx, "lambda", json!("AQAB"))).is_err());
    assert!(private_key_from_jwk(&mutate(&old_fx, "mu", json!("AQAB"))).is_err());
    assert!(private_key_from_jwk(&mutate(&old_fx, "key_ops", json!(["encrypt"]))).is_err());
    assert!(private_key_from_jwk(&mutate(&priv_fx, "key_ops", json!(["encrypt"]))).is_err());
    assert!(private_key_from_jwk(&pub_fx).is_err());
    let e = private_key_from_jwk(&mutate(&old_fx, "lambda", json!("AQAB"))).unwrap_err();
    assert!(!e.to_string().contains(old_fx["lambda"].as_str().unwrap()));
    // p and q: both needed, their product must be n, never echoed
    let p = priv_fx["p"].clone();
    let q = priv_fx["q"].clone();
    for bad in [
        mutate(&priv_fx, "p", json!("AQAB")),
        mutate(&priv_fx, "q", p.clone()),
        mutate(&priv_fx, "q", json!(12)),
        mutate(&priv_fx, "p", json!("Aw")),
    ] {
        let e = private_key_from_jwk(&bad).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("invalid key") || msg.contains("invalid private key"),
            "{msg}"
        );
        assert!(!msg.contains(p.as_str().unwrap()) && !msg.contains(q.as_str().unwrap()));
    }
    // the order of p and q does not matter (phe sorts them)
    let swapped = mutate(&mutate(&priv_fx, "p", q.clone()), "q", p.clone());
    assert_eq!(private_key_from_jwk(&swapped).unwrap().phi(), sk.phi());
    let mut only_p = priv_fx.clone();
    only_p.as_object_mut().unwrap().remove("q");
    let e = private_key_from_jwk(&only_p).unwrap_err().to_string();
    assert!(e.contains("\"q\""), "{e}");
    let mut neither = priv_fx.clone();
    neither.as_object_mut().unwrap().remove("p");
    neither.as_object_mut().unwrap().remove("q");
    let e = private_key_from_jwk(&neither).unwrap_err().to_string();
    assert!(e.contains("\"p\"") && e.contains("\"lambda\""), "{e}");

    let good = &fixture("encrypted.json")[1]["enc"];
    let x = encrypted_number_from_json(pk, good).unwrap();
    let tagged = paillier::jwk::encrypted_number_to_json_with_key(pk, &x);
    assert_eq!(encrypted_number_from_json(pk, &tagged).unwrap(), x);
    let mut wrong = tagged.clone();
    wrong["key_fp"] = json!("2048:0000000000000001");
    assert_eq!(
        encrypted_number_from_json(pk, &wrong).unwrap_err(),
        PaillierError::KeyMismatch
    );
    assert!(encrypted_number_from_json(pk, &json!({"v": "12"})).is_err());
    assert!(encrypted_number_from_json(pk, &json!({"e": 0})).is_err());
    assert!(encrypted_number_from_json(pk, &json!({"v": "-12", "e": 0})).is_err());
    assert!(encrypted_number_from_json(pk, &json!({"v": "1x", "e": 0})).is_err());
    assert!(encrypted_number_from_json(pk, &json!({"v": "12", "e": 1.5})).is_err());
    assert!(encrypted_number_from_json(pk, &json!({"v": "12", "e": 1e12})).is_err());
    let n2 = pk.n_squared().to_string();
    assert_eq!(
        encrypted_number_from_json(pk, &json!({"v": n2, "e": 0})).unwrap_err(),
        PaillierError::InvalidCiphertext
    );
    let n = pk.n().to_string();
    assert_eq!(
        encrypted_number_from_json(pk, &json!({"v": n, "e": 0})).unwrap_err(),
        PaillierError::InvalidCiphertext
    );
    assert!(encrypted_number_from_json(pk, &json!({"v": "9".repeat(100_000), "e": 0})).is_err());
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|x| json!(x)),
            any::<f64>().prop_map(|x| json!(x)),
            "[A-Za-z0-9_=+/-]{0,40}".prop_map(Value::String),
            "[0-9]{0,700}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec(
                    (
                        prop::sample::select(vec![
                            "v", "e", "n", "kty", "alg", "lambda", "mu", "p", "q", "pub", "key_ops"
                        ]),
                        inner
                    ),
                    0..6
                )
                .prop_map(|kv| {
                    Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
                }),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn parsers_return_errors_not_panics(v in arb_json()) {
            static SK: std::sync::OnceLock<PrivateKey> = std::sync::OnceLock::new();
            let sk = SK.get_or_init(sk);
            let _ = public_key_from_jwk(&v);
            let _ = private_key_from_jwk(&v);
            let _ = encrypted_number_from_json(sk.public_key(), &v);
            let mut with_pub = v.clone();
            if let Value::Object(m) = &mut with_pub {
                m.insert("pub".into(), fixture("pub.json"));
                m.insert("kty".into(), json!("DAJ"));
                m.insert("key_ops".into(), json!(["decrypt"]));
            }
            let _ = private_key_from_jwk(&with_pub);
        }
    }
}
