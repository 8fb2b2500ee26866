//! The service side of the network (`veil serve`, `veil predict`): single
//! authenticated TLS connections instead of a mesh, clients authenticated by
//! a certificate authority, a deny list, the accept loop and a plain-text
//! HTTP endpoint for metrics.
//!
//! * A service accepts two kinds of peers on one port: parties of its own
//!   deployment, whose certificates it pins (as [`crate::TcpTransport`]
//!   does), and clients, whose certificates must be signed by the client CA
//!   and not be on the deny list ([`DenyList`], replaced at run time with
//!   [`ServiceTls::set_deny`]). Either way TLS proves the peer holds the key.
//! * A dialer ([`Dialer`]) pins the certificate of the service it calls and
//!   presents its own (self-signed and pinned, or CA-issued).
//! * A [`Conn`] is one authenticated connection with the identity its
//!   certificate proved; [`crate::TcpTransport::from_conns`] makes a
//!   session's transport out of them and [`crate::TcpTransport::into_conns`]
//!   gives them back when the session is over, so one connection can carry
//!   many sessions.
//!
//! Learned from rustls's `WebPkiClientVerifier` documentation (client
//! authentication against a root store) and its `danger` verifier traits;
//! no code copied.

use super::*;
use rustls::server::WebPkiClientVerifier;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

/// The protocol of service hellos (`veil serve` / `veil predict`).
pub const SERVICE_PROTOCOL: &str = "veil-serve/1";

/// SHA-256 of a certificate's DER: its fingerprint.
pub fn fingerprint(cert_der: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(cert_der).into()
}

/// The first DNS name a certificate is issued for (`veil certs` puts the
/// client's or party's name there), if any.
fn cert_name(cert: &CertificateDer<'_>) -> Option<String> {
    let ee = webpki::EndEntityCert::try_from(cert).ok()?;
    let name = ee.valid_dns_names().next().map(str::to_string);
    name
}

/// Who is at the other end of a connection, as its certificate proved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The certificate's first DNS name, or `-` without one.
    pub name: String,
    pub fingerprint: [u8; 32],
}

impl Identity {
    fn of(cert: &CertificateDer<'_>) -> Identity {
        Identity {
            name: cert_name(cert).unwrap_or_else(|| "-".into()),
            fingerprint: fingerprint(cert.as_ref()),
        }
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", clean(&self.name), &hex(&self.fingerprint)[..16])
    }
}

/// Client certificates refused although the CA signed them: by SHA-256
/// fingerprint (64 hex digits) or by name, one a line; `#` starts a comment.
#[derive(Clone, Debug, Default)]
pub struct DenyList {
    fingerprints: HashSet<[u8; 32]>,
    names: HashSet<String>,
}

impl DenyList {
    pub fn parse(text: &str) -> DenyList {
        let mut list = DenyList::default();
        for line in text.lines() {
            let entry = line.split('#').next().unwrap_or("").trim();
            if entry.is_empty() {
                continue;
            }
            match unhex(&entry.to_ascii_lowercase()) {
                Some(fp) => {
                    list.fingerprints.insert(fp);
                }
                None => {
                    list.names.insert(entry.to_string());
                }
            }
        }
        list
    }

    pub fn len(&self) -> usize {
        self.fingerprints.len() + self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn denies(&self, id: &Identity) -> bool {
        self.fingerprints.contains(&id.fingerprint) || self.names.contains(&id.name)
    }
}

/// Accepts the pinned certificates, and certificates the CA signed unless
/// they are denied.
struct ServiceVerifier {
    pinned: Vec<CertificateDer<'static>>,
    ca: Option<Arc<dyn ClientCertVerifier>>,
    deny: RwLock<DenyList>,
    algs: WebPkiSupportedAlgorithms,
}

impl std::fmt::Debug for ServiceVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceVerifier")
            .field("pinned", &self.pinned.len())
            .field("ca", &self.ca.is_some())
            .finish_non_exhaustive()
    }
}

impl ClientCertVerifier for ServiceVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        match &self.ca {
            Some(ca) => ca.root_hint_subjects(),
            None => &[],
        }
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if self
            .pinned
            .iter()
            .any(|c| c.as_ref() == end_entity.as_ref())
        {
            return Ok(ClientCertVerified::assertion());
        }
        let Some(ca) = &self.ca else {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ));
        };
        ca.verify_client_cert(end_entity, intermediates, now)?;
        let denied = self
            .deny
            .read()
            .map(|d| d.denies(&Identity::of(end_entity)))
            .unwrap_or(true);
        if denied {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Revoked,
            ));
        }
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algs)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algs)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// The TLS side of a service: its certificate and key, the peers it pins,
/// and the client CA.
pub struct ServiceTls {
    name: String,
    config: Arc<rustls::ServerConfig>,
    verifier: Arc<ServiceVerifier>,
    max_frame: usize,
}

impl ServiceTls {
    /// `name`: this party's name (for messages); `cert`, `key`: its own
    /// (PEM or DER); `pinned`: the certificates of its deployment's parties
    /// that may connect; `ca`: the certificate of the authority that signs
    /// clients (`None`: no clients, only pinned parties).
    pub fn new(
        name: &str,
        cert: &[u8],
        key: &[u8],
        pinned: &[Vec<u8>],
        ca: Option<&[u8]>,
        deny: DenyList,
        max_frame: usize,
    ) -> Result<ServiceTls, NetError> {
        let cert = parse_cert(cert)
            .map_err(|e| NetError::Config(format!("certificate of {name}: {e}")))?;
        let key =
            parse_key(key).map_err(|e| NetError::Config(format!("private key of {name}: {e}")))?;
        let pinned = pinned
            .iter()
            .map(|c| {
                parse_cert(c).map_err(|e| NetError::Config(format!("pinned certificate: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let provider = Arc::new(tls_provider());
        let ca = match ca {
            None => None,
            Some(bytes) => {
                let ca = parse_cert(bytes)
                    .map_err(|e| NetError::Config(format!("client CA certificate: {e}")))?;
                let mut roots = rustls::RootCertStore::empty();
                roots.add(ca).map_err(|e| {
                    NetError::Config(format!("client CA certificate: not usable as a CA: {e}"))
                })?;
                let v =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| NetError::Config(format!("client CA certificate: {e}")))?;
                Some(v)
            }
        };
        let verifier = Arc::new(ServiceVerifier {
            pinned,
            ca,
            deny: RwLock::new(deny),
            algs: provider.signature_verification_algorithms,
        });
        let tls_err = |source: rustls::Error| NetError::TlsSetup {
            party: name.to_string(),
            source,
        };
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(tls_err)?
            .with_client_cert_verifier(verifier.clone())
            .with_single_cert(vec![cert], key)
            .map_err(tls_err)?;
        config.send_tls13_tickets = 0;
        Ok(ServiceTls {
            name: name.to_string(),
            config: Arc::new(config),
            verifier,
            max_frame,
        })
    }

    /// Replace the deny list (for connections that start from now on).
    pub fn set_deny(&self, deny: DenyList) {
        if let Ok(mut d) = self.verifier.deny.write() {
            *d = deny;
        }
    }

    /// Run the TLS handshake of an accepted connection, by `deadline`.
    /// A stranger (no certificate, an unknown or revoked one, garbage,
    /// silence) is an error; nothing it sent appears in the message.
    pub fn accept(
        &self,
        sock: TcpStream,
        from: SocketAddr,
        deadline: Instant,
    ) -> Result<Conn, NetError> {
        let _ = sock.set_nonblocking(false);
        let conn = rustls::ServerConnection::new(self.config.clone()).map_err(|source| {
            NetError::TlsSetup {
                party: self.name.clone(),
                source,
            }
        })?;
        let peer = handshake(
            from.to_string(),
            rustls::Connection::Server(conn),
            sock,
            deadline,
            &format!("the connection from {from}"),
            self.max_frame,
        )?;
        Conn::new(peer, Some(from))
    }
}

/// Calls a service: pins its certificate and presents this side's.
pub struct Dialer {
    config: Arc<rustls::ClientConfig>,
    max_frame: usize,
}

impl Dialer {
    /// `server_cert`: the certificate the service must present (pinned);
    /// `cert`, `key`: this side's.
    pub fn new(
        server_cert: &[u8],
        cert: &[u8],
        key: &[u8],
        max_frame: usize,
    ) -> Result<Dialer, NetError> {
        let server = parse_cert(server_cert)
            .map_err(|e| NetError::Config(format!("the service's certificate: {e}")))?;
        let cert = parse_cert(cert)
            .map_err(|e| NetError::Config(format!("this side's certificate: {e}")))?;
        let key = parse_key(key)
            .map_err(|e| NetError::Config(format!("this side's private key: {e}")))?;
        let provider = Arc::new(tls_provider());
        let algs = provider.signature_verification_algorithms;
        let tls_err = |source: rustls::Error| NetError::TlsSetup {
            party: "this side".into(),
            source,
        };
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(tls_err)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned {
                certs: vec![server],
                algs,
            }))
            .with_client_auth_cert(vec![cert], key)
            .map_err(tls_err)?;
        Ok(Dialer {
            config: Arc::new(config),
            max_frame,
        })
    }

    /// Connect to `name` at `address` (retrying until `deadline`) and run
    /// the TLS handshake.
    pub fn dial(&self, name: &str, address: &str, deadline: Instant) -> Result<Conn, NetError> {
        let sock = dial(name, address, deadline)?;
        let server_name = ServerName::try_from("veil-party").expect("a valid DNS name");
        let conn =
            rustls::ClientConnection::new(self.config.clone(), server_name).map_err(|source| {
                NetError::TlsSetup {
                    party: "this side".into(),
                    source,
                }
            })?;
        let peer = handshake(
            name.to_string(),
            rustls::Connection::Client(conn),
            sock,
            deadline,
            &format!("{name} at {address}"),
            self.max_frame,
        )?;
        Conn::new(peer, None)
    }
}

/// One authenticated connection and who is at its other end.
pub struct Conn {
    peer: Peer,
    identity: Identity,
    from: Option<SocketAddr>,
}

impl Conn {
    fn new(peer: Peer, from: Option<SocketAddr>) -> Result<Conn, NetError> {
        let identity = peer
            .conn
            .peer_certificates()
            .and_then(|c| c.first())
            .map(Identity::of)
            .ok_or_else(|| NetError::Peer(format!("{} presented no certificate", peer.name)))?;
        Ok(Conn {
            peer,
            identity,
            from,
        })
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The address an accepted connection came from.
    pub fn from(&self) -> Option<SocketAddr> {
        self.from
    }

    /// The name used for this connection in messages.
    pub fn set_name(&mut self, name: &str) {
        self.peer.name = name.to_string();
    }

    /// Send one frame, by `deadline` (service hellos and replies: small).
    pub fn send(&mut self, frame: &[u8], deadline: Instant) -> Result<(), NetError> {
        let p = &mut self.peer;
        let head = (frame.len() as u32).to_le_bytes();
        for part in [&head[..], frame] {
            p.conn
                .writer()
                .write_all(part)
                .map_err(|e| NetError::io(format!("sending to {} failed", p.name), e))?;
        }
        while p.conn.wants_write() {
            // Short waits until the deadline, as the sessions' own sends
            // wait: the socket's timeout then stays as it is between them
            // (setting it is a system call).
            p.set_write_timeout(Duration::from_millis(20));
            match p.conn.write_tls(&mut p.sock) {
                Ok(_) => {}
                Err(e) if io_err(&e) && Instant::now() < deadline => {}
                Err(source) => {
                    return Err(NetError::Stopped {
                        peer: p.name.clone(),
                        source,
                    })
                }
            }
        }
        Ok(())
    }

    /// Receive one frame, waiting at most `timeout`.
    pub fn recv(&mut self, timeout: Duration) -> Result<Vec<u8>, NetError> {
        self.peer.recv_frame(timeout)
    }

    /// Whether a whole frame, or the end of the stream, is already here or
    /// arrives within `wait` (without taking it).
    pub fn poll(&mut self, wait: Duration) -> Result<bool, NetError> {
        if self.peer.frames.partial() == 0 && self.peer.frames_ready() {
            return Ok(true);
        }
        if self.peer.closed {
            return Ok(true);
        }
        // One read (a frame not yet whole is polled for again).
        self.peer.pump_once(wait)?;
        Ok(self.peer.frames_ready() || self.peer.closed || self.peer.frames.error().is_some())
    }

    /// Whether the peer has closed the connection (or broken it), checked
    /// without waiting: for a connection kept open between sessions.
    pub fn is_closed(&mut self) -> bool {
        if self.peer.closed {
            return true;
        }
        if self.peer.sock.set_nonblocking(true).is_err() {
            return true;
        }
        let r = self.peer.read_once();
        let _ = self.peer.sock.set_nonblocking(false);
        r.is_err() || self.peer.closed || self.peer.frames.error().is_some()
    }

    /// Close politely (close_notify), without waiting for the peer.
    pub fn close(mut self) {
        self.peer.conn.send_close_notify();
        let _ = self
            .peer
            .sock
            .set_write_timeout(Some(Duration::from_millis(200)));
        while self.peer.conn.wants_write() {
            if self.peer.conn.write_tls(&mut self.peer.sock).is_err() {
                break;
            }
        }
        let _ = self.peer.sock.shutdown(std::net::Shutdown::Both);
    }
}

impl Peer {
    fn frames_ready(&self) -> bool {
        !self.frames.ready.is_empty()
    }
}

impl TcpTransport {
    /// A session's transport from connections already made: `peers[p]` is
    /// the connection with party `p` (`None` for this party and parties
    /// not in the session). Every send and receive waits at most
    /// `io_timeout`, and none past `deadline`.
    pub fn from_conns(
        my_name: &str,
        peers: Vec<Option<Conn>>,
        io_timeout: Duration,
        max_frame: usize,
        deadline: Option<Instant>,
    ) -> (TcpTransport, Vec<Option<Identity>>) {
        let mut ids = Vec::with_capacity(peers.len());
        let peers = peers
            .into_iter()
            .map(|c| {
                ids.push(c.as_ref().map(|c| c.identity.clone()));
                c.map(|c| c.peer)
            })
            .collect();
        (
            TcpTransport {
                my_name: my_name.to_string(),
                peers,
                io_timeout,
                max_frame,
                deadline,
            },
            ids,
        )
    }

    /// The connections back, for the next session on them (nothing is
    /// closed). `ids` is what [`TcpTransport::from_conns`] returned.
    pub fn into_conns(mut self, ids: Vec<Option<Identity>>) -> Vec<Option<Conn>> {
        // Frames held back go now (the executor flushes at the end of a
        // program; this is for any other caller). A failure shows at the
        // connection's next use.
        let _ = self.flush_all();
        let peers = std::mem::take(&mut self.peers);
        peers
            .into_iter()
            .zip(ids)
            .map(|(p, id)| match (p, id) {
                (Some(peer), Some(identity)) => Some(Conn {
                    peer,
                    identity,
                    from: None,
                }),
                _ => None,
            })
            .collect()
    }
}

/// Listen on `address` for a service.
pub fn listen(name: &str, address: &str) -> Result<TcpListener, NetError> {
    let l = TcpListener::bind(address)
        .map_err(|e| NetError::io(format!("{name} cannot listen on {address}"), e))?;
    l.set_nonblocking(true)
        .map_err(|e| NetError::io("listener", e))?;
    Ok(l)
}

/// Accept connections on `listener` until `stop` is set, handing each to
/// `on_conn`; between connections `tick` runs (at least every 50 ms), for
/// the caller's housekeeping (reloading a deny list, say). Transient
/// accept failures are passed to `on_error` and the loop goes on.
pub fn accept_until(
    listener: &TcpListener,
    stop: &AtomicBool,
    mut tick: impl FnMut(),
    mut on_conn: impl FnMut(TcpStream, SocketAddr),
    mut on_error: impl FnMut(&io::Error),
) {
    let mut last_tick = Instant::now();
    // The listener is polled: every millisecond while connections arrive,
    // backing off to every 20 ms when none do (most sessions run on
    // connections already open, and an idle service should not wake a
    // thousand times a second).
    let mut pause = Duration::from_millis(1);
    while !stop.load(Ordering::SeqCst) {
        if last_tick.elapsed() >= Duration::from_millis(50) {
            tick();
            last_tick = Instant::now();
        }
        match listener.accept() {
            Ok((sock, from)) => {
                let _ = sock.set_nonblocking(false);
                let _ = sock.set_nodelay(true);
                on_conn(sock, from);
                pause = Duration::from_millis(1);
            }
            Err(e) if io_err(&e) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            Err(e) => {
                if e.kind() != io::ErrorKind::ConnectionAborted {
                    on_error(&e);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Serve `body()` as `text/plain` (the Prometheus text format) to every
/// HTTP request on `address`, until `stop`. One request at a time, each
/// bounded by a second of I/O: metrics scrapers are few.
pub fn serve_text(
    address: &str,
    stop: Arc<AtomicBool>,
    body: Arc<dyn Fn() -> String + Send + Sync>,
) -> Result<std::thread::JoinHandle<()>, NetError> {
    let listener = TcpListener::bind(address)
        .map_err(|e| NetError::io(format!("cannot listen on {address} for metrics"), e))?;
    Ok(std::thread::spawn(move || {
        let _ = listener.set_nonblocking(true);
        while !stop.load(Ordering::SeqCst) {
            let (mut sock, _) = match listener.accept() {
                Ok(s) => s,
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
            };
            let _ = sock.set_nonblocking(false);
            let _ = sock.set_read_timeout(Some(Duration::from_secs(1)));
            let _ = sock.set_write_timeout(Some(Duration::from_secs(1)));
            // Read the request head (up to its blank line or 8 KiB); its
            // contents do not matter.
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while head.len() < 8192 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match sock.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let text = body();
            let reply = format!(
                "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            );
            let _ = sock.write_all(reply.as_bytes());
        }
    }))
}

/// The first frame of every session on a service connection, and the
/// service's answer.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Default)]
pub struct ServiceHello {
    pub protocol: String,
    pub from: String,
    pub to: String,
    /// The SHA-256 of the plan's fingerprint, in hex.
    pub plan: String,
    #[serde(default)]
    pub sections: Vec<(String, String)>,
    /// Empty in a client's request to the model owner (which picks it);
    /// the session picked, in the hellos to the dealer.
    #[serde(default)]
    pub session: String,
    /// The client's symbolic dimensions (such as `batch`).
    #[serde(default)]
    pub dims: Vec<(String, u64)>,
    /// In the model owner's hello to the dealer: the fingerprint (hex) of
    /// the client's certificate, which must be the one that joins.
    #[serde(default)]
    pub client: String,
}

impl ServiceHello {
    pub fn new(from: &str, to: &str, plan: &Fingerprint, session: &str) -> ServiceHello {
        ServiceHello {
            protocol: SERVICE_PROTOCOL.into(),
            from: from.into(),
            to: to.into(),
            plan: hex(&plan.digest()),
            sections: plan
                .sections
                .iter()
                .map(|(name, hash)| (name.clone(), hex(hash)))
                .collect(),
            session: session.into(),
            dims: Vec::new(),
            client: String::new(),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("hellos serialize")
    }

    pub fn parse(bytes: &[u8], peer: &str) -> Result<ServiceHello, NetError> {
        serde_json::from_slice(bytes)
            .map_err(|_| NetError::Peer(format!("{peer} sent a malformed service hello")))
    }

    /// The same checks as the mesh's hello: protocol, names, plan (naming
    /// the first section that differs), session.
    pub fn check(
        &self,
        peer: &str,
        me: &str,
        plan: &Fingerprint,
        session: &str,
    ) -> Result<(), NetError> {
        if self.protocol != SERVICE_PROTOCOL {
            return Err(NetError::Peer(format!(
                "{peer} speaks protocol `{}`, this party `{SERVICE_PROTOCOL}`: install the \
                 same veil version on both sides",
                clean(&self.protocol)
            )));
        }
        check_hello_fields(
            HelloFields {
                from: &self.from,
                to: &self.to,
                plan: &self.plan,
                sections: &self.sections,
                session: &self.session,
            },
            peer,
            me,
            plan,
            session,
        )
    }
}

/// The service's answer to a session request.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum ServiceReply {
    /// The session runs now, with this id.
    Ok { session: String },
    /// Every slot and the queue are taken, or the service is stopping: try
    /// again later (or another replica).
    Busy { reason: String },
    /// The request cannot be served (a different plan, a batch too large).
    Refused { reason: String },
}

impl ServiceReply {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("replies serialize")
    }

    pub fn parse(bytes: &[u8], peer: &str) -> Result<ServiceReply, NetError> {
        serde_json::from_slice(bytes)
            .map_err(|_| NetError::Peer(format!("{peer} sent a malformed service reply")))
    }
}

/// A fresh, unguessable session id: 128 random bits in hex.
pub fn new_session_id() -> String {
    let mut b = [0u8; 16];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut b)
        .expect("the OS random number generator");
    hex(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca() -> (rcgen::Issuer<'static, rcgen::KeyPair>, Vec<u8>) {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "test CA");
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        (rcgen::Issuer::new(params, key), cert.pem().into_bytes())
    }

    fn issue(ca: &rcgen::Issuer<'static, rcgen::KeyPair>, name: &str) -> (Vec<u8>, Vec<u8>) {
        let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, ca).unwrap();
        (cert.pem().into_bytes(), key.serialize_pem().into_bytes())
    }

    fn self_signed(name: &str) -> (Vec<u8>, Vec<u8>) {
        let ck = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        (
            ck.cert.pem().into_bytes(),
            ck.signing_key.serialize_pem().into_bytes(),
        )
    }

    /// A service on a loopback port that accepts one connection; the
    /// identity it proved, or why it was refused.
    fn accept_one(
        tls: ServiceTls,
    ) -> (String, std::thread::JoinHandle<Result<Identity, NetError>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let h = std::thread::spawn(move || {
            let (sock, from) = l.accept().unwrap();
            let mut c = tls.accept(sock, from, Instant::now() + Duration::from_secs(5))?;
            let f = c.recv(Duration::from_secs(5))?;
            c.send(&f, Instant::now() + Duration::from_secs(5))?;
            Ok(c.identity().clone())
        });
        (addr, h)
    }

    #[test]
    fn clients_signed_by_the_ca_are_accepted_unless_denied() {
        let (issuer, ca_pem) = ca();
        let (srv_cert, srv_key) = self_signed("veil-server");
        let (alice_cert, alice_key) = issue(&issuer, "alice");
        let (bob_cert, bob_key) = issue(&issuer, "bob");
        let (mallory_cert, mallory_key) = self_signed("mallory");
        let deny = DenyList::parse("# revoked\nbob\n");
        let service = || {
            ServiceTls::new(
                "server",
                &srv_cert,
                &srv_key,
                &[],
                Some(&ca_pem),
                deny.clone(),
                1 << 20,
            )
            .unwrap()
        };
        let deadline = || Instant::now() + Duration::from_secs(5);
        // Alice: accepted, named, and her frame echoed.
        let (addr, h) = accept_one(service());
        let d = Dialer::new(&srv_cert, &alice_cert, &alice_key, 1 << 20).unwrap();
        let mut c = d.dial("server", &addr, deadline()).unwrap();
        c.send(b"ping", deadline()).unwrap();
        assert_eq!(c.recv(Duration::from_secs(5)).unwrap(), b"ping");
        let id = h.join().unwrap().unwrap();
        assert_eq!(id.name, "alice");
        assert_eq!(
            id.fingerprint,
            fingerprint(&parse_cert(&alice_cert).unwrap())
        );
        // Bob is on the deny list; Mallory's certificate is not the CA's.
        for (cert, key) in [(&bob_cert, &bob_key), (&mallory_cert, &mallory_key)] {
            let (addr, h) = accept_one(service());
            let d = Dialer::new(&srv_cert, cert, key, 1 << 20).unwrap();
            let r = d.dial("server", &addr, deadline()).and_then(|mut c| {
                c.send(b"ping", deadline())?;
                c.recv(Duration::from_secs(5))
            });
            assert!(r.is_err(), "a refused client got an answer");
            let e = h.join().unwrap().expect_err("refused");
            assert!(e.to_string().contains("handshake"), "{e}");
        }
        // Once the deny list no longer names Bob, he is accepted.
        let tls = service();
        tls.set_deny(DenyList::default());
        let (addr, h) = accept_one(tls);
        let d = Dialer::new(&srv_cert, &bob_cert, &bob_key, 1 << 20).unwrap();
        let mut c = d.dial("server", &addr, deadline()).unwrap();
        c.send(b"x", deadline()).unwrap();
        assert_eq!(c.recv(Duration::from_secs(5)).unwrap(), b"x");
        assert_eq!(h.join().unwrap().unwrap().name, "bob");
    }

    #[test]
    fn deny_lists_take_fingerprints_and_names() {
        let fp = [0xabu8; 32];
        let list = DenyList::parse(&format!(
            "{}  # a fingerprint\n\n carol \n",
            hex(&fp).to_uppercase()
        ));
        assert_eq!(list.len(), 2);
        assert!(list.denies(&Identity {
            name: "x".into(),
            fingerprint: fp
        }));
        assert!(list.denies(&Identity {
            name: "carol".into(),
            fingerprint: [0; 32]
        }));
        assert!(!list.denies(&Identity {
            name: "dave".into(),
            fingerprint: [0; 32]
        }));
    }

    #[test]
    fn session_ids_are_fresh() {
        let a = new_session_id();
        assert_eq!(a.len(), 32);
        assert_ne!(a, new_session_id());
    }
}
