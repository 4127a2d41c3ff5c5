//! TLS for the load generator: one rustls (ring provider) `ClientConfig` per run, which the
//! runtime's outgoing TLS connections (`CoreCtx::connect_tls`) start from; the runtime runs the
//! handshake and the records, the worker sees plaintext.
//!
//! Resumption: with `--resume` the config's in-memory session store hands each new connection
//! a ticket (TLS 1.3) or session (TLS 1.2) from an earlier one (a storm gives every slot its
//! own copy of the config and store, see the worker); without it resumption is disabled and
//! every handshake is full. The worker counts what the runtime's `TlsInfo::resumed` says, so
//! the report says what really happened.

use std::sync::Arc;

use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};

use crate::{Args, usage};

/// Client sessions kept for resumption with `--resume` (rustls's default size).
const RESUME_SESSIONS: usize = 256;

/// What every TLS connection of the run starts from.
pub struct TlsClient {
    /// The shared configuration (and, with `--resume`, the shared session store).
    pub config: Arc<ClientConfig>,
    /// SNI and the name the certificate is checked against (a valid server name).
    pub name: String,
}

/// Builds the run's client configuration from the command line (`None` without `--tls`).
pub fn from_args(a: &Args) -> Option<TlsClient> {
    if !a.tls {
        return None;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = if a.tls12 {
        &[&rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13]
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap_or_else(|e| usage(&format!("TLS versions: {e}")));
    let builder = if a.danger_accept_invalid_certs {
        builder
            .dangerous()
            .with_custom_certificate_verifier(ringwire_runtime::tls::danger_accept_any_certificate())
    } else {
        let Some(ca) = &a.tls_ca else {
            usage("--tls needs --tls-ca FILE or --danger-accept-invalid-certs");
        };
        let mut roots = RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(ca)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .unwrap_or_else(|e| usage(&format!("--tls-ca {}: {e}", ca.display())));
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            usage(&format!("--tls-ca {}: no usable certificate", ca.display()));
        }
        builder.with_root_certificates(roots)
    };
    let mut cfg = builder.with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    cfg.resumption = if a.resume {
        Resumption::in_memory_sessions(RESUME_SESSIONS)
    } else {
        Resumption::disabled()
    };
    if let Err(e) = ServerName::try_from(a.tls_name.as_str()) {
        usage(&format!("--tls-name {:?}: {e}", a.tls_name));
    }
    Some(TlsClient {
        config: Arc::new(cfg),
        name: a.tls_name.clone(),
    })
}
