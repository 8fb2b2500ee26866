//! `veil paillier …`: python-paillier `pheutil`-compatible key and number
//! files. Mirrors `pheutil genpkey|extract|encrypt|decrypt|addenc|add|multiply`.

use std::fmt;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use runtime::paillier::jwk::{
    encrypted_number_from_json, encrypted_number_to_json_with_key, private_key_from_jwk,
    private_key_to_jwk, public_key_from_jwk, public_key_to_jwk,
};
use runtime::paillier::{
    EncodedNumber, EncryptedNumber, KeygenEvent, Keypair, PaillierError, PublicKey,
};
use serde_json::Value;

/// Exponent that serialised numbers are lowered to, as in pheutil.
const SERIAL_EXPONENT: i32 = -32;

#[derive(Debug, Subcommand)]
pub enum PaillierCmd {
    /// Generate a private key (JWK) and write it to OUTPUT ("-" for stdout).
    Keygen {
        output: PathBuf,
        /// Modulus size in bits (at least 2048).
        #[arg(long, default_value_t = 3072)]
        keysize: u64,
        /// Identifying comment stored as "kid".
        #[arg(long)]
        id: Option<String>,
    },
    /// Extract the public key from a private key file.
    Public { input: PathBuf, output: PathBuf },
    /// Encrypt PLAINTEXT (read as a floating-point number) with a public key.
    Encrypt {
        public: PathBuf,
        #[arg(allow_hyphen_values = true)]
        plaintext: String,
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Decrypt an encrypted number with a private key.
    Decrypt {
        private: PathBuf,
        ciphertext: PathBuf,
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Add an encrypted number to another (ENCRYPTED_B) or to a plaintext (--plain).
    Add {
        public: PathBuf,
        encrypted_a: PathBuf,
        #[arg(required_unless_present = "plain", conflicts_with = "plain")]
        encrypted_b: Option<PathBuf>,
        #[arg(long, allow_hyphen_values = true)]
        plain: Option<String>,
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Multiply an encrypted number by a plaintext number.
    Mul {
        public: PathBuf,
        encrypted: PathBuf,
        #[arg(allow_hyphen_values = true)]
        plaintext: String,
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

/// CLI error: a message safe to print (no secrets).
#[derive(Debug)]
pub struct CmdError(pub String);

impl fmt::Display for CmdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CmdError {}

fn ctx(what: &str, path: &Path) -> impl Fn(PaillierError) -> CmdError {
    let prefix = format!("{what} {}", path.display());
    move |e| CmdError(format!("{prefix}: {e}"))
}

fn read_json(path: &Path, what: &str) -> Result<Value, CmdError> {
    let text = if path == Path::new("-") {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|e| CmdError(format!("cannot read {what} from stdin: {e}")))?;
        s
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| CmdError(format!("cannot read {what} {}: {e}", path.display())))?
    };
    // serde_json's messages give a position, never the content
    serde_json::from_str(&text)
        .map_err(|e| CmdError(format!("{what} {} is not valid JSON: {e}", path.display())))
}

/// Print `text`, or write it atomically (see [`crate::write_atomically`]).
fn write_out(path: Option<&Path>, text: &str, secret: bool) -> Result<(), CmdError> {
    match path {
        None => println!("{text}"),
        Some(p) if p == Path::new("-") => println!("{text}"),
        Some(p) => {
            let access = if secret {
                crate::Access::Private
            } else {
                crate::Access::Public
            };
            crate::write_atomically(p, format!("{text}\n").as_bytes(), access).map_err(CmdError)?
        }
    }
    Ok(())
}

fn parse_number(s: &str) -> Result<f64, CmdError> {
    let x: f64 = s
        .trim()
        .parse()
        .map_err(|_| CmdError("plaintext is not a number".into()))?;
    if !x.is_finite() {
        return Err(CmdError("plaintext is not a finite number".into()));
    }
    Ok(x)
}

fn load_public(path: &Path) -> Result<PublicKey, CmdError> {
    public_key_from_jwk(&read_json(path, "public key")?).map_err(ctx("public key", path))
}

fn load_number(pk: &PublicKey, path: &Path) -> Result<EncryptedNumber, CmdError> {
    encrypted_number_from_json(pk, &read_json(path, "encrypted number")?)
        .map_err(ctx("encrypted number", path))
}

fn serialise(pk: &PublicKey, x: &EncryptedNumber) -> Result<String, CmdError> {
    let x = if x.exponent > SERIAL_EXPONENT {
        pk.decrease_exponent_to(x, SERIAL_EXPONENT)
            .map_err(|e| CmdError(e.to_string()))?
    } else {
        x.clone()
    };
    Ok(encrypted_number_to_json_with_key(pk, &x).to_string())
}

fn op_err(e: PaillierError) -> CmdError {
    CmdError(e.to_string())
}

/// Python-like rendering of a float (`3.0`, `0.1`, `-2.5e-07` style aside).
fn render(x: f64) -> String {
    format!("{x:?}")
}

/// Run one subcommand. Progress goes to stderr, results to stdout or files.
pub fn run(cmd: PaillierCmd) -> Result<(), CmdError> {
    match cmd {
        PaillierCmd::Keygen {
            output,
            keysize,
            id,
        } => {
            if keysize < runtime::paillier::MIN_KEY_BITS {
                return Err(op_err(PaillierError::KeyTooSmall(keysize)));
            }
            eprint!("Generating a {keysize}-bit Paillier key pair ");
            let mut count = 0u64;
            let kp = Keypair::generate_with_progress(keysize, &mut rand::rng(), &mut |e| match e {
                KeygenEvent::CandidateRejected => {
                    count += 1;
                    if count.is_multiple_of(64) {
                        eprint!(".");
                    }
                }
                KeygenEvent::PrimeFound(_) => eprint!("+"),
                KeygenEvent::Done => eprintln!(" done"),
            })
            .map_err(op_err)?;
            let id = id.unwrap_or_else(|| "generated by veil".to_string());
            let jwk = private_key_to_jwk(
                &kp.private,
                &format!("Paillier private key {id}"),
                &format!("Paillier public key {id}"),
            );
            write_out(Some(&output), &jwk.to_string(), true)
        }
        PaillierCmd::Public { input, output } => {
            let v = read_json(&input, "private key")?;
            let sk = private_key_from_jwk(&v).map_err(ctx("private key", &input))?;
            let kid = v["pub"]["kid"].as_str().unwrap_or("Paillier public key");
            let jwk = public_key_to_jwk(sk.public_key(), kid);
            write_out(Some(&output), &jwk.to_string(), false)
        }
        PaillierCmd::Encrypt {
            public,
            plaintext,
            output,
        } => {
            let x = parse_number(&plaintext)?;
            let pk = load_public(&public)?;
            let enc = EncodedNumber::from_f64(x, None)
                .and_then(|e| pk.encrypt_encoded(&e))
                .map_err(op_err)?;
            write_out(output.as_deref(), &serialise(&pk, &enc)?, false)
        }
        PaillierCmd::Decrypt {
            private,
            ciphertext,
            output,
        } => {
            let sk = private_key_from_jwk(&read_json(&private, "private key")?)
                .map_err(ctx("private key", &private))?;
            let enc = load_number(sk.public_key(), &ciphertext)?;
            let x = sk.decrypt_f64(&enc).map_err(|e| match e {
                PaillierError::Overflow => CmdError(
                    "decryption overflow: the number was encrypted under another key, or a computation overflowed"
                        .into(),
                ),
                e => op_err(e),
            })?;
            write_out(output.as_deref(), &render(x), true)
        }
        PaillierCmd::Add {
            public,
            encrypted_a,
            encrypted_b,
            plain,
            output,
        } => {
            let pk = load_public(&public)?;
            let a = load_number(&pk, &encrypted_a)?;
            let sum = match (encrypted_b, plain) {
                (Some(b), None) => {
                    let b = load_number(&pk, &b)?;
                    pk.add_encrypted(&a, &b).map_err(op_err)?
                }
                (None, Some(p)) => {
                    let x = parse_number(&p)?;
                    let e = EncodedNumber::from_f64(x, Some(a.exponent)).map_err(op_err)?;
                    pk.add_encoded(&a, &e).map_err(op_err)?
                }
                _ => return Err(CmdError("give either ENCRYPTED_B or --plain".into())),
            };
            write_out(output.as_deref(), &serialise(&pk, &sum)?, false)
        }
        PaillierCmd::Mul {
            public,
            encrypted,
            plaintext,
            output,
        } => {
            let x = parse_number(&plaintext)?;
            let pk = load_public(&public)?;
            let a = load_number(&pk, &encrypted)?;
            let e = EncodedNumber::from_f64(x, None).map_err(op_err)?;
            let prod = pk.mul_encoded(&a, &e).map_err(op_err)?;
            write_out(output.as_deref(), &serialise(&pk, &prod)?, false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixtures() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../runtime/tests/fixtures/phe")
    }

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("veil-cli-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn decrypt_to(dir: &Path, enc: &Path) -> f64 {
        let out = dir.join("plain.txt");
        run(PaillierCmd::Decrypt {
            private: fixtures().join("priv.json"),
            ciphertext: enc.to_path_buf(),
            output: Some(out.clone()),
        })
        .unwrap();
        std::fs::read_to_string(out)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    #[test]
    fn encrypt_add_mul_decrypt() {
        let d = tmpdir("ops");
        let pub_path = d.join("pub.json");
        run(PaillierCmd::Public {
            input: fixtures().join("priv.json"),
            output: pub_path.clone(),
        })
        .unwrap();
        let a = d.join("a.json");
        let b = d.join("b.json");
        for (path, x) in [(&a, "1.5"), (&b, "-0.25")] {
            run(PaillierCmd::Encrypt {
                public: pub_path.clone(),
                plaintext: x.into(),
                output: Some(path.clone()),
            })
            .unwrap();
        }
        assert_eq!(decrypt_to(&d, &a), 1.5);
        let s = d.join("s.json");
        run(PaillierCmd::Add {
            public: pub_path.clone(),
            encrypted_a: a.clone(),
            encrypted_b: Some(b.clone()),
            plain: None,
            output: Some(s.clone()),
        })
        .unwrap();
        assert_eq!(decrypt_to(&d, &s), 1.25);
        run(PaillierCmd::Add {
            public: pub_path.clone(),
            encrypted_a: a.clone(),
            encrypted_b: None,
            plain: Some("2".into()),
            output: Some(s.clone()),
        })
        .unwrap();
        assert_eq!(decrypt_to(&d, &s), 3.5);
        run(PaillierCmd::Mul {
            public: pub_path.clone(),
            encrypted: a.clone(),
            plaintext: "-4".into(),
            output: Some(s.clone()),
        })
        .unwrap();
        assert_eq!(decrypt_to(&d, &s), -6.0);
        // a number made under another key is refused
        let other = d.join("other.json");
        let other_pub = d.join("other_pub.json");
        run(PaillierCmd::Keygen {
            output: other.clone(),
            keysize: 2048,
            id: None,
        })
        .unwrap();
        run(PaillierCmd::Public {
            input: other.clone(),
            output: other_pub.clone(),
        })
        .unwrap();
        run(PaillierCmd::Encrypt {
            public: other_pub,
            plaintext: "5".into(),
            output: Some(s.clone()),
        })
        .unwrap();
        let e = run(PaillierCmd::Decrypt {
            private: fixtures().join("priv.json"),
            ciphertext: s.clone(),
            output: None,
        })
        .unwrap_err();
        assert!(e.0.contains("different public key"), "{e}");
        // phe-made number decrypts
        let cases: Value = serde_json::from_str(
            &std::fs::read_to_string(fixtures().join("encrypted.json")).unwrap(),
        )
        .unwrap();
        std::fs::write(&s, cases[3]["enc"].to_string()).unwrap();
        assert_eq!(decrypt_to(&d, &s), cases[3]["plain"].as_f64().unwrap());
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn errors_are_clean() {
        let d = tmpdir("err");
        let bad = d.join("bad.json");
        std::fs::write(&bad, "{not json").unwrap();
        let e = run(PaillierCmd::Encrypt {
            public: bad.clone(),
            plaintext: "1".into(),
            output: None,
        })
        .unwrap_err();
        assert!(e.0.contains("not valid JSON"), "{e}");
        let e = run(PaillierCmd::Encrypt {
            public: fixtures().join("pub.json"),
            plaintext: "abc".into(),
            output: None,
        })
        .unwrap_err();
        assert!(e.0.contains("not a number"));
        // ciphertext outside Z*_{n^2}
        std::fs::write(&bad, r#"{"v": "0", "e": -32}"#).unwrap();
        let e = run(PaillierCmd::Decrypt {
            private: fixtures().join("priv.json"),
            ciphertext: bad.clone(),
            output: None,
        })
        .unwrap_err();
        assert!(e.0.contains("Z*"), "{e}");
        // a private key given where a public key is expected
        let e = run(PaillierCmd::Mul {
            public: fixtures().join("priv.json"),
            encrypted: bad.clone(),
            plaintext: "2".into(),
            output: None,
        })
        .unwrap_err();
        assert!(e.0.contains("public key"), "{e}");
        // private key errors never echo secrets
        let mut v: Value =
            serde_json::from_str(&std::fs::read_to_string(fixtures().join("priv.json")).unwrap())
                .unwrap();
        let p = v["p"].as_str().unwrap().to_string();
        v["q"] = Value::String("AQAB".into());
        std::fs::write(&bad, v.to_string()).unwrap();
        let e = run(PaillierCmd::Public {
            input: bad.clone(),
            output: d.join("p.json"),
        })
        .unwrap_err();
        assert!(!e.0.contains(&p[..16]));
        // small keys refused
        let e = run(PaillierCmd::Keygen {
            output: d.join("k.json"),
            keysize: 1024,
            id: None,
        })
        .unwrap_err();
        assert!(e.0.contains("2048"));
        std::fs::remove_dir_all(&d).ok();
    }
}
