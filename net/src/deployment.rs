//! The deployment file, `parties.toml`: every party's address and
//! certificate, and one party's own key. Parsed from its text, with the
//! files it names read through the caller's `read` (so this module does no
//! I/O of its own); `veil party` and the Python module's `veil.party` both
//! load it here.

use crate::PeerSpec;
use plan::{PartyIdx, Plan};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// `parties.toml`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Config {
    party: Vec<PartyEntry>,
}

/// One `[[party]]` of the deployment file, as written (paths unread);
/// [`parse`] gives them to front ends with their own roles (`veil serve`).
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct PartyEntry {
    pub name: String,
    /// host:port where this party listens and the others connect.
    pub address: String,
    /// Its self-signed certificate (PEM), pinned by every other party.
    pub cert: PathBuf,
    /// Its private key: read only by the party itself.
    pub key: Option<PathBuf>,
    /// Where to listen if not `address` (such as 0.0.0.0:7100).
    pub listen: Option<String>,
}

/// The `[[party]]` entries of a deployment file's text, in file order.
pub fn parse(text: &str, path: &Path) -> Result<Vec<PartyEntry>, String> {
    let cfg: Config = toml::from_str(text).map_err(|e| format!("`{}`: {e}", path.display()))?;
    Ok(cfg.party)
}

/// What one party takes from the deployment file for
/// [`crate::TcpConfig`]: the peers in plan order, its own key and where it
/// listens.
pub struct Deployment {
    pub parties: Vec<Option<PeerSpec>>,
    pub key: Vec<u8>,
    pub listen: Option<String>,
}

impl std::fmt::Debug for Deployment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("Deployment")
            .field("parties", &self.parties)
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

/// The deployment file at `path` (whose text is `text`) for party `me`
/// (named `me_name`) of `plan`. Relative paths in it are relative to the
/// file's folder, and `read` reads the certificates and the key they name.
/// Every problem is reported, one per line, each prefixed with the file.
pub fn load(
    text: &str,
    path: &Path,
    plan: &Plan,
    me_name: &str,
    read: &dyn Fn(&Path) -> std::io::Result<Vec<u8>>,
) -> Result<Deployment, String> {
    let cfg = Config {
        party: parse(text, path)?,
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let resolve = |p: &Path| -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        }
    };
    let mut errors = Vec::new();
    for (i, e) in cfg.party.iter().enumerate() {
        if cfg.party[..i].iter().any(|o| o.name == e.name) {
            errors.push(format!("party `{}` is listed twice", e.name));
        }
        if !plan.parties.iter().any(|p| p.name == e.name) {
            errors.push(format!(
                "party `{}` is not a party of model {}",
                e.name, plan.model
            ));
        }
    }
    let mut parties = Vec::new();
    for (i, p) in plan.parties.iter().enumerate() {
        if !plan.takes_part(i as PartyIdx) {
            // The dealer of a plan without one: listed or not, nobody
            // connects to it.
            parties.push(None);
            continue;
        }
        let Some(e) = cfg.party.iter().find(|e| e.name == p.name) else {
            let role = match p.role {
                plan::Role::Dealer => {
                    " (the dealer of this plan; to run without it, every party compiles \
                     with --no-dealer)"
                }
                plan::Role::Compute => "",
            };
            errors.push(format!("party `{}` of the model is missing{role}", p.name));
            parties.push(None);
            continue;
        };
        let cert_path = resolve(&e.cert);
        let cert = read(&cert_path).unwrap_or_else(|err| {
            errors.push(format!(
                "certificate of {}: cannot read `{}`: {err}",
                p.name,
                cert_path.display()
            ));
            Vec::new()
        });
        parties.push(Some(PeerSpec {
            name: p.name.clone(),
            address: e.address.clone(),
            cert,
        }));
    }
    let mine = cfg.party.iter().find(|e| e.name == me_name);
    let mut key = Vec::new();
    match mine.and_then(|e| e.key.as_ref()) {
        Some(k) => {
            let k = resolve(k);
            match read(&k) {
                Ok(b) => key = b,
                Err(err) => errors.push(format!(
                    "private key of {me_name}: cannot read `{}`: {err}",
                    k.display()
                )),
            }
        }
        None if mine.is_some() => errors.push(format!(
            "party `{me_name}` has no `key = \"...\"` line: this party needs its private key"
        )),
        None => {}
    }
    if !errors.is_empty() {
        return Err(errors
            .into_iter()
            .map(|e| format!("`{}`: {e}", path.display()))
            .collect::<Vec<_>>()
            .join("\n"));
    }
    Ok(Deployment {
        parties,
        key,
        listen: mine.and_then(|e| e.listen.clone()),
    })
}
