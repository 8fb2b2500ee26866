//! `veil certs`: a self-signed certificate and private key per party, and
//! the `parties.toml` that pins them, all written into one folder; or a
//! client certificate authority (`--new-ca`) and client certificates it
//! signs (`--ca DIR --client NAME`), for `veil serve`.

use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct CertsArgs {
    /// Folder to write NAME.crt, NAME.key and parties.toml into (created if missing).
    #[arg(long, short = 'o', value_name = "DIR")]
    pub out: PathBuf,
    /// The parties' names, as in the model (such as: client server helper).
    #[arg(required_unless_present_any = ["new_ca", "client"], value_name = "PARTY")]
    pub parties: Vec<String>,
    /// Create a client certificate authority instead: --out/ca.crt (given
    /// to `veil serve --client-ca`) and --out/ca.key (keep it offline).
    #[arg(long, conflicts_with_all = ["parties", "client", "ca"])]
    pub new_ca: bool,
    /// Issue client certificates signed by the authority in DIR (its ca.crt
    /// and ca.key): --out/NAME.crt and --out/NAME.key per --client NAME.
    #[arg(
        long,
        value_name = "DIR",
        requires = "client",
        conflicts_with = "parties"
    )]
    pub ca: Option<PathBuf>,
    /// A client to issue a certificate for (with --ca); repeat for several.
    #[arg(long, value_name = "NAME", requires = "ca")]
    pub client: Vec<String>,
    /// Port of the first party in parties.toml; the others follow.
    #[arg(long, value_name = "PORT", default_value_t = 7100)]
    pub base_port: u16,
    /// Host (name or address) of every party in parties.toml.
    #[arg(long, value_name = "HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Replace existing certificate, key and parties.toml files.
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
    let result = if args.new_ca {
        new_ca(args)
    } else if let Some(ca) = &args.ca {
        issue(args, ca)
    } else {
        certs(args)
    };
    match result {
        Ok(summary) => {
            print!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            for line in e.lines() {
                eprintln!("error: {line}");
            }
            ExitCode::FAILURE
        }
    }
}

/// The file `parties.toml` is written to in `dir`.
pub const PARTIES_TOML: &str = "parties.toml";

/// Whether writing `path` would replace something: an existing file that is
/// not empty (an empty `parties.toml` is what `veil certs ... >
/// DIR/parties.toml` leaves behind, the way it used to be created).
fn would_replace(path: &Path) -> bool {
    match std::fs::metadata(path) {
        Ok(m) => !(m.is_file() && m.len() == 0),
        Err(e) => e.kind() != std::io::ErrorKind::NotFound,
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
    let last_port = u32::from(args.base_port) + args.parties.len() as u32 - 1;
    if last_port > u32::from(u16::MAX) {
        return Err(format!(
            "--base-port {}: {} parties need ports up to {last_port}, above 65535; give a lower one",
            args.base_port,
            args.parties.len()
        ));
    }
    let toml_path = args.out.join(PARTIES_TOML);
    // Refuse before anything is written, naming every file in the way.
    if !args.force {
        let mut targets: Vec<PathBuf> = args
            .parties
            .iter()
            .flat_map(|n| ["crt", "key"].map(|ext| args.out.join(format!("{n}.{ext}"))))
            .collect();
        targets.push(toml_path.clone());
        let existing: Vec<String> = targets
            .iter()
            .filter(|p| would_replace(p))
            .map(|p| format!("`{}`", p.display()))
            .collect();
        if !existing.is_empty() {
            return Err(format!(
                "{} exist{}; nothing was written (use --force to replace {}, or another --out folder)",
                existing.join(", "),
                if existing.len() == 1 { "s" } else { "" },
                if existing.len() == 1 { "it" } else { "them" },
            ));
        }
    }
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create `{}`: {e}", args.out.display()))?;
    let mut template = String::from(
        "# Veil deployment: every party's name, address (host:port it listens on)\n\
         # and pinned certificate; paths are relative to this file.\n\
         # `key` is read only by `veil party --as NAME` for NAME itself: on a real\n\
         # deployment give each machine a copy with only its own key line and key file.\n",
    );
    let mut summary = String::new();
    for (i, n) in args.parties.iter().enumerate() {
        let ck = rcgen::generate_simple_self_signed(vec![format!("veil-{n}")])
            .map_err(|e| format!("cannot generate a certificate for {n}: {e}"))?;
        let crt = args.out.join(format!("{n}.crt"));
        let key = args.out.join(format!("{n}.key"));
        let written = |summary: &str| {
            if summary.is_empty() {
                String::new()
            } else {
                format!("\nalready written:\n{summary}")
            }
        };
        crate::write_atomically(
            &key,
            ck.signing_key.serialize_pem().as_bytes(),
            crate::Access::Private,
        )
        .map_err(|e| e + &written(&summary))?;
        crate::write_atomically(&crt, ck.cert.pem().as_bytes(), crate::Access::Public)
            .map_err(|e| e + &written(&summary))?;
        summary.push_str(&format!(
            "wrote {} and {} (private)\n",
            crt.display(),
            key.display()
        ));
        let port = u32::from(args.base_port) + i as u32;
        let address = toml::Value::String(format!("{}:{port}", args.host));
        template.push_str(&format!(
            "\n[[party]]\nname = \"{n}\"\naddress = {address}\ncert = \"{n}.crt\"\nkey = \"{n}.key\"\n"
        ));
    }
    // Last, so that a parties.toml on disk means every file it names is there.
    crate::write_atomically(&toml_path, template.as_bytes(), crate::Access::Public)?;
    summary.push_str(&format!(
        "wrote {}: {} on {} from port {}\n",
        toml_path.display(),
        args.parties.join(", "),
        args.host,
        args.base_port
    ));
    Ok(summary)
}

/// The client CA's name: issued certificates name it as their issuer, so
/// [`ca_params`] must give the same every time.
const CA_NAME: &str = "veil client CA";

fn ca_params() -> rcgen::CertificateParams {
    let mut params = rcgen::CertificateParams::default();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, CA_NAME);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// Refuses to replace any of `targets` without --force.
fn refuse_existing(args: &CertsArgs, targets: &[PathBuf]) -> Result<(), String> {
    if args.force {
        return Ok(());
    }
    let existing: Vec<String> = targets
        .iter()
        .filter(|p| would_replace(p))
        .map(|p| format!("`{}`", p.display()))
        .collect();
    if existing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{} exist{}; nothing was written (use --force to replace {}, or another --out folder)",
        existing.join(", "),
        if existing.len() == 1 { "s" } else { "" },
        if existing.len() == 1 { "it" } else { "them" },
    ))
}

fn new_ca(args: &CertsArgs) -> Result<String, String> {
    let crt = args.out.join("ca.crt");
    let key = args.out.join("ca.key");
    refuse_existing(args, &[crt.clone(), key.clone()])?;
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create `{}`: {e}", args.out.display()))?;
    let pair = rcgen::KeyPair::generate().map_err(|e| format!("cannot generate a key: {e}"))?;
    let cert = ca_params()
        .self_signed(&pair)
        .map_err(|e| format!("cannot create the CA certificate: {e}"))?;
    crate::write_atomically(
        &key,
        pair.serialize_pem().as_bytes(),
        crate::Access::Private,
    )?;
    crate::write_atomically(&crt, cert.pem().as_bytes(), crate::Access::Public)?;
    Ok(format!(
        "wrote {} (give it to `veil serve --client-ca`) and {} (private: keep it offline)\n",
        crt.display(),
        key.display()
    ))
}

fn issue(args: &CertsArgs, ca: &Path) -> Result<String, String> {
    for (i, n) in args.client.iter().enumerate() {
        if !valid_name(n) || n.contains('_') {
            return Err(format!(
                "`{n}` is not a client name (letters, digits and `-`)"
            ));
        }
        if args.client[..i].contains(n) {
            return Err(format!("client `{n}` is named twice"));
        }
    }
    let key_path = ca.join("ca.key");
    let key_pem = std::fs::read_to_string(&key_path).map_err(|e| {
        format!(
            "cannot read the CA's key `{}`: {e} (create a CA with `veil certs --new-ca --out DIR`)",
            key_path.display()
        )
    })?;
    let ca_key = rcgen::KeyPair::from_pem(&key_pem)
        .map_err(|_| format!("`{}` is not a private key", key_path.display()))?;
    let issuer = rcgen::Issuer::new(ca_params(), ca_key);
    let targets: Vec<PathBuf> = args
        .client
        .iter()
        .flat_map(|n| ["crt", "key"].map(|ext| args.out.join(format!("{n}.{ext}"))))
        .collect();
    refuse_existing(args, &targets)?;
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create `{}`: {e}", args.out.display()))?;
    let mut summary = String::new();
    for n in &args.client {
        let mut params = rcgen::CertificateParams::new(vec![n.clone()])
            .map_err(|e| format!("client {n}: {e}"))?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, n.as_str());
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let pair = rcgen::KeyPair::generate().map_err(|e| format!("cannot generate a key: {e}"))?;
        let cert = params
            .signed_by(&pair, &issuer)
            .map_err(|e| format!("cannot sign a certificate for {n}: {e}"))?;
        let crt = args.out.join(format!("{n}.crt"));
        let key = args.out.join(format!("{n}.key"));
        crate::write_atomically(
            &key,
            pair.serialize_pem().as_bytes(),
            crate::Access::Private,
        )?;
        crate::write_atomically(&crt, cert.pem().as_bytes(), crate::Access::Public)?;
        summary.push_str(&format!(
            "wrote {} and {} (private); fingerprint {} (to revoke: add it to the --deny file)\n",
            crt.display(),
            key.display(),
            net::hex(&net::service::fingerprint(cert.der()))
        ));
    }
    Ok(summary)
}
