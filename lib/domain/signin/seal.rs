//! Sealing a provider's access token for storage: ChaCha20-Poly1305 under a key derived
//! from `ATLAS_TOKEN_PEPPER` (HMAC-SHA256 of a fixed label), a random nonce per seal, and the
//! person as associated data, so a sealed token copied onto another session does not open.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

use crate::config::Secret;
use crate::domain::tokens;

const NONCE_LEN: usize = 12;

fn cipher(pepper: &Secret) -> ChaCha20Poly1305 {
    let key = tokens::digest(pepper, "atlas-hub: sealed provider tokens, v1");
    ChaCha20Poly1305::new(Key::from_slice(&key))
}

/// `secret` sealed for `person`: nonce followed by the ciphertext and its tag.
pub fn seal(pepper: &Secret, person: &str, secret: &Secret) -> Vec<u8> {
    let nonce: [u8; NONCE_LEN] = rand::random();
    let sealed = cipher(pepper)
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: secret.expose().as_bytes(),
                aad: person.as_bytes(),
            },
        )
        .expect("ChaCha20-Poly1305 seals any message of this size");
    [nonce.as_slice(), &sealed].concat()
}

/// The secret `sealed` holds, if it was sealed for `person` under this pepper.
pub fn open(pepper: &Secret, person: &str, sealed: &[u8]) -> Option<Secret> {
    if sealed.len() <= NONCE_LEN {
        return None;
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let plain = cipher(pepper)
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: body,
                aad: person.as_bytes(),
            },
        )
        .ok()?;
    String::from_utf8(plain).ok().map(Secret::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_tokens_open_only_for_their_person_and_pepper() {
        let pepper = Secret::new("p".repeat(32));
        let token = Secret::new("gho_16C7e42F292c6912E7710c838347Ae178B4a");
        let sealed = seal(&pepper, "github:octocat", &token);
        assert!(!sealed.windows(4).any(|w| w == b"gho_"));
        assert_eq!(
            open(&pepper, "github:octocat", &sealed),
            Some(token.clone())
        );
        assert_eq!(open(&pepper, "github:mallory", &sealed), None);
        assert_eq!(
            open(&Secret::new("q".repeat(32)), "github:octocat", &sealed),
            None
        );
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(open(&pepper, "github:octocat", &flipped), None);
        assert_eq!(open(&pepper, "github:octocat", &sealed[..5]), None);
        assert_ne!(
            seal(&pepper, "github:octocat", &token),
            sealed,
            "a nonce per seal"
        );
    }
}
