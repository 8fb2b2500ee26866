//! Interop with python-paillier (`pheutil` JSON), fixtures made by
//! benches/peers/gen_phe_fixtures.py.

use std::path::PathBuf;
use std::process::Command;

use runtime::paillier::jwk::{
    encrypted_number_from_json, encrypted_number_to_json, private_key_from_jwk, private_key_to_jwk,
    public_key_from_jwk, public_key_to_jwk,
};
use runtime::paillier::{EncodedNumber, PaillierError, PrivateKey};
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

#[test]
fn keys_load_and_match() {
    let pk = public_key_from_jwk(&fixture("pub.json")).unwrap();
    let sk = sk();
    assert_eq!(&pk, sk.public_key());
    assert_eq!(pk.bits(), 2048);
    // our export reproduces phe's lambda / mu / n exactly
    let priv_fx = fixture("priv.json");
    let ours = private_key_to_jwk(&sk, "k", "p");
    for f in ["lambda", "mu"] {
        assert_eq!(ours[f], priv_fx[f]);
    }
    assert_eq!(ours["pub"]["n"], priv_fx["pub"]["n"]);
    assert_eq!(public_key_to_jwk(&pk, "x")["n"], fixture("pub.json")["n"]);
    // round trip
    let again = private_key_from_jwk(&ours).unwrap();
    assert_eq!(again.phi(), sk.phi());
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

#[test]
fn veil_ciphertexts_decrypt_with_phe() {
    let sk = sk();
    let pk = sk.public_key();
    let values = [0.0, 1.0, -1.0, 0.1, -7.25, 123456.75, -3e-5];
    let cases: Vec<Value> = values
        .iter()
        .map(|&v| {
            let e = pk.encrypt_f64(v).unwrap();
            let e = pk.decrease_exponent_to(&e, e.exponent.min(-32)).unwrap();
            assert_eq!(sk.decrypt_f64(&e).unwrap(), v);
            json!({"plain": v, "enc": encrypted_number_to_json(&e)})
        })
        .collect();
    let has_phe = Command::new("python3")
        .args(["-c", "import phe"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !has_phe {
        eprintln!("python3 with phe not available: skipping the phe side of this test");
        return;
    }
    let dir = std::env::temp_dir().join(format!("veil-phe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases_path = dir.join("cases.json");
    std::fs::write(&cases_path, serde_json::to_string(&cases).unwrap()).unwrap();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new("python3")
        .arg(root.join("benches/peers/gen_phe_fixtures.py"))
        .arg("--verify")
        .arg(root.join("runtime/tests/fixtures/phe/priv.json"))
        .arg(&cases_path)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
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
    assert!(private_key_from_jwk(&mutate(&priv_fx, "lambda", json!("AQAB"))).is_err());
    assert!(private_key_from_jwk(&mutate(&priv_fx, "mu", json!("AQAB"))).is_err());
    assert!(private_key_from_jwk(&mutate(&priv_fx, "key_ops", json!(["encrypt"]))).is_err());
    assert!(private_key_from_jwk(&pub_fx).is_err());
    let e = private_key_from_jwk(&mutate(&priv_fx, "lambda", json!("AQAB"))).unwrap_err();
    assert!(!e.to_string().contains(priv_fx["lambda"].as_str().unwrap()));

    let good = &fixture("encrypted.json")[1]["enc"];
    let x = encrypted_number_from_json(pk, good).unwrap();
    let tagged = runtime::paillier::jwk::encrypted_number_to_json_with_key(pk, &x);
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
                            "v", "e", "n", "kty", "alg", "lambda", "mu", "pub", "key_ops"
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
