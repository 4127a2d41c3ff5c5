//! Authentication as the suite we replace does it, for HTTP requests and WebSocket upgrades.
//!
//! Four schemes, each switched on in [`AuthModes`]:
//! - **Basic** (RFC 7617): `Authorization: Basic base64(user:password)`, checked against
//!   [`AuthConfig::users`] and then [`AuthConfig::check_password`]. HTTP requests and upgrades.
//! - **Bearer** (RFC 6750): `Authorization: Bearer TOKEN`, checked against
//!   [`AuthConfig::bearer_tokens`] and then [`AuthConfig::check_token`]. HTTP and upgrades.
//! - **Session**: `GET /sgc/req/auth/session/USER/PASSWORD` (plain HTTP) answers
//!   `{"session":"TOKEN","expires_in":SECONDS}`; the WebSocket then opens at
//!   `/sgc/auth/session/TOKEN`. Tokens are 128 random bits, single use, expire after
//!   [`AuthConfig::session_ttl`], and live in one store shared by every core (at most
//!   [`AuthConfig::max_sessions`]; 503 past it).
//! - **URL**: the WebSocket opens at `/sgc/auth/url/USER/PASSWORD` (the one scheme a browser's
//!   `WebSocket` can carry). Path segments are percent-decoded.
//!
//! What is checked: every WebSocket upgrade needs credentials of an enabled scheme; plain HTTP
//! requests need them when Basic or Bearer is enabled (Session and URL are WebSocket-only
//! schemes: with only those on, HTTP requests pass). Paths under an [`AuthConfig::exempt`]
//! prefix, and CORS preflights (`OPTIONS` with `Access-Control-Request-Method`, which browsers
//! send without credentials), pass. A request without any credentials is offered to
//! [`AuthConfig::check_password`] with an empty user and password, as the suite's
//! `OnAuthentication` is.
//!
//! A refusal is `401` with `WWW-Authenticate` (`Basic realm="…"` and/or `Bearer realm="…"`)
//! and [`AuthConfig::error_headers`]; an upgrade is refused before the `101`.
//!
//! Passwords and tokens are compared in constant time ([`ct_eq`]; lengths may leak). Every
//! configured user is compared, whether or not an earlier one matched.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;

use super::{Request, Response};

/// Default [`AuthConfig::session_ttl`].
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(60);
/// Default [`AuthConfig::max_sessions`]: outstanding session tokens across all cores.
pub const DEFAULT_MAX_SESSIONS: usize = 10_000;
/// Longest user, password or token accepted (bytes, after decoding); longer ones fail.
pub const MAX_CREDENTIAL_LEN: usize = 1024;
/// Where a session token is requested (plain HTTP GET), followed by `USER/PASSWORD`.
pub const SESSION_REQUEST_PREFIX: &str = "/sgc/req/auth/session/";
/// Where a WebSocket with a session token opens, followed by `TOKEN`.
pub const SESSION_PREFIX: &str = "/sgc/auth/session/";
/// Where a WebSocket with URL credentials opens, followed by `USER/PASSWORD`.
pub const URL_PREFIX: &str = "/sgc/auth/url/";

/// Which schemes are accepted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuthModes {
    /// `Authorization: Basic`.
    pub basic: bool,
    /// `/sgc/req/auth/session/…` then `/sgc/auth/session/TOKEN`.
    pub session: bool,
    /// `/sgc/auth/url/USER/PASSWORD`.
    pub url: bool,
    /// `Authorization: Bearer`.
    pub bearer: bool,
}

impl AuthModes {
    /// Basic, Session and URL (the suite's user/password schemes).
    pub const PASSWORDS: Self = AuthModes {
        basic: true,
        session: true,
        url: true,
        bearer: false,
    };
    /// True when no scheme is on.
    pub fn is_empty(&self) -> bool {
        !(self.basic || self.session || self.url || self.bearer)
    }
}

impl std::str::FromStr for AuthModes {
    type Err = String;
    /// A comma-separated list of `basic`, `session`, `url`, `bearer`, or `all`.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut m = AuthModes::default();
        for w in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match w.to_ascii_lowercase().as_str() {
                "basic" => m.basic = true,
                "session" => m.session = true,
                "url" => m.url = true,
                "bearer" => m.bearer = true,
                "all" => {
                    m = AuthModes {
                        bearer: true,
                        ..AuthModes::PASSWORDS
                    }
                }
                other => {
                    return Err(format!(
                        "unknown auth mode {other:?} (basic, session, url, bearer, all)"
                    ));
                }
            }
        }
        if m.is_empty() {
            return Err("no auth mode given".into());
        }
        Ok(m)
    }
}

/// What a password callback sees.
#[derive(Clone, Copy)]
pub struct Credentials<'a> {
    /// The user (empty when the client sent no credentials).
    pub user: &'a str,
    /// The password (empty when the client sent no credentials).
    pub password: &'a str,
    /// The scheme the credentials came with: `basic`, `session-request`, `url`, or `none`.
    pub scheme: &'static str,
    /// The client's address.
    pub peer: SocketAddr,
}

impl std::fmt::Debug for Credentials<'_> {
    /// The user and scheme; never the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("scheme", &self.scheme)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

/// Decides credentials of users not in [`AuthConfig::users`] (and requests without any).
pub type PasswordFn = dyn Fn(&Credentials<'_>) -> bool + Send + Sync;
/// Decides bearer tokens not in [`AuthConfig::bearer_tokens`] (token, peer).
pub type TokenFn = dyn Fn(&str, SocketAddr) -> bool + Send + Sync;

/// Authentication settings.
#[derive(Clone)]
pub struct AuthConfig {
    /// The accepted schemes.
    pub modes: AuthModes,
    /// `(user, password)` pairs (the suite's AuthUsers).
    pub users: Vec<(String, String)>,
    /// Accepted bearer tokens.
    pub bearer_tokens: Vec<String>,
    /// The realm of `WWW-Authenticate`.
    pub realm: String,
    /// Path prefixes that need no credentials (HTTP and WebSocket), e.g. `/public/`.
    pub exempt: Vec<String>,
    /// Lifetime of a session token.
    pub session_ttl: Duration,
    /// Most outstanding session tokens (503 past it).
    pub max_sessions: usize,
    /// Extra header fields of every 401 (the suite's CustomHeaders).
    pub error_headers: Vec<(String, String)>,
    /// Called for a user/password not in `users`, and for requests without credentials.
    pub check_password: Option<Arc<PasswordFn>>,
    /// Called for a bearer token not in `bearer_tokens`.
    pub check_token: Option<Arc<TokenFn>>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            modes: AuthModes::PASSWORDS,
            users: Vec::new(),
            bearer_tokens: Vec::new(),
            realm: "ringwire".into(),
            exempt: Vec::new(),
            session_ttl: DEFAULT_SESSION_TTL,
            max_sessions: DEFAULT_MAX_SESSIONS,
            error_headers: Vec::new(),
            check_password: None,
            check_token: None,
        }
    }
}

impl std::fmt::Debug for AuthConfig {
    /// Counts, never the secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("modes", &self.modes)
            .field("users", &self.users.len())
            .field("bearer_tokens", &self.bearer_tokens.len())
            .field("realm", &self.realm)
            .field("exempt", &self.exempt)
            .field("session_ttl", &self.session_ttl)
            .field("max_sessions", &self.max_sessions)
            .field("check_password", &self.check_password.is_some())
            .field("check_token", &self.check_token.is_some())
            .finish_non_exhaustive()
    }
}

impl AuthConfig {
    /// These schemes, no users yet.
    pub fn new(modes: AuthModes) -> Self {
        AuthConfig {
            modes,
            ..AuthConfig::default()
        }
    }
    /// Add a user.
    pub fn user(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.users.push((user.into(), password.into()));
        self
    }
    /// Add a bearer token.
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.bearer_tokens.push(token.into());
        self
    }
    /// Exempt paths starting with `prefix`.
    pub fn exempt(mut self, prefix: impl Into<String>) -> Self {
        self.exempt.push(prefix.into());
        self
    }
    /// Set the password callback (the suite's OnAuthentication).
    pub fn on_password(
        mut self,
        f: impl Fn(&Credentials<'_>) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.check_password = Some(Arc::new(f));
        self
    }
    /// Set the bearer-token callback (the suite's OnUnknownAuthentication for `Bearer`).
    pub fn on_token(
        mut self,
        f: impl Fn(&str, SocketAddr) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.check_token = Some(Arc::new(f));
        self
    }
}

/// Compare two byte strings in time that depends on their lengths only.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= std::hint::black_box(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

/// `%XX` decoding of a path segment (`None` for a bad escape or a result past
/// [`MAX_CREDENTIAL_LEN`]). `+` stays `+` (this is a path, not a form).
pub fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            let h = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    (out.len() <= MAX_CREDENTIAL_LEN).then_some(out)
}

/// `USER/PASSWORD` (percent-decoded; nothing after the password but an optional `/`).
fn user_password(rest: &str) -> Option<(Vec<u8>, Vec<u8>)> {
    let (u, p) = rest.split_once('/')?;
    let p = p.strip_suffix('/').unwrap_or(p);
    if p.contains('/') {
        return None;
    }
    Some((percent_decode(u)?, percent_decode(p)?))
}

/// A refusal: the status and the header fields of the error response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denied {
    /// 401, or 503 when the session store is full.
    pub status: u16,
    /// `WWW-Authenticate` and the configured error headers.
    pub headers: Vec<(String, String)>,
}

impl Denied {
    /// The header fields as `&str` pairs.
    pub fn header_refs(&self) -> Vec<(&str, &str)> {
        self.headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect()
    }
    fn response(self) -> Response {
        let mut r = Response::text(self.status, format!("{} Unauthorized\n", self.status));
        if self.status != 401 {
            r = Response::text(self.status, "session store full\n");
        }
        r.headers.extend(self.headers);
        r
    }
}

struct Session {
    user: String,
    expires: Instant,
}

/// The authenticator: settings plus the session store, shared by every core.
pub struct Auth {
    cfg: AuthConfig,
    sessions: Mutex<HashMap<String, Session>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// An authenticator with these settings.
    pub fn new(cfg: AuthConfig) -> Self {
        Auth {
            cfg,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// The settings.
    pub fn config(&self) -> &AuthConfig {
        &self.cfg
    }

    /// Whether `path` is under an exempt prefix.
    pub fn is_exempt(&self, path: &str) -> bool {
        self.cfg.exempt.iter().any(|p| path.starts_with(p.as_str()))
    }

    fn denied(&self) -> Denied {
        let m = self.cfg.modes;
        let realm = self.cfg.realm.replace(['"', '\\', '\r', '\n'], "");
        let mut headers = Vec::new();
        if m.basic || !m.bearer {
            headers.push((
                "WWW-Authenticate".to_owned(),
                format!("Basic realm=\"{realm}\", charset=\"UTF-8\""),
            ));
        }
        if m.bearer {
            headers.push((
                "WWW-Authenticate".to_owned(),
                format!("Bearer realm=\"{realm}\""),
            ));
        }
        headers.extend(self.cfg.error_headers.iter().cloned());
        Denied {
            status: 401,
            headers,
        }
    }

    /// Check a user and password: every configured user is compared, then the callback.
    pub fn check_user(
        &self,
        user: &[u8],
        password: &[u8],
        scheme: &'static str,
        peer: SocketAddr,
    ) -> bool {
        if user.len() > MAX_CREDENTIAL_LEN || password.len() > MAX_CREDENTIAL_LEN {
            return false;
        }
        let mut ok = false;
        for (u, p) in &self.cfg.users {
            // `&` (not `&&`): both comparisons run for every entry.
            ok |= ct_eq(u.as_bytes(), user) & ct_eq(p.as_bytes(), password);
        }
        if ok {
            return true;
        }
        let Some(f) = &self.cfg.check_password else {
            return false;
        };
        let (Ok(user), Ok(password)) = (std::str::from_utf8(user), std::str::from_utf8(password))
        else {
            return false;
        };
        let c = Credentials {
            user,
            password,
            scheme,
            peer,
        };
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&c))).unwrap_or(false)
    }

    fn check_token(&self, token: &[u8], peer: SocketAddr) -> bool {
        if token.is_empty() || token.len() > MAX_CREDENTIAL_LEN {
            return false;
        }
        let mut ok = false;
        for t in &self.cfg.bearer_tokens {
            ok |= ct_eq(t.as_bytes(), token);
        }
        if ok {
            return true;
        }
        let (Some(f), Ok(token)) = (&self.cfg.check_token, std::str::from_utf8(token)) else {
            return false;
        };
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(token, peer))).unwrap_or(false)
    }

    /// The `Authorization` header against the enabled header schemes; `None` when absent.
    fn check_header(&self, authorization: Option<&[u8]>, peer: SocketAddr) -> Option<bool> {
        let v = authorization?;
        let v = std::str::from_utf8(v).ok().map(str::trim);
        let Some((scheme, data)) = v.and_then(|v| v.split_once(' ')) else {
            return Some(false);
        };
        let data = data.trim();
        if scheme.eq_ignore_ascii_case("basic") && self.cfg.modes.basic {
            let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(data) else {
                return Some(false);
            };
            // RFC 7617 §2: "the user-id and password, separated by a single colon".
            let Some(colon) = raw.iter().position(|&b| b == b':') else {
                return Some(false);
            };
            let (u, p) = raw.split_at(colon);
            return Some(self.check_user(u, p.get(1..).unwrap_or_default(), "basic", peer));
        }
        if scheme.eq_ignore_ascii_case("bearer") && self.cfg.modes.bearer {
            return Some(self.check_token(data.as_bytes(), peer));
        }
        Some(false)
    }

    fn no_credentials(&self, peer: SocketAddr) -> bool {
        self.cfg.check_password.is_some() && self.check_user(b"", b"", "none", peer)
    }

    /// A new session token for `user` (`None` when the store is full).
    fn issue_session(&self, user: &[u8]) -> Option<String> {
        let mut key = [0u8; 16];
        crate::stun::fill_random(&mut key);
        let token: String = key.iter().map(|b| format!("{b:02x}")).collect();
        let now = Instant::now();
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if s.len() >= self.cfg.max_sessions {
            s.retain(|_, v| v.expires > now);
            if s.len() >= self.cfg.max_sessions {
                return None;
            }
        }
        s.insert(
            token.clone(),
            Session {
                user: String::from_utf8_lossy(user).into_owned(),
                expires: now + self.cfg.session_ttl,
            },
        );
        Some(token)
    }

    /// Take a session token (single use); its user if it was valid and unexpired.
    pub fn take_session(&self, token: &str) -> Option<String> {
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let sess = s.remove(token)?;
        (sess.expires > Instant::now()).then_some(sess.user)
    }

    /// Outstanding session tokens (expired ones included until purged).
    pub fn sessions(&self) -> usize {
        self.sessions.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// Check an HTTP request: `Some(response)` answers it (a session token, or a refusal).
    pub fn check_http(&self, req: &Request) -> Option<Response> {
        let m = self.cfg.modes;
        if m.session
            && let Some(rest) = req.path().strip_prefix(SESSION_REQUEST_PREFIX)
        {
            if req.method() != "GET" && req.method() != "HEAD" {
                return Some(
                    Response::text(405, "405 Method Not Allowed\n")
                        .with_header("Allow", "GET, HEAD"),
                );
            }
            let ok = user_password(rest)
                .filter(|(u, p)| self.check_user(u, p, "session-request", req.peer_addr()));
            let Some((user, _)) = ok else {
                return Some(self.denied().response());
            };
            return Some(match self.issue_session(&user) {
                Some(t) => Response::bytes(
                    200,
                    "application/json",
                    format!(
                        "{{\"session\":\"{t}\",\"expires_in\":{}}}\n",
                        self.cfg.session_ttl.as_secs()
                    ),
                )
                .with_header("Cache-Control", "no-store"),
                None => Denied {
                    status: 503,
                    headers: vec![("Retry-After".into(), "1".into())],
                }
                .response(),
            });
        }
        if !(m.basic || m.bearer) || self.is_exempt(req.path()) {
            return None;
        }
        if req.method() == "OPTIONS" && req.header("access-control-request-method").is_some() {
            return None;
        }
        let ok = match self.check_header(req.header("authorization"), req.peer_addr()) {
            Some(ok) => ok,
            None => self.no_credentials(req.peer_addr()),
        };
        (!ok).then(|| self.denied().response())
    }

    /// Check a WebSocket upgrade to `path` (without the query) before the `101`.
    pub fn check_upgrade(
        &self,
        path: &str,
        authorization: Option<&[u8]>,
        peer: SocketAddr,
    ) -> Result<(), Denied> {
        if self.is_exempt(path) {
            return Ok(());
        }
        let m = self.cfg.modes;
        let ok = if let Some(rest) = path.strip_prefix(URL_PREFIX).filter(|_| m.url) {
            user_password(rest).is_some_and(|(u, p)| self.check_user(&u, &p, "url", peer))
        } else if let Some(rest) = path.strip_prefix(SESSION_PREFIX).filter(|_| m.session) {
            let token = rest.strip_suffix('/').unwrap_or(rest);
            !token.contains('/') && self.take_session(token).is_some()
        } else {
            match self.check_header(authorization, peer) {
                Some(ok) => ok,
                None => self.no_credentials(peer),
            }
        };
        if ok { Ok(()) } else { Err(self.denied()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 1))
    }

    #[test]
    fn ct_eq_matches_eq() {
        for (a, b) in [
            ("", ""),
            ("a", "a"),
            ("a", "b"),
            ("ab", "a"),
            ("1234", "1234"),
        ] {
            assert_eq!(ct_eq(a.as_bytes(), b.as_bytes()), a == b, "{a:?} {b:?}");
        }
    }

    #[test]
    fn rfc7617_basic_vector_and_modes() {
        let a = Auth::new(AuthConfig::default().user("admin", "1234"));
        // Spec vector: admin:1234 -> YWRtaW46MTIzNA==
        assert_eq!(
            a.check_header(Some(b"Basic YWRtaW46MTIzNA=="), peer()),
            Some(true)
        );
        assert_eq!(
            a.check_header(Some(b"Basic YWRtaW46MTIzNQ=="), peer()),
            Some(false)
        );
        assert_eq!(a.check_header(Some(b"Bearer x"), peer()), Some(false));
        assert_eq!(a.check_header(None, peer()), None);
        assert!("basic,url".parse::<AuthModes>().is_ok());
        assert!("basic,nope".parse::<AuthModes>().is_err());
        assert!("".parse::<AuthModes>().is_err());
    }

    #[test]
    fn url_and_session_paths() {
        let a = Auth::new(AuthConfig::default().user("ad min", "p/w"));
        assert!(
            a.check_upgrade("/sgc/auth/url/ad%20min/p%2Fw", None, peer())
                .is_ok()
        );
        assert!(
            a.check_upgrade("/sgc/auth/url/ad%20min/p/w", None, peer())
                .is_err()
        );
        assert!(
            a.check_upgrade("/sgc/auth/url/ad%20min/bad", None, peer())
                .is_err()
        );
        assert!(a.check_upgrade("/sgc/auth/url/ad%2", None, peer()).is_err());
        let t = a.issue_session(b"ad min").unwrap();
        assert!(
            a.check_upgrade(&format!("/sgc/auth/session/{t}"), None, peer())
                .is_ok()
        );
        // Single use.
        assert!(
            a.check_upgrade(&format!("/sgc/auth/session/{t}"), None, peer())
                .is_err()
        );
    }

    #[test]
    fn session_store_limit_and_expiry() {
        let a = Auth::new(AuthConfig {
            max_sessions: 2,
            session_ttl: Duration::ZERO,
            ..AuthConfig::default()
        });
        // Expired tokens are purged to make room; an expired token never authenticates.
        for _ in 0..5 {
            let t = a.issue_session(b"u").unwrap();
            assert!(a.take_session(&t).is_none());
        }
        let b = Auth::new(AuthConfig {
            max_sessions: 2,
            ..AuthConfig::default()
        });
        assert!(b.issue_session(b"u").is_some());
        assert!(b.issue_session(b"u").is_some());
        assert!(b.issue_session(b"u").is_none(), "one past max_sessions");
    }

    #[test]
    fn callback_sees_missing_credentials() {
        let a = Auth::new(
            AuthConfig::default().on_password(|c| c.user.is_empty() && c.scheme == "none"),
        );
        assert!(a.check_upgrade("/", None, peer()).is_ok());
        let b = Auth::new(AuthConfig::default());
        assert!(b.check_upgrade("/", None, peer()).is_err());
        assert!(b.check_upgrade("/x", Some(b"Basic !!"), peer()).is_err());
    }
}
