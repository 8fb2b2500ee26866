//! `veil certs`: a self-signed certificate and private key per party, and a
//! `parties.toml` template that pins them.

use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct CertsArgs {
    /// Directory to write NAME.crt and NAME.key into (created if missing).
    #[arg(long, short = 'o', value_name = "DIR")]
    pub out: PathBuf,
    /// The parties' names, as in the model (such as: client server helper).
    #[arg(required = true, value_name = "PARTY")]
    pub parties: Vec<String>,
    /// Port of the first party in the printed template; the others follow.
    #[arg(long, default_value_t = 7100)]
    pub base_port: u16,
    /// Host in the printed template.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Replace existing certificate and key files.
    #[arg(long)]
    pub force: bool,
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

pub fn run(args: &CertsArgs) -> ExitCode {
    match certs(args) {
        Ok(template) => {
            print!("{template}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn certs(args: &CertsArgs) -> Result<String, String> {
    for (i, n) in args.parties.iter().enumerate() {
        if !valid_name(n) {
            return Err(format!(
                "`{n}` is not a party name (letters, digits, `_` and `-`)"
            ));
        }
        if args.parties[..i].contains(n) {
            return Err(format!("party `{n}` is named twice"));
        }
    }
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create `{}`: {e}", args.out.display()))?;
    if !args.force {
        for n in &args.parties {
            for ext in ["crt", "key"] {
                let p = args.out.join(format!("{n}.{ext}"));
                if p.exists() {
                    return Err(format!(
                        "`{}` exists; use --force to replace it",
                        p.display()
                    ));
                }
            }
        }
    }
    let mut template = String::from(
        "# Veil deployment: every party's name, address (host:port it listens on)\n\
         # and pinned certificate; paths are relative to this file.\n\
         # `key` is read only by `veil party --as NAME` for NAME itself: on a real\n\
         # deployment give each machine a copy with only its own key line and key file.\n",
    );
    for (i, n) in args.parties.iter().enumerate() {
        let ck = rcgen::generate_simple_self_signed(vec![format!("veil-{n}")])
            .map_err(|e| format!("cannot generate a certificate for {n}: {e}"))?;
        let crt = args.out.join(format!("{n}.crt"));
        let key = args.out.join(format!("{n}.key"));
        crate::write_atomically(
            &key,
            ck.signing_key.serialize_pem().as_bytes(),
            crate::Access::Private,
        )?;
        crate::write_atomically(&crt, ck.cert.pem().as_bytes(), crate::Access::Public)?;
        eprintln!("wrote {} and {}", crt.display(), key.display());
        let port = u32::from(args.base_port) + i as u32;
        template.push_str(&format!(
            "\n[[party]]\nname = \"{n}\"\naddress = \"{}:{port}\"\ncert = \"{n}.crt\"\nkey = \"{n}.key\"\n",
            args.host
        ));
    }
    Ok(template)
}
