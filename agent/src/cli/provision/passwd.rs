//! Lines of a mosquitto password file, so `outpost provision` can write device credentials on a
//! workstation without mosquitto installed: mosquitto 2's own format,
//! `user:$7$ITERATIONS$SALT$HASH` (PBKDF2-HMAC-SHA512, base64 salt and hash), as
//! `mosquitto_passwd` writes it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest as _, Sha512};

/// mosquitto_passwd's iteration count (mosquitto 2.0): what its broker checks quickly on every
/// CONNECT. The password it protects is random and long (see [`random_password`]), so the
/// hash needs no stretching to resist guessing.
const ITERATIONS: u32 = 101;
/// mosquitto_passwd's salt length.
const SALT_BYTES: usize = 12;
/// SHA-512's block size, for HMAC.
const BLOCK: usize = 128;

/// A password-file line for `user` with `password`, with a fresh random salt.
pub fn line(user: &str, password: &str) -> anyhow::Result<String> {
    let mut salt = [0u8; SALT_BYTES];
    getrandom::fill(&mut salt).map_err(|e| anyhow::anyhow!("no randomness for a salt: {e}"))?;
    Ok(line_with_salt(user, password, &salt))
}

/// [`line`] with a given salt (tests compare with mosquitto's own lines).
fn line_with_salt(user: &str, password: &str, salt: &[u8]) -> String {
    let hash = pbkdf2_sha512(password.as_bytes(), salt, ITERATIONS);
    format!(
        "{user}:$7${ITERATIONS}${}${}",
        STANDARD.encode(salt),
        STANDARD.encode(hash)
    )
}

/// A new broker password: 24 random bytes as URL-safe base64 (32 characters, 192 bits).
pub fn random_password() -> anyhow::Result<String> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes)
        .map_err(|e| anyhow::anyhow!("no randomness for a password: {e}"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// HMAC-SHA512 (RFC 2104) of `parts` concatenated.
fn hmac_sha512(key: &[u8], parts: &[&[u8]]) -> [u8; 64] {
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..64].copy_from_slice(&Sha512::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|k| k ^ byte);
    let mut inner = Sha512::new();
    inner.update(pad(0x36));
    for part in parts {
        inner.update(part);
    }
    let mut outer = Sha512::new();
    outer.update(pad(0x5c));
    outer.update(inner.finalize());
    let mut out = [0u8; 64];
    out.copy_from_slice(&outer.finalize());
    out
}

/// PBKDF2 (RFC 8018) with HMAC-SHA512, one 64-byte block: all mosquitto keeps.
fn pbkdf2_sha512(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 64] {
    let mut u = hmac_sha512(password, &[salt, &1u32.to_be_bytes()]);
    let mut out = u;
    for _ in 1..iterations {
        u = hmac_sha512(password, &[&u]);
        for (o, b) in out.iter_mut().zip(u) {
            *o ^= b;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_match_what_mosquitto_passwd_writes() {
        // `mosquitto_passwd -c -b FILE pi-1 secret` (mosquitto 2.0.11) wrote this line.
        let expected = "pi-1:$7$101$YrbE8hOnZZE2wVtA$Am7jwfYLdTZFcAOuvXG1e9LFM1Xhz0MaB+oBqL9z0XEL\
                        yF7PHQ1obwmrirXCTf2qTQYsmZbVvhMx/j8SPvhcaw==";
        let salt = STANDARD.decode("YrbE8hOnZZE2wVtA").expect("base64");
        assert_eq!(line_with_salt("pi-1", "secret", &salt), expected);
    }

    #[test]
    fn pbkdf2_matches_rfc_vectors() {
        // PBKDF2-HMAC-SHA512, P = "password", S = "salt", c = 1 (widely published vector).
        let out = pbkdf2_sha512(b"password", b"salt", 1);
        assert_eq!(out[..8], [0x86, 0x7f, 0x70, 0xcf, 0x1a, 0xde, 0x02, 0xcf]);
    }

    #[test]
    fn passwords_are_long_and_differ() -> anyhow::Result<()> {
        let (a, b) = (random_password()?, random_password()?);
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        Ok(())
    }
}
