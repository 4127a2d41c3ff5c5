//! TLS for `ringwire serve`: flags and keys, certificates, the development certificate.
//!
//! The TLS layer itself runs in the runtime ([`ringwire_runtime::tls`]); this module turns the
//! configuration into a [`TlsAcceptor`]. See docs/tls.md.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ringwire_runtime::tls::{CertSource, ClientAuth, TlsAcceptor, TlsServerOptions};
use sha2::{Digest, Sha256};

use crate::config::{ConfigError, FileConfig};

/// The TLS flags of `ringwire serve` (each has a TOML key of the same name).
#[derive(clap::Args, Debug, Default)]
pub struct TlsServeArgs {
    /// HTTPS/WSS listener (repeatable): the same services as --bind, over TLS.
    #[arg(long = "bind-tls", value_name = "ADDR")]
    pub bind_tls: Vec<SocketAddr>,
    /// TURN-over-TLS listener (TCP; repeatable; needs the STUN/TURN settings).
    #[arg(long = "stun-tls", value_name = "ADDR")]
    pub stun_tls: Vec<SocketAddr>,
    /// Certificate chain, PEM, leaf first (repeatable, paired in order with --tls-key; the
    /// first is the default, the others are chosen by SNI).
    #[arg(long = "tls-cert", value_name = "FILE")]
    pub tls_cert: Vec<PathBuf>,
    /// Private key, PEM (PKCS#8, PKCS#1 or SEC1).
    #[arg(long = "tls-key", value_name = "FILE")]
    pub tls_key: Vec<PathBuf>,
    /// Development: generate a self-signed certificate for localhost, 127.0.0.1 and ::1, and
    /// print its SHA-256 fingerprint.
    #[arg(long)]
    pub tls_self_signed: bool,
    /// ALPN protocols offered, comma-separated (default http/1.1).
    #[arg(long, value_delimiter = ',')]
    pub tls_alpn: Vec<String>,
    /// CA file to verify client certificates against.
    #[arg(long, value_name = "FILE")]
    pub tls_client_ca: Option<PathBuf>,
    /// Client certificates: optional or required (default required when --tls-client-ca is set).
    #[arg(long)]
    pub tls_client_auth: Option<String>,
    /// Sessions kept for resumption (0 = none).
    #[arg(long)]
    pub tls_session_cache: Option<usize>,
    /// Issue session tickets (true/false).
    #[arg(long)]
    pub tls_tickets: Option<bool>,
    /// Accept TLS 1.2 as well as 1.3 (true/false).
    #[arg(long)]
    pub tls12: Option<bool>,
    /// Handshake deadline in ms.
    #[arg(long)]
    pub tls_handshake_timeout_ms: Option<u64>,
    /// Handshakes in progress per core; new TLS connections past it are refused.
    #[arg(long)]
    pub tls_max_handshakes: Option<usize>,
}

impl TlsServeArgs {
    /// Put the flags that were given into `f`.
    pub fn apply(self, mut f: FileConfig) -> FileConfig {
        fn some<T>(v: Vec<T>) -> Option<Vec<T>> {
            (!v.is_empty()).then_some(v)
        }
        f.bind_tls = some(self.bind_tls);
        f.stun_tls = some(self.stun_tls);
        f.tls_cert = some(self.tls_cert);
        f.tls_key = some(self.tls_key);
        f.tls_self_signed = self.tls_self_signed.then_some(true);
        f.tls_alpn = some(self.tls_alpn);
        f.tls_client_ca = self.tls_client_ca;
        f.tls_client_auth = self.tls_client_auth;
        f.tls_session_cache = self.tls_session_cache;
        f.tls_tickets = self.tls_tickets;
        f.tls12 = self.tls12;
        f.tls_handshake_timeout_ms = self.tls_handshake_timeout_ms;
        f.tls_max_handshakes = self.tls_max_handshakes;
        f
    }
}

/// A generated development certificate.
pub struct SelfSigned {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PEM.
    pub key_pem: String,
    /// SHA-256 of the certificate's DER, as `AB:CD:...`.
    pub fingerprint: String,
}

/// Generate a self-signed certificate for `localhost`, `127.0.0.1` and `::1`.
pub fn self_signed() -> Result<SelfSigned, ConfigError> {
    let names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    let ck = rcgen::generate_simple_self_signed(names)
        .map_err(|e| ConfigError(format!("tls_self_signed: {e}")))?;
    Ok(SelfSigned {
        fingerprint: fingerprint(ck.cert.der()),
        cert_pem: ck.cert.pem(),
        key_pem: ck.signing_key.serialize_pem(),
    })
}

/// SHA-256 of a DER certificate, colon-separated upper-case hex (as `openssl x509 -fingerprint
/// -sha256` prints it).
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The server TLS options the configuration describes, or `None` when it has no TLS listener.
/// With `tls_self_signed`, the generated certificate comes back too (to print its fingerprint).
pub fn server_options(
    cfg: &FileConfig,
) -> Result<Option<(TlsServerOptions, Option<SelfSigned>)>, ConfigError> {
    let listeners = cfg.bind_tls.as_ref().is_some_and(|v| !v.is_empty())
        || cfg.stun_tls.as_ref().is_some_and(|v| !v.is_empty());
    let certs = cfg.tls_cert.clone().unwrap_or_default();
    let keys = cfg.tls_key.clone().unwrap_or_default();
    let dev = cfg.tls_self_signed.unwrap_or(false);
    if !listeners {
        if !certs.is_empty() || dev {
            return Err(ConfigError(
                "tls_cert / tls_self_signed given but no bind_tls or stun_tls listener".into(),
            ));
        }
        return Ok(None);
    }
    if certs.len() != keys.len() {
        return Err(ConfigError(format!(
            "tls_cert and tls_key pair up in order: {} certificate(s), {} key(s)",
            certs.len(),
            keys.len()
        )));
    }
    let mut o = TlsServerOptions {
        certs: certs
            .into_iter()
            .zip(keys)
            .map(|(cert, key)| CertSource::Files { cert, key })
            .collect(),
        ..TlsServerOptions::default()
    };
    let mut generated = None;
    if dev {
        let ss = self_signed()?;
        o.certs.push(CertSource::Pem {
            cert: ss.cert_pem.clone().into_bytes(),
            key: ss.key_pem.clone().into_bytes(),
        });
        generated = Some(ss);
    }
    if o.certs.is_empty() {
        return Err(ConfigError(
            "a TLS listener needs tls_cert + tls_key, or tls_self_signed".into(),
        ));
    }
    if let Some(a) = &cfg.tls_alpn {
        o.alpn = a
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(|s| s.as_bytes().to_vec())
            .collect();
        if o.alpn.iter().any(|p| p.len() > 255) {
            return Err(ConfigError(
                "tls_alpn: a protocol name is at most 255 bytes".into(),
            ));
        }
    }
    o.client_auth = match (&cfg.tls_client_ca, cfg.tls_client_auth.as_deref()) {
        (None, None) => ClientAuth::None,
        (None, Some(_)) => {
            return Err(ConfigError("tls_client_auth needs tls_client_ca".into()));
        }
        (Some(ca), None | Some("required")) => ClientAuth::Required(ca.clone()),
        (Some(ca), Some("optional")) => ClientAuth::Optional(ca.clone()),
        (Some(_), Some(other)) => {
            return Err(ConfigError(format!(
                "tls_client_auth: {other:?} (expected optional or required)"
            )));
        }
    };
    if let Some(v) = cfg.tls_session_cache {
        o.session_cache = v;
    }
    if let Some(v) = cfg.tls_tickets {
        o.tickets = v;
    }
    if let Some(v) = cfg.tls12 {
        o.tls12 = v;
    }
    Ok(Some((o, generated)))
}

/// Build the acceptor for the configuration's TLS listeners (and print the development
/// certificate's fingerprint), or `None` when it has none.
pub fn acceptor(cfg: &FileConfig) -> Result<Option<Arc<TlsAcceptor>>, ConfigError> {
    let Some((opts, generated)) = server_options(cfg)? else {
        return Ok(None);
    };
    let acc = TlsAcceptor::new(opts).map_err(|e| ConfigError(e.to_string()))?;
    if let Some(ss) = generated {
        tracing::warn!("tls: using a self-signed development certificate for localhost");
        println!(
            "tls self-signed certificate sha256 fingerprint: {}",
            ss.fingerprint
        );
    }
    Ok(Some(acc))
}
