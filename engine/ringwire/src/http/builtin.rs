//! The built-in pages of `ringwire serve`: the WebSocket test page at `/ringwire.html` and the
//! JavaScript client at `/ringwire.js` (both compiled in from `engine/ringwire/assets/`).

use super::auth::{AuthConfig, AuthModes};
use super::upload::UploadConfig;
use super::{HttpApp, Response};
use crate::config::{ConfigError, FileConfig};

/// The test page: open, close, status and send against the WebSocket echo; `?autotest=TEXT`
/// opens, sends TEXT and shows `PASS: TEXT` in `#result` when it comes back.
pub const TEST_PAGE: &str = include_str!("../../assets/ringwire.html");
/// The JavaScript client: connect with reconnect and backoff, send, events, URL auth.
pub const CLIENT_JS: &str = include_str!("../../assets/ringwire.js");

/// Path of [`TEST_PAGE`].
pub const TEST_PAGE_PATH: &str = "/ringwire.html";
/// Path of [`CLIENT_JS`].
pub const CLIENT_JS_PATH: &str = "/ringwire.js";

/// Add the test page and the client library to `app`.
pub fn with_test_page(app: HttpApp) -> HttpApp {
    app.get(TEST_PAGE_PATH, |_| {
        Response::bytes(200, "text/html; charset=utf-8", TEST_PAGE.as_bytes())
            .with_header("Cache-Control", "no-cache")
    })
    .get(CLIENT_JS_PATH, |_| {
        Response::bytes(200, "text/javascript; charset=utf-8", CLIENT_JS.as_bytes())
            .with_header("Cache-Control", "no-cache")
    })
}

/// The application of `ringwire serve`: the SSE clock at `/events`, the test page and client
/// (unless [`super::HttpConfig::test_page`] is off), then static files.
pub fn serve_app(cfg: &super::HttpConfig) -> HttpApp {
    let mut app = HttpApp::new(cfg.clone()).sse("/events", super::SseEndpoint::clock());
    if cfg.test_page {
        app = with_test_page(app);
    }
    if let Some(u) = &cfg.upload {
        app = app.upload(u.clone());
    }
    app
}

/// Apply the test-page, auth, upload and log keys of `f` to `c`.
pub fn configure(f: &FileConfig, c: &mut super::HttpConfig) -> Result<(), ConfigError> {
    c.test_page = !f.no_test_page.unwrap_or(false);
    let users = f.auth_user.clone().unwrap_or_default();
    let tokens = f.auth_bearer_token.clone().unwrap_or_default();
    if !users.is_empty() || !tokens.is_empty() || f.auth_mode.is_some() {
        let modes = match &f.auth_mode {
            Some(m) => m
                .parse::<AuthModes>()
                .map_err(|e| ConfigError(format!("auth_mode: {e}")))?,
            None => AuthModes {
                bearer: !tokens.is_empty(),
                ..if users.is_empty() {
                    AuthModes::default()
                } else {
                    AuthModes::PASSWORDS
                }
            },
        };
        let mut a = AuthConfig::new(modes);
        for u in users {
            let Some((user, pass)) = u.split_once('=') else {
                return Err(ConfigError(format!(
                    "auth_user: {u:?} is not USER=PASSWORD"
                )));
            };
            if user.is_empty() {
                return Err(ConfigError("auth_user: empty user name".into()));
            }
            a = a.user(user, pass);
        }
        a.bearer_tokens = tokens;
        if (modes.basic || modes.session || modes.url) && a.users.is_empty() {
            return Err(ConfigError(
                "auth_mode basic/session/url needs at least one auth_user".into(),
            ));
        }
        if modes.bearer && a.bearer_tokens.is_empty() {
            return Err(ConfigError(
                "auth_mode bearer needs at least one auth_bearer_token".into(),
            ));
        }
        a.exempt = f.auth_exempt.clone().unwrap_or_default();
        if let Some(r) = &f.auth_realm {
            a.realm = r.clone();
        }
        if let Some(ms) = f.auth_session_ttl_ms {
            if ms == 0 {
                return Err(ConfigError("auth_session_ttl_ms must be positive".into()));
            }
            a.session_ttl = std::time::Duration::from_millis(ms);
        }
        c.auth = Some(a);
    } else if f.auth_exempt.is_some() || f.auth_realm.is_some() || f.auth_session_ttl_ms.is_some() {
        return Err(ConfigError(
            "auth_exempt / auth_realm / auth_session_ttl_ms need auth_user or auth_bearer_token"
                .into(),
        ));
    }
    for spec in f.forward.iter().flatten() {
        let rule = super::forward::ForwardRule::parse(spec, f.forward_ca.as_deref())
            .map_err(|e| ConfigError(format!("forward: {e}")))?;
        c.forward.push(rule);
    }
    if let Some(ms) = f.forward_timeout_ms {
        c.forward_timeout = std::time::Duration::from_millis(ms.max(1));
    }
    if let Some(dir) = &f.upload_dir {
        if !dir.is_dir() {
            return Err(ConfigError(format!(
                "upload_dir: {} is not a directory",
                dir.display()
            )));
        }
        let mut u = UploadConfig::new(dir.clone());
        if let Some(v) = f.upload_min_size {
            u.min_size = v;
            if v > u.max_memory as u64 {
                return Err(ConfigError(format!(
                    "upload_min_size must be at most {} (in-memory bound)",
                    u.max_memory
                )));
            }
        }
        if let Some(v) = f.upload_max_file {
            u.max_file = v;
        }
        if let Some(v) = f.upload_max_body {
            u.max_body = v;
        }
        if let Some(v) = f.upload_max_parts {
            if v == 0 {
                return Err(ConfigError("upload_max_parts must be positive".into()));
            }
            u.limits.max_parts = v;
        }
        c.upload = Some(u);
    } else if f.upload_min_size.is_some()
        || f.upload_max_file.is_some()
        || f.upload_max_body.is_some()
        || f.upload_max_parts.is_some()
    {
        return Err(ConfigError("upload_* keys need upload_dir".into()));
    }
    if let Some(p) = &f.log_file {
        let mut l = super::log::LogConfig::new(p.clone());
        if let Some(n) = f.log_payload_max {
            l.payload_max = n;
        }
        c.log = Some(l);
    } else if f.log_payload_max.is_some() {
        return Err(ConfigError("log_payload_max needs log_file".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::FileConfig;

    fn http(toml: &str) -> Result<super::super::HttpConfig, String> {
        FileConfig::parse(toml)
            .and_then(|f| f.http())
            .map_err(|e| e.0)
    }

    #[test]
    fn auth_upload_log_keys() {
        let c = http("auth_user = [\"admin=1234\"]\nauth_exempt = [\"/p/\"]").unwrap();
        let a = c.auth.unwrap();
        assert_eq!(a.modes, super::AuthModes::PASSWORDS);
        assert_eq!(a.users, vec![("admin".to_owned(), "1234".to_owned())]);
        assert!(c.test_page);
        let c = http("auth_bearer_token = [\"t\"]\nno_test_page = true").unwrap();
        assert!(c.auth.unwrap().modes.bearer && !c.test_page);
        for bad in [
            "auth_user = [\"admin\"]",
            "auth_user = [\"=x\"]",
            "auth_mode = \"basic\"",
            "auth_mode = \"bearer\"\nauth_user = [\"a=b\"]",
            "auth_mode = \"nope\"\nauth_user = [\"a=b\"]",
            "auth_exempt = [\"/\"]",
            "upload_dir = \"/nonexistent-dir\"",
            "upload_max_parts = 3",
            "log_payload_max = 3",
            "auth_user = [\"a=b\"]\nauth_session_ttl_ms = 0",
        ] {
            assert!(http(bad).is_err(), "{bad}");
        }
        let dir = std::env::temp_dir();
        let c = http(&format!(
            "upload_dir = {:?}\nupload_min_size = 10\nupload_max_parts = 3",
            dir.display().to_string()
        ))
        .unwrap();
        let u = c.upload.unwrap();
        assert_eq!((u.min_size, u.limits.max_parts), (10, 3));
        assert!(
            http(&format!(
                "upload_dir = {:?}\nupload_min_size = 99999999",
                dir.display().to_string()
            ))
            .is_err()
        );
    }
}
