//! Tokens sealed at rest: the ID, access and refresh tokens in a session record, and a renewal's
//! result while requests wait for it, are encrypted (AES-256-GCM) before they reach the store,
//! so that a copy of the store (a Redis dump, a database backup) holds none of them.
//!
//! Keys come from `SESSION_KEYS` (comma-separated, base64, 32 bytes each): the first seals,
//! every one opens, so a key is rotated by putting a new one first and dropping the old one once
//! the sessions it sealed have ended (a session whose key is gone ends: its user signs in
//! again). A sealed value names its key by a short id, so opening tries no other.

use std::{fmt, path::Path};

use base64::{
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
    Engine,
};
use ring::{
    aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN},
    rand::{SecureRandom, SystemRandom},
};
use serde_json::Value;
use tower_sessions::session::Record;

use crate::config::{development_file, parse_session_key, ConfigError, SessionKey};

/// What marks a sealed value (and its format's version).
const PREFIX: &str = "sealed1.";

/// The fields of a session record that hold tokens: the signed-in user's (and the DPoP key
/// their access token is bound to), and a refused sign-in's ID token.
const TOKENS: [(&str, &str); 5] = [
    (super::USER, "id_token"),
    (super::USER, "access_token"),
    (super::USER, "refresh_token"),
    (super::USER, "dpop_key"),
    (super::REFUSED, "id_token"),
];

/// The keys tokens are sealed and opened with.
pub struct SealingKeys {
    /// Each key with its id; the first seals.
    keys: Vec<(String, LessSafeKey)>,
    random: SystemRandom,
}

impl fmt::Debug for SealingKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The ids only: never a key.
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("SealingKeys").field("ids", &ids).finish()
    }
}

/// A sealed value that none of the keys opens: sealed with a key no longer configured, or
/// damaged.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("a sealed token could not be opened: its key is not in SESSION_KEYS, or it is damaged")]
pub struct Unopenable;

impl SealingKeys {
    /// The keys, the first to seal with; at least one.
    pub fn new(keys: &[SessionKey]) -> Self {
        assert!(!keys.is_empty(), "at least one key");
        let keys = keys
            .iter()
            .map(|key| {
                let unbound = UnboundKey::new(&AES_256_GCM, key).expect("32 bytes");
                (key_id(key), LessSafeKey::new(unbound))
            })
            .collect();
        Self {
            keys,
            random: SystemRandom::new(),
        }
    }

    /// A key of its own, made now: what it seals opens only here, while it lives.
    pub fn ephemeral() -> Self {
        Self::new(&[random_key()])
    }

    /// `plaintext` sealed with the first key, bound to `context` (what the value is): it opens
    /// only as that.
    pub fn seal(&self, plaintext: &str, context: &str) -> String {
        let (id, key) = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .expect("the system's random numbers");
        let mut sealed = plaintext.as_bytes().to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(context.as_bytes()),
            &mut sealed,
        )
        .expect("a token is far shorter than AES-GCM's limit");
        let mut bytes = nonce.to_vec();
        bytes.extend(sealed);
        format!("{PREFIX}{id}.{}", URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The value sealed as `context`. A value that is not sealed (written before tokens were)
    /// is taken as it is.
    pub fn open(&self, value: &str, context: &str) -> Result<String, Unopenable> {
        let Some(sealed) = value.strip_prefix(PREFIX) else {
            return Ok(value.to_owned());
        };
        let (id, data) = sealed.split_once('.').ok_or(Unopenable)?;
        let (_, key) = self.keys.iter().find(|(k, _)| k == id).ok_or(Unopenable)?;
        let mut bytes = URL_SAFE_NO_PAD.decode(data).map_err(|_| Unopenable)?;
        if bytes.len() < NONCE_LEN {
            return Err(Unopenable);
        }
        let mut ciphertext = bytes.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&bytes).map_err(|_| Unopenable)?;
        let opened = key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut ciphertext)
            .map_err(|_| Unopenable)?;
        String::from_utf8(opened.to_vec()).map_err(|_| Unopenable)
    }

    /// The record as the store keeps it: its tokens sealed.
    pub fn seal_record(&self, record: &Record) -> Record {
        let mut sealed = record.clone();
        self.each_token(&mut sealed, |value, context| Ok(self.seal(value, context)))
            .expect("sealing does not fail");
        sealed
    }

    /// The record as the store kept it, its tokens opened.
    pub fn open_record(&self, mut record: Record) -> Result<Record, Unopenable> {
        self.each_token(&mut record, |value, context| self.open(value, context))?;
        Ok(record)
    }

    /// Replaces each token of `record` (each string at a place [`TOKENS`] names) with what
    /// `change` makes of it.
    fn each_token(
        &self,
        record: &mut Record,
        change: impl Fn(&str, &str) -> Result<String, Unopenable>,
    ) -> Result<(), Unopenable> {
        for (key, field) in TOKENS {
            let Some(Value::Object(object)) = record.data.get_mut(key) else {
                continue;
            };
            if let Some(Value::String(value)) = object.get_mut(field) {
                *value = change(value, &format!("{key}.{field}"))?;
            }
        }
        Ok(())
    }
}

/// A key's id: the first 4 bytes of its SHA-256, in hex. Names the key; reveals nothing of it.
fn key_id(key: &SessionKey) -> String {
    super::hashed(key, 4)
}

/// The development key: made at the first start without `SESSION_KEYS` and kept in `dir`
/// (`session.key`, readable by its owner only), never in the store itself. Instances that share
/// the directory share it; instances on several hosts need `SESSION_KEYS`.
pub fn development_key(dir: &Path) -> Result<SessionKey, ConfigError> {
    let path = dir.join("session.key");
    let (text, made) = development_file(&path, || STANDARD.encode(random_key())).map_err(|e| {
        ConfigError::new(
            "DATA_DIR",
            format!(
                "the development session key {} could not be kept: {e}",
                path.display()
            ),
        )
    })?;
    if made {
        tracing::warn!(
            path = %path.display(),
            "SESSION_KEYS is not set: a development key was made to seal the tokens in sessions; set SESSION_KEYS in production, the same on every instance"
        );
    }
    parse_session_key(&text).ok_or_else(|| {
        ConfigError::new(
            "DATA_DIR",
            format!(
                "{} does not hold a session key (32 bytes in base64)",
                path.display()
            ),
        )
    })
}

fn random_key() -> SessionKey {
    let mut key = [0u8; 32];
    SystemRandom::new()
        .fill(&mut key)
        .expect("the system's random numbers");
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id_token: &str, access_token: &str, refresh_token: Option<&str>) -> Record {
        let user = serde_json::json!({
            "user_id": 1, "id_token": id_token, "access_token": access_token,
            "refresh_token": refresh_token, "dpop_key": "MIGHAgEAMBMGByqGSM49.dpop-key",
            "csrf_token": "not a token of the provider's",
        });
        Record {
            id: Default::default(),
            data: [(super::super::USER.to_owned(), user)].into(),
            expiry_date: tower_sessions::cookie::time::OffsetDateTime::now_utc(),
        }
    }

    #[test]
    fn tokens_are_sealed_and_open_again_and_nothing_else_changes() {
        let keys = SealingKeys::new(&[random_key()]);
        let clear = record("eyJ.id.token", "at-1", Some("rt-1"));
        let sealed = keys.seal_record(&clear);
        let text = serde_json::to_string(&sealed.data).unwrap();
        for token in ["eyJ.id.token", "at-1", "rt-1", "dpop-key"] {
            assert!(!text.contains(token), "{token} in {text}");
        }
        assert!(text.contains("not a token of the provider's"));
        assert_eq!(keys.open_record(sealed).unwrap().data, clear.data);
        // The same token sealed twice differs (a fresh nonce each time).
        assert_ne!(
            keys.seal("at-1", "user.access_token"),
            keys.seal("at-1", "user.access_token")
        );
    }

    #[test]
    fn keys_rotate_the_first_sealing_and_all_opening() {
        let (old, new) = (random_key(), random_key());
        let before = SealingKeys::new(&[old]).seal("rt-1", "user.refresh_token");
        let rotated = SealingKeys::new(&[new, old]);
        assert_eq!(rotated.open(&before, "user.refresh_token").unwrap(), "rt-1");
        let after = rotated.seal("rt-2", "user.refresh_token");
        assert_eq!(
            SealingKeys::new(&[new])
                .open(&after, "user.refresh_token")
                .unwrap(),
            "rt-2"
        );
        // Once the old key is dropped, what it sealed does not open.
        assert_eq!(
            SealingKeys::new(&[new]).open(&before, "user.refresh_token"),
            Err(Unopenable)
        );
    }

    #[test]
    fn a_sealed_token_opens_only_as_what_it_is_and_only_undamaged() {
        let keys = SealingKeys::new(&[random_key()]);
        let sealed = keys.seal("rt-1", "user.refresh_token");
        assert_eq!(keys.open(&sealed, "user.access_token"), Err(Unopenable));
        let mut damaged = sealed.clone();
        let last = damaged.pop().unwrap();
        damaged.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(keys.open(&damaged, "user.refresh_token"), Err(Unopenable));
        assert_eq!(
            keys.open("sealed1.nokey.AAAA", "user.refresh_token"),
            Err(Unopenable)
        );
        // Tokens kept before sealing was introduced open as they are.
        assert_eq!(
            keys.open("rt-legacy", "user.refresh_token").unwrap(),
            "rt-legacy"
        );
    }

    #[test]
    fn keys_are_read_in_every_base64_form_and_only_at_32_bytes() {
        let key = random_key();
        assert_eq!(parse_session_key(&STANDARD.encode(key)), Some(key));
        assert_eq!(parse_session_key(&URL_SAFE_NO_PAD.encode(key)), Some(key));
        assert_eq!(parse_session_key(" c2hvcnQ= "), None);
        assert_eq!(parse_session_key("not base64!"), None);
    }

    #[test]
    fn the_development_key_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let first = development_key(&data).unwrap();
        assert_eq!(development_key(&data).unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(data.join("session.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "the key file is readable by others");
        }
        std::fs::write(data.join("session.key"), "damaged").unwrap();
        assert!(development_key(&data)
            .unwrap_err()
            .to_string()
            .contains("does not hold"));
    }
}
