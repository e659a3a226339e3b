//! One encrypted SOPS value: `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]`.
//!
//! AES-256-GCM under the file's data key with a 32-byte IV (sops uses Go's
//! `NewGCMWithNonceSize(32)`), the key path as associated data so a value
//! cannot be moved to another key, and the tag written apart from the data.

use aes_gcm::aead::consts::U32;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::aes::Aes256;
use aes_gcm::{AesGcm, Nonce, Tag};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use super::SopsError;

/// AES-256-GCM with sops' 32-byte nonce.
type Cipher = AesGcm<Aes256, U32>;

/// The data key: 32 bytes, wiped on drop.
pub(crate) type DataKey = Zeroizing<[u8; 32]>;

/// The parts of an `ENC[…]` string, decoded.
pub(crate) struct Enc {
    data: Vec<u8>,
    iv: [u8; 32],
    tag: [u8; 16],
    /// The `type:` field: str, int, float, bool, time, bytes, comment.
    pub kind: String,
}

/// Why an `ENC[…]` string could not be read.
pub(crate) type EncFault = &'static str;

/// Splits and decodes an `ENC[…]` string. `Ok(None)` when the text is not in
/// that shape at all; `Err` when it is, but a field is bad.
pub(crate) fn parse(text: &str) -> Result<Option<Enc>, EncFault> {
    let Some(inner) = text
        .strip_prefix("ENC[AES256_GCM,")
        .and_then(|t| t.strip_suffix(']'))
    else {
        return Ok(None);
    };
    let mut fields = inner.split(',');
    let mut field =
        |name: &str| -> Option<&str> { fields.next()?.strip_prefix(name)?.strip_prefix(':') };
    let (Some(data), Some(iv), Some(tag), Some(kind)) =
        (field("data"), field("iv"), field("tag"), field("type"))
    else {
        return Ok(None);
    };
    if fields.next().is_some() {
        return Ok(None);
    }
    let data = B64.decode(data).map_err(|_| "the data is not base64")?;
    let iv = B64.decode(iv).map_err(|_| "the iv is not base64")?;
    let tag = B64.decode(tag).map_err(|_| "the tag is not base64")?;
    let iv: [u8; 32] = iv.try_into().map_err(|_| "the iv is not 32 bytes")?;
    let tag: [u8; 16] = tag.try_into().map_err(|_| "the tag is not 16 bytes")?;
    Ok(Some(Enc {
        data,
        iv,
        tag,
        kind: kind.to_owned(),
    }))
}

/// Decrypts a parsed value; `None` when authentication fails.
pub(crate) fn open(key: &DataKey, enc: &Enc, aad: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let cipher = Cipher::new(key.as_ref().into());
    let mut buffer = Zeroizing::new(enc.data.clone());
    cipher
        .decrypt_in_place_detached(
            Nonce::<U32>::from_slice(&enc.iv),
            aad,
            &mut buffer,
            Tag::from_slice(&enc.tag),
        )
        .ok()?;
    Some(buffer)
}

/// Encrypts `plaintext` with a fresh random IV and formats it.
pub(crate) fn seal(
    key: &DataKey,
    plaintext: &[u8],
    aad: &[u8],
    kind: &str,
    rng: &mut dyn CryptoRngCore,
) -> Result<String, SopsError> {
    let mut iv = [0u8; 32];
    rng.fill_bytes(&mut iv);
    seal_with_iv(key, plaintext, aad, kind, &iv)
}

/// Encrypts with a given IV. Callers other than [`seal`] are tests that
/// replay known vectors: reusing an IV for another plaintext breaks GCM.
pub(crate) fn seal_with_iv(
    key: &DataKey,
    plaintext: &[u8],
    aad: &[u8],
    kind: &str,
    iv: &[u8; 32],
) -> Result<String, SopsError> {
    let cipher = Cipher::new(key.as_ref().into());
    let mut buffer = Zeroizing::new(plaintext.to_vec());
    // GCM refuses only messages beyond its 64 GiB limit.
    let tag = cipher
        .encrypt_in_place_detached(Nonce::<U32>::from_slice(iv), aad, &mut buffer)
        .map_err(|_| SopsError::Unsupported {
            what: "a value over 64 GiB".into(),
        })?;
    Ok(format!(
        "ENC[AES256_GCM,data:{},iv:{},tag:{},type:{}]",
        B64.encode(buffer.as_slice()),
        B64.encode(iv),
        B64.encode(tag.as_slice()),
        kind
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> DataKey {
        let mut k = [0u8; 32];
        hex::decode_to_slice(
            "af6dc30b15dd5c3166a8381b923bfb295429d3552780c3366d1a2fad48d77adc",
            &mut k,
        )
        .unwrap();
        Zeroizing::new(k)
    }

    /// The leaves of the worked example in the format note, made by sops 3.11.
    #[test]
    fn opens_real_sops_values() {
        let hello = "ENC[AES256_GCM,data:M/y9WTQ=,iv:vxoFqL5Fl2/aQiDeUjIURhlqROtiR9c5nXZNEi/f8eI=,tag:F8cKfaYoDdON2g8efApINQ==,type:str]";
        let num = "ENC[AES256_GCM,data:Jwg=,iv:5x/czFjXWePZd0BExUdx2g8vogK6nCQWe41cWN0M3iY=,tag:BvfV1whIo8NjMJ6HjMkKdg==,type:int]";
        let enc = parse(hello).unwrap().unwrap();
        assert_eq!(enc.kind, "str");
        assert_eq!(open(&key(), &enc, b"hello:").unwrap().as_slice(), b"world");
        assert!(
            open(&key(), &enc, b"other:").is_none(),
            "the key path is authenticated"
        );
        let enc = parse(num).unwrap().unwrap();
        assert_eq!(open(&key(), &enc, b"num:").unwrap().as_slice(), b"42");
        // Re-sealing with the same IV reproduces sops' bytes exactly.
        let iv: [u8; 32] = B64
            .decode("vxoFqL5Fl2/aQiDeUjIURhlqROtiR9c5nXZNEi/f8eI=")
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(
            seal_with_iv(&key(), b"world", b"hello:", "str", &iv).unwrap(),
            hello
        );
    }

    #[test]
    fn rejects_malformed() {
        assert!(parse("plain").unwrap().is_none());
        assert!(parse("ENC[AES256_GCM,data:AA==,iv:AA==,tag:AA==,type:str]").is_err());
        assert!(parse("ENC[AES256_GCM,data:!!,iv:AA==,tag:AA==,type:str]").is_err());
        assert!(parse("ENC[AES256_GCM,data:AA==,iv:AA==,type:str]")
            .unwrap()
            .is_none());
    }
}
