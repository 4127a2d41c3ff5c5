//! TLS between the socket and the plugin: rustls (ring provider) driven through its sans-IO
//! connection API, so every plugin runs unchanged over TLS on both drivers.
//!
//! A listener added with [`crate::ServerBuilder::tcp_tls`] gets a [`TlsAcceptor`]. For each
//! accepted connection the core runs the handshake itself; the plugin's `on_open` is called only
//! once the handshake completed (so ALPN, SNI and the client certificate are known there, through
//! [`crate::ConnCtx::tls`]), `on_data` sees plaintext, and every send is encrypted into the
//! connection's out-queue at once. A graceful close sends `close_notify` before the FIN.
//!
//! Limits: a handshake deadline ([`crate::RuntimeConfig::tls_handshake_timeout`]) and a per-core
//! cap on handshakes in progress ([`crate::RuntimeConfig::tls_max_handshakes`]): past it new TLS
//! connections are refused at once, so a flood of ClientHellos costs the established
//! connections no more than that many handshakes per core.
//!
//! Copies: rustls's buffered API copies received records into its deframing buffer, decrypts
//! there in place and hands the plaintext out (one more copy, into a per-core scratch buffer the
//! plugin reads from); outgoing plaintext is encrypted into a record and moved into the out-queue
//! as one chunk per send. See docs/tls.md for the measured cost.

use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
pub use rustls;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{
    ClientHello, ResolvesServerCert, ServerSessionMemoryCache, WebPkiClientVerifier,
};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

/// A TLS configuration or handshake error, with what it was about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError(String);

impl TlsError {
    fn new(what: impl fmt::Display, cause: impl fmt::Display) -> Self {
        TlsError(format!("{what}: {cause}"))
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tls: {}", self.0)
    }
}

impl std::error::Error for TlsError {}

/// Where a certificate chain and its private key come from.
#[derive(Clone, Debug)]
pub enum CertSource {
    /// PEM files: the chain (leaf first) and the key (PKCS#8, PKCS#1 or SEC1). Re-read on reload.
    Files {
        /// The certificate chain.
        cert: PathBuf,
        /// The private key.
        key: PathBuf,
    },
    /// PEM in memory (a generated development certificate, or one from a secret store).
    Pem {
        /// The certificate chain.
        cert: Vec<u8>,
        /// The private key.
        key: Vec<u8>,
    },
}

/// Client-certificate verification (the suite's "Verify Certificate").
#[derive(Clone, Debug, Default)]
pub enum ClientAuth {
    /// No client certificate is asked for.
    #[default]
    None,
    /// A certificate is asked for and verified against the CA file if sent; none is accepted.
    Optional(PathBuf),
    /// A certificate signed by a CA in the file is required.
    Required(PathBuf),
}

/// What a TLS listener serves with.
#[derive(Clone, Debug)]
pub struct TlsServerOptions {
    /// Certificates: the first is the default, the others are chosen by SNI (each answers for
    /// the names in its subjectAltName, wildcards included).
    pub certs: Vec<CertSource>,
    /// ALPN protocols offered, in order of preference (default `http/1.1`; add `h2` once an
    /// HTTP/2 service runs on the listener, or clients that pick it fail).
    pub alpn: Vec<Vec<u8>>,
    /// Client-certificate verification.
    pub client_auth: ClientAuth,
    /// Sessions kept for resumption by session ID / stateful TLS 1.3 tickets (0 turns it off).
    pub session_cache: usize,
    /// Issue stateless session tickets (TLS 1.2 tickets and TLS 1.3 PSK tickets).
    pub tickets: bool,
    /// Accept TLS 1.2 as well as 1.3.
    pub tls12: bool,
}

impl Default for TlsServerOptions {
    fn default() -> Self {
        TlsServerOptions {
            certs: Vec::new(),
            alpn: vec![b"http/1.1".to_vec()],
            client_auth: ClientAuth::None,
            session_cache: 4096,
            tickets: true,
            tls12: true,
        }
    }
}

/// The ring provider every config here uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The TLS side of a listener: the current server configuration, swapped whole on reload.
/// Connections keep the configuration they started with, so a reload drops none of them; the
/// session cache and ticket keys survive reloads, so resumption does too.
pub struct TlsAcceptor {
    opts: Option<TlsServerOptions>,
    current: RwLock<Arc<ServerConfig>>,
    cache: Arc<ServerSessionMemoryCache>,
    ticketer: Option<Arc<dyn rustls::server::ProducesTickets>>,
    reloads: AtomicU64,
}

impl fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsAcceptor")
            .field("opts", &self.opts)
            .field("reloads", &self.reloads.load(Ordering::Relaxed))
            .finish()
    }
}

impl TlsAcceptor {
    /// Load the certificates and build the configuration.
    pub fn new(opts: TlsServerOptions) -> Result<Arc<Self>, TlsError> {
        let cache = ServerSessionMemoryCache::new(opts.session_cache.max(1));
        let ticketer = if opts.tickets {
            Some(
                rustls::crypto::ring::Ticketer::new()
                    .map_err(|e| TlsError::new("session tickets", e))?,
            )
        } else {
            None
        };
        let cfg = build_server_config(&opts, &cache, ticketer.as_ref())?;
        Ok(Arc::new(TlsAcceptor {
            opts: Some(opts),
            current: RwLock::new(Arc::new(cfg)),
            cache,
            ticketer,
            reloads: AtomicU64::new(0),
        }))
    }

    /// Use a configuration built elsewhere (an embedder's own rustls setup). [`Self::reload`]
    /// then has nothing to re-read; use [`Self::set_config`].
    pub fn from_config(cfg: Arc<ServerConfig>) -> Arc<Self> {
        Arc::new(TlsAcceptor {
            opts: None,
            current: RwLock::new(cfg),
            cache: ServerSessionMemoryCache::new(1),
            ticketer: None,
            reloads: AtomicU64::new(0),
        })
    }

    /// Re-read the certificate files and swap the configuration in. On error the old one stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let Some(opts) = &self.opts else {
            return Err(TlsError::new(
                "reload",
                "built from a config, no files to re-read",
            ));
        };
        let cfg = build_server_config(opts, &self.cache, self.ticketer.as_ref())?;
        self.set_config(Arc::new(cfg));
        Ok(())
    }

    /// Swap in a new configuration for connections accepted from now on.
    pub fn set_config(&self, cfg: Arc<ServerConfig>) {
        let mut cur = self.current.write().unwrap_or_else(|e| e.into_inner());
        *cur = cfg;
        self.reloads.fetch_add(1, Ordering::Relaxed);
    }

    /// The configuration new connections get.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// How many times the configuration was swapped.
    pub fn reloads(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }
}

fn build_server_config(
    opts: &TlsServerOptions,
    cache: &Arc<ServerSessionMemoryCache>,
    ticketer: Option<&Arc<dyn rustls::server::ProducesTickets>>,
) -> Result<ServerConfig, TlsError> {
    if opts.certs.is_empty() {
        return Err(TlsError::new("server", "no certificate configured"));
    }
    let provider = provider();
    let versions: &[&rustls::SupportedProtocolVersion] = if opts.tls12 {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13]
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| TlsError::new("protocol versions", e))?;
    let builder = match &opts.client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Optional(ca) | ClientAuth::Required(ca) => {
            let roots = load_roots(ca)?;
            let mut v =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            if matches!(opts.client_auth, ClientAuth::Optional(_)) {
                v = v.allow_unauthenticated();
            }
            let v = v
                .build()
                .map_err(|e| TlsError::new(format!("client CA {}", ca.display()), e))?;
            builder.with_client_cert_verifier(v)
        }
    };
    let keys = opts
        .certs
        .iter()
        .map(|c| load_certified_key(c, &provider).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()?;
    let mut cfg = builder.with_cert_resolver(Arc::new(SniResolver { keys }));
    cfg.alpn_protocols = opts.alpn.clone();
    if opts.session_cache > 0 {
        cfg.session_storage = cache.clone();
    } else {
        cfg.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    }
    match ticketer {
        Some(t) => cfg.ticketer = t.clone(),
        None if opts.session_cache == 0 => cfg.send_tls13_tickets = 0,
        None => {}
    }
    Ok(cfg)
}

/// Read a PEM certificate chain.
pub fn load_certs(src: &CertSource) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let (what, certs) = match src {
        CertSource::Files { cert, .. } => (
            cert.display().to_string(),
            CertificateDer::pem_file_iter(cert)
                .map_err(|e| TlsError::new(cert.display(), e))?
                .collect::<Result<Vec<_>, _>>(),
        ),
        CertSource::Pem { cert, .. } => (
            "certificate PEM".to_string(),
            CertificateDer::pem_slice_iter(cert).collect::<Result<Vec<_>, _>>(),
        ),
    };
    let certs = certs.map_err(|e| TlsError::new(&what, e))?;
    if certs.is_empty() {
        return Err(TlsError::new(what, "no CERTIFICATE block"));
    }
    Ok(certs)
}

/// Read a PEM private key.
pub fn load_key(src: &CertSource) -> Result<PrivateKeyDer<'static>, TlsError> {
    match src {
        CertSource::Files { key, .. } => {
            PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::new(key.display(), e))
        }
        CertSource::Pem { key, .. } => {
            PrivateKeyDer::from_pem_slice(key).map_err(|e| TlsError::new("key PEM", e))
        }
    }
}

fn load_certified_key(
    src: &CertSource,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let certs = load_certs(src)?;
    let key = load_key(src)?;
    let what = match src {
        CertSource::Files { cert, .. } => cert.display().to_string(),
        CertSource::Pem { .. } => "certificate PEM".into(),
    };
    CertifiedKey::from_der(certs, key, provider).map_err(|e| TlsError::new(what, e))
}

/// Read every certificate of a PEM file into a root store.
pub fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let certs = load_certs(&CertSource::Files {
        cert: path.to_path_buf(),
        key: PathBuf::new(),
    })?;
    let mut roots = RootCertStore::empty();
    for c in certs {
        roots.add(c).map_err(|e| TlsError::new(path.display(), e))?;
    }
    Ok(roots)
}

/// Picks a certificate by SNI: the first whose subjectAltName covers the name, else the first.
#[derive(Debug)]
struct SniResolver {
    keys: Vec<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if self.keys.len() > 1
            && let Some(name) = hello.server_name()
            && let Ok(sn) = ServerName::try_from(name)
        {
            for k in &self.keys {
                let Some(leaf) = k.cert.first() else { continue };
                if let Ok(ee) = webpki::EndEntityCert::try_from(leaf)
                    && ee.verify_is_valid_for_subject_name(&sn).is_ok()
                {
                    return Some(k.clone());
                }
            }
        }
        self.keys.first().cloned()
    }
}

/// Where a client's trust comes from.
#[derive(Clone, Debug, Default)]
pub enum ClientRoots {
    /// The Mozilla root programme (webpki-roots).
    #[default]
    WebPki,
    /// The certificates of a PEM file.
    CaFile(PathBuf),
}

/// A TLS client's settings (WebSocket client, TURN client, later MQTT).
#[derive(Clone, Debug, Default)]
pub struct TlsClientOptions {
    /// Trust anchors.
    pub roots: ClientRoots,
    /// ALPN protocols to offer.
    pub alpn: Vec<Vec<u8>>,
    /// A client certificate to present, if the server asks.
    pub client_cert: Option<CertSource>,
    /// Accept any certificate for any name: for tests only. The connection is encrypted but
    /// not authenticated.
    pub danger_accept_invalid_certs: bool,
}

/// Build a client configuration: hostname verification against the roots, unless
/// `danger_accept_invalid_certs`.
pub fn client_config(opts: &TlsClientOptions) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::new("protocol versions", e))?;
    let builder = if opts.danger_accept_invalid_certs {
        builder
            .dangerous()
            .with_custom_certificate_verifier(danger_accept_any_certificate())
    } else {
        let roots = match &opts.roots {
            ClientRoots::WebPki => RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            },
            ClientRoots::CaFile(p) => load_roots(p)?,
        };
        builder.with_root_certificates(roots)
    };
    let mut cfg = match &opts.client_cert {
        Some(src) => builder
            .with_client_auth_cert(load_certs(src)?, load_key(src)?)
            .map_err(|e| TlsError::new("client certificate", e))?,
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = opts.alpn.clone();
    Ok(Arc::new(cfg))
}

/// Open a blocking TLS client stream over `tcp` and finish the handshake, so a bad certificate
/// or a wrong name is an error here rather than on the first read.
pub fn connect_blocking(
    cfg: Arc<ClientConfig>,
    host: &str,
    mut tcp: std::net::TcpStream,
) -> Result<rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>, TlsError> {
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| TlsError::new(format!("server name {host:?}"), e))?;
    let mut conn =
        rustls::ClientConnection::new(cfg, name).map_err(|e| TlsError::new("client", e))?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)
            .map_err(|e| TlsError::new(format!("handshake with {host}"), e))?;
    }
    Ok(rustls::StreamOwned::new(conn, tcp))
}

/// The verifier behind `danger_accept_invalid_certs`, for clients that build their own
/// configuration (the load generator): it checks the handshake signatures, so the client does the
/// same work as with a CA, but not the chain or the name. For tests only.
pub fn danger_accept_any_certificate() -> Arc<dyn ServerCertVerifier> {
    Arc::new(AcceptAnything(provider()))
}

#[derive(Debug)]
struct AcceptAnything(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The TLS state of one connection (server side, or an outgoing client).
pub(crate) struct TlsConn {
    pub conn: rustls::Connection,
    /// Counted against the core's cap on handshakes in progress (server side).
    pub counted: bool,
    /// The handshake has not completed yet (the plugin has not seen the connection).
    pub handshaking: bool,
    /// A TLS error ended it: no close_notify, nothing more is read.
    pub failed: bool,
}

/// What feeding received bytes to rustls gave.
pub(crate) struct Fed {
    /// Plaintext bytes written at the start of the scratch buffer.
    pub len: usize,
    pub peer_closed: bool,
    pub error: Option<String>,
}

impl TlsConn {
    pub(crate) fn new(cfg: Arc<ServerConfig>) -> Result<Self, rustls::Error> {
        let conn = rustls::ServerConnection::new(cfg)?;
        Ok(Self::with(conn.into(), true))
    }

    pub(crate) fn client(
        cfg: Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> Result<Self, rustls::Error> {
        let conn = rustls::ClientConnection::new(cfg, name)?;
        Ok(Self::with(conn.into(), false))
    }

    fn with(mut conn: rustls::Connection, counted: bool) -> Self {
        // The out-queue enforces the send limit; rustls must never refuse part of a write.
        conn.set_buffer_limit(None);
        TlsConn {
            conn,
            counted,
            handshaking: true,
            failed: false,
        }
    }

    /// Feed received records; the plaintext they carried goes to `plain[..fed.len]`. The
    /// scratch buffer only grows (zeroed once), so no per-call memset.
    pub(crate) fn feed(&mut self, mut data: &[u8], plain: &mut Vec<u8>) -> Fed {
        let mut fed = Fed {
            len: 0,
            peer_closed: false,
            error: None,
        };
        while !data.is_empty() {
            match self.conn.read_tls(&mut data) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    fed.error = Some(e.to_string());
                    break;
                }
            }
            match self.conn.process_new_packets() {
                Ok(st) => {
                    let n = st.plaintext_bytes_to_read();
                    if n > 0 {
                        let at = fed.len;
                        if plain.len() < at + n {
                            plain.resize(at + n, 0);
                        }
                        if let Err(e) = self.conn.reader().read_exact(&mut plain[at..at + n]) {
                            fed.error = Some(e.to_string());
                            break;
                        }
                        fed.len += n;
                    }
                    if st.peer_has_closed() {
                        fed.peer_closed = true;
                        break;
                    }
                }
                Err(e) => {
                    self.failed = true;
                    fed.error = Some(e.to_string());
                    break;
                }
            }
        }
        fed
    }

    /// Encrypt `chunks` (application data).
    pub(crate) fn encrypt(&mut self, chunks: &[Bytes]) {
        for b in chunks {
            // The buffer limit is off, so a write takes everything.
            let _ = self.conn.writer().write_all(b);
        }
    }

    /// Move the records rustls has ready (handshake, alerts, data) into `out` as one chunk.
    /// Returns the bytes added.
    pub(crate) fn drain_into(&mut self, out: &mut crate::core::OutQueue) -> usize {
        if !self.conn.wants_write() {
            return 0;
        }
        let mut v = Vec::new();
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut v) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let len = v.len();
        if len > 0 {
            out.push_back(crate::core::OutChunk::Mem(Bytes::from(v)));
        }
        len
    }
}

/// What the plugin can see of a connection's TLS session.
pub struct TlsInfo<'a> {
    pub(crate) conn: &'a rustls::Connection,
}

impl TlsInfo<'_> {
    /// The ALPN protocol agreed, if any.
    pub fn alpn(&self) -> Option<&[u8]> {
        self.conn.alpn_protocol()
    }
    /// The server name the client asked for (SNI; server side).
    pub fn sni(&self) -> Option<&str> {
        match self.conn {
            rustls::Connection::Server(s) => s.server_name(),
            rustls::Connection::Client(_) => None,
        }
    }
    /// The peer's certificate chain: the client's if it sent one (and it verified), or on an
    /// outgoing connection the server's.
    pub fn peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        self.conn.peer_certificates()
    }
    /// TLS 1.2 or 1.3.
    pub fn version(&self) -> Option<rustls::ProtocolVersion> {
        self.conn.protocol_version()
    }
    /// The cipher suite agreed.
    pub fn cipher_suite(&self) -> Option<rustls::SupportedCipherSuite> {
        self.conn.negotiated_cipher_suite()
    }
    /// Whether the session was resumed.
    pub fn resumed(&self) -> bool {
        self.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
    }
    /// The key-exchange group agreed (X25519, secp256r1...); `None` for a TLS 1.2 session
    /// resumed without a new key exchange.
    pub fn key_exchange_group(&self) -> Option<rustls::NamedGroup> {
        self.conn.negotiated_key_exchange_group().map(|g| g.name())
    }
}
