//! Console sessions: a token signed in once becomes a random session id in an HttpOnly,
//! SameSite=Strict cookie (Secure when rotor serves TLS). The cookie never holds the token.
//!
//! The server keeps each session under the SHA-256 of its id, so a lookup's timing says
//! nothing about the id's bytes (the map compares digests of a 256-bit random id, never the
//! id), and the found entry's digest is compared again in constant time. Each session has
//! its own CSRF token, sent back in a hidden field of every form and checked in constant
//! time before any action. Sessions end on sign-out, after [`IDLE`] without use, or after
//! [`LIFETIME`]; at most [`MAX_SESSIONS`] live at once (the oldest goes first).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::auth::Caller;

/// The cookie's name.
pub const COOKIE: &str = "rotor_session";
/// A session unused this long ends.
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// A session ends this long after sign-in, used or not.
pub const LIFETIME: Duration = Duration::from_secs(8 * 3_600);
/// Sessions kept at once.
pub const MAX_SESSIONS: usize = 1_000;

/// A signed-in token, as the console sees it.
#[derive(Debug, Clone)]
pub struct Session {
    pub caller: Caller,
    /// The CSRF token the forms of this session carry.
    pub csrf: String,
    created: Instant,
    used: Instant,
}

impl Session {
    /// Whether `presented` is this session's CSRF token (constant time).
    pub fn csrf_ok(&self, presented: &str) -> bool {
        bool::from(self.csrf.as_bytes().ct_eq(presented.as_bytes()))
    }
}

/// The daemon's live sessions.
#[derive(Debug, Default)]
pub struct Sessions {
    by_digest: Mutex<HashMap<[u8; 32], Session>>,
}

fn random_token() -> Option<String> {
    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(bytes.as_mut()).ok()?;
    Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes.as_ref()))
}

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    /// Starts a session for `caller`; returns its id (for the cookie), or `None` when the OS
    /// random generator fails.
    pub fn start(&self, caller: Caller) -> Option<String> {
        let id = random_token()?;
        let csrf = random_token()?;
        let now = Instant::now();
        let mut map = self.by_digest.lock().ok()?;
        map.retain(|_, s| alive(s, now));
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map.iter().min_by_key(|(_, s)| s.created).map(|(k, _)| *k)
        {
            map.remove(&oldest);
        }
        map.insert(
            digest(&id),
            Session {
                caller,
                csrf,
                created: now,
                used: now,
            },
        );
        Some(id)
    }

    /// The live session with this id, marked used.
    pub fn get(&self, id: &str) -> Option<Session> {
        let d = digest(id);
        let now = Instant::now();
        let mut map = self.by_digest.lock().ok()?;
        let (key, s) = map.get_key_value(&d)?;
        if !bool::from(key.ct_eq(&d)) {
            return None;
        }
        if !alive(s, now) {
            map.remove(&d);
            return None;
        }
        let s = map.get_mut(&d)?;
        s.used = now;
        Some(s.clone())
    }

    /// Ends the session with this id (sign-out).
    pub fn end(&self, id: &str) {
        if let Ok(mut map) = self.by_digest.lock() {
            map.remove(&digest(id));
        }
    }
}

fn alive(s: &Session, now: Instant) -> bool {
    now.duration_since(s.used) < IDLE && now.duration_since(s.created) < LIFETIME
}

/// The session id in a `Cookie` header, if any.
pub fn from_cookie_header(header: &str) -> Option<&str> {
    header.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == COOKIE && !v.is_empty()).then_some(v)
    })
}

/// The `Set-Cookie` value that carries a new session id.
pub fn set_cookie(id: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        LIFETIME.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller() -> Caller {
        Caller {
            name: "ops".into(),
            scopes: Vec::new(),
        }
    }

    #[test]
    fn sessions_are_random_found_by_id_and_end_on_sign_out() {
        let s = Sessions::default();
        let a = s.start(caller()).expect("id");
        let b = s.start(caller()).expect("id");
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        let got = s.get(&a).expect("live");
        assert_eq!(got.caller.name, "ops");
        assert!(got.csrf_ok(&got.csrf.clone()));
        assert!(!got.csrf_ok("nope"));
        assert_ne!(got.csrf, s.get(&b).expect("live").csrf);
        assert!(s.get("forged").is_none());
        s.end(&a);
        assert!(s.get(&a).is_none());
        assert!(s.get(&b).is_some());
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_under_tls() {
        let c = set_cookie("abc", true);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Secure"));
        assert!(!set_cookie("abc", false).contains("Secure"));
        assert_eq!(
            from_cookie_header("a=1; rotor_session=xyz; b=2"),
            Some("xyz")
        );
        assert_eq!(from_cookie_header("a=1"), None);
    }
}
