//! The payload cipher of KMS-encrypted sessions.
//!
//! When a cluster's ECS Exec configuration names a KMS key, the agent asks the client
//! for a data key during the handshake. The client has KMS generate 64 bytes, keeps the
//! plaintext and hands the agent the ciphertext blob; the agent decrypts it with the task
//! role. Each side then uses one half per direction: the client decrypts with bytes 0..32
//! (the agent's sending key) and encrypts with bytes 32..64. Every encrypted payload is
//! AES-256-GCM, laid out as `nonce (12 bytes) || ciphertext || tag (16 bytes)`, with no
//! associated data. The `aes-gcm` crate does the cryptography; only the layout is ours.

use std::future::Future;
use std::pin::Pin;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use thiserror::Error;

/// Bytes the client asks KMS for: two AES-256 keys.
pub const DATA_KEY_BYTES: i32 = 64;
const NONCE: usize = 12;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CipherError {
    #[error("the data key has {0} bytes, not {DATA_KEY_BYTES}")]
    KeyLength(usize),
    #[error("an encrypted payload of {0} bytes is too short to hold a nonce and a tag")]
    Short(usize),
    #[error("an encrypted payload failed authentication (wrong key or tampered data)")]
    Authentication,
}

/// A data key from KMS GenerateDataKey.
pub struct DataKey {
    /// What the agent gets, to decrypt with the task role.
    pub ciphertext: Vec<u8>,
    /// What we keep.
    pub plaintext: Vec<u8>,
}

/// Where a channel gets its data key when the agent asks for encryption. The caller
/// supplies it because only the caller knows the session and target ids that KMS must
/// bind into the encryption context (and holds the AWS clients).
pub trait DataKeys: Send + Sync {
    /// A fresh 64-byte data key under `key_id`, or why there is none.
    fn generate(
        &self,
        key_id: &str,
    ) -> Pin<Box<dyn Future<Output = Result<DataKey, String>> + Send>>;

    /// The key every session must be encrypted with (the cluster's ECS Exec key), if any:
    /// a session the agent starts in clear text, or under another key, is refused.
    fn required_key(&self) -> Option<&str> {
        None
    }
}

/// Whether two spellings name the same KMS key: equal, or one is the ARN of the other
/// (`arn:…:key/ID` for `ID`, `arn:…:alias/NAME` for `alias/NAME`).
pub fn same_key(a: &str, b: &str) -> bool {
    let arn_of = |arn: &str, short: &str| {
        arn.starts_with("arn:")
            && (arn.ends_with(&format!(":key/{short}")) || arn.ends_with(&format!(":{short}")))
    };
    a == b || arn_of(a, b) || arn_of(b, a)
}

/// Both directions' keys of one session.
pub struct SessionCipher {
    outgoing: Aes256Gcm,
    incoming: Aes256Gcm,
}

impl SessionCipher {
    /// Splits the KMS plaintext data key into the client's two keys.
    pub fn from_data_key(plaintext: &[u8]) -> Result<Self, CipherError> {
        if plaintext.len() != DATA_KEY_BYTES as usize {
            return Err(CipherError::KeyLength(plaintext.len()));
        }
        let (incoming, outgoing) = plaintext.split_at(32);
        Ok(SessionCipher {
            outgoing: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(outgoing)),
            incoming: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(incoming)),
        })
    }

    /// Encrypts a payload we send, under a fresh random nonce.
    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = self
            .outgoing
            .encrypt(&nonce, plaintext)
            .expect("AES-GCM encryption fails only beyond 64 GiB per message");
        let mut out = Vec::with_capacity(NONCE + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Decrypts and authenticates a payload the agent sent.
    pub fn open(&self, payload: &[u8]) -> Result<Vec<u8>, CipherError> {
        if payload.len() < NONCE + 16 {
            return Err(CipherError::Short(payload.len()));
        }
        let (nonce, sealed) = payload.split_at(NONCE);
        self.incoming
            .decrypt(Nonce::from_slice(nonce), sealed)
            .map_err(|_| CipherError::Authentication)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Vec<u8> {
        (0u8..64).collect()
    }

    /// The agent's view of the same key: halves swapped.
    fn agent() -> SessionCipher {
        let mut swapped = key()[32..].to_vec();
        swapped.extend_from_slice(&key()[..32]);
        SessionCipher::from_data_key(&swapped).unwrap()
    }

    #[test]
    fn each_side_reads_what_the_other_sealed() {
        let client = SessionCipher::from_data_key(&key()).unwrap();
        let agent = agent();
        let sealed = agent.seal(b"prompt$ ");
        assert_eq!(sealed.len(), 12 + 8 + 16);
        assert_eq!(client.open(&sealed).unwrap(), b"prompt$ ");
        assert_eq!(agent.open(&client.seal(b"ls\r")).unwrap(), b"ls\r");
        // A side cannot read its own messages: the directions use different keys.
        assert_eq!(
            client.open(&client.seal(b"x")),
            Err(CipherError::Authentication)
        );
    }

    #[test]
    fn nonces_are_fresh_per_message() {
        let client = SessionCipher::from_data_key(&key()).unwrap();
        assert_ne!(client.seal(b"same")[..12], client.seal(b"same")[..12]);
    }

    #[test]
    fn bad_keys_and_payloads_are_errors_not_panics() {
        assert_eq!(
            SessionCipher::from_data_key(&[0; 32]).err(),
            Some(CipherError::KeyLength(32))
        );
        let client = SessionCipher::from_data_key(&key()).unwrap();
        assert_eq!(client.open(&[1; 27]), Err(CipherError::Short(27)));
        let mut tampered = agent().seal(b"data");
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(client.open(&tampered), Err(CipherError::Authentication));
    }
}
