//! Private keys for certificates: made here (P-256, Ed25519, RSA) or read
//! from PEM, and always held so the secret bytes are wiped on drop.

use rand_core::CryptoRngCore;
use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256};
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::pkcs8::EncodePrivateKey;
use zeroize::Zeroizing;

use super::der;
use super::X509Error;

/// Which kind of key to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyType {
    /// ECDSA on P-256 with SHA-256, what `openssl genpkey -algorithm EC` made.
    P256,
    /// Ed25519.
    Ed25519,
    /// RSA with SHA-256 signatures, of this many bits.
    Rsa {
        /// The modulus size, 2048 or more.
        bits: usize,
    },
}

/// A private key usable for signing. No `Debug`: it holds the secret.
pub(crate) struct PrivateKey {
    pair: KeyPair,
    pkcs8_pem: Zeroizing<String>,
    pkcs1_pem: Option<Zeroizing<String>>,
}

fn key_error(reason: impl Into<String>) -> X509Error {
    X509Error::Key {
        reason: reason.into(),
    }
}

impl PrivateKey {
    /// Makes a new key. P-256 keys come from ring's generator (the OS RNG,
    /// which is what `rng` is outside tests); the others from `rng`.
    pub(crate) fn generate(
        kind: KeyType,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<PrivateKey, X509Error> {
        match kind {
            KeyType::P256 => {
                let pair = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
                    .map_err(|e| key_error(e.to_string()))?;
                Ok(PrivateKey {
                    pkcs8_pem: Zeroizing::new(pair.serialize_pem()),
                    pair,
                    pkcs1_pem: None,
                })
            }
            KeyType::Ed25519 => {
                use ed25519_dalek::pkcs8::{EncodePrivateKey as _, KeypairBytes};
                let signing = ed25519_dalek::SigningKey::generate(&mut &mut *rng);
                // PKCS#8 v1 (no public key): OpenSSL 3.0 cannot read the v2
                // form ed25519-dalek writes by default.
                let bytes = KeypairBytes {
                    secret_key: signing.to_bytes(),
                    public_key: None,
                };
                let der = bytes.to_pkcs8_der().map_err(|e| key_error(e.to_string()))?;
                PrivateKey::from_pkcs8_der(der.as_bytes())
            }
            KeyType::Rsa { bits } => {
                let key = rsa::RsaPrivateKey::new(&mut &mut *rng, bits)
                    .map_err(|e| key_error(e.to_string()))?;
                PrivateKey::from_rsa(&key)
            }
        }
    }

    fn from_rsa(key: &rsa::RsaPrivateKey) -> Result<PrivateKey, X509Error> {
        let der = key.to_pkcs8_der().map_err(|e| key_error(e.to_string()))?;
        let pair = KeyPair::from_pkcs8_der_and_sign_algo(&der.as_bytes().into(), &PKCS_RSA_SHA256)
            .map_err(|e| key_error(e.to_string()))?;
        let pkcs1 = key
            .to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
            .map_err(|e| key_error(e.to_string()))?;
        Ok(PrivateKey {
            pkcs8_pem: Zeroizing::new(pair.serialize_pem()),
            pair,
            pkcs1_pem: Some(Zeroizing::new(pkcs1.to_string())),
        })
    }

    fn from_pkcs8_der(der: &[u8]) -> Result<PrivateKey, X509Error> {
        let pair = KeyPair::try_from(der)
            .map_err(|_| key_error("is not a P-256, Ed25519 or RSA private key"))?;
        Ok(PrivateKey {
            pkcs8_pem: Zeroizing::new(pair.serialize_pem()),
            pair,
            pkcs1_pem: None,
        })
    }

    /// Reads a PEM key: PKCS#8 (`PRIVATE KEY`), PKCS#1 (`RSA PRIVATE KEY`,
    /// as cockroach writes) or SEC1 P-256 (`EC PRIVATE KEY`, older openssl).
    pub(crate) fn from_pem(text: &str) -> Result<PrivateKey, X509Error> {
        let block = pem::parse(text).map_err(|_| key_error("is not a PEM private key"))?;
        let contents = Zeroizing::new(block.contents().to_vec());
        match block.tag() {
            "PRIVATE KEY" => PrivateKey::from_pkcs8_der(&contents),
            "RSA PRIVATE KEY" => {
                let key = rsa::RsaPrivateKey::from_pkcs1_der(&contents)
                    .map_err(|_| key_error("is not a valid PKCS#1 RSA key"))?;
                PrivateKey::from_rsa(&key)
            }
            "EC PRIVATE KEY" => {
                // PKCS#8 is SEC1 wrapped with the algorithm: ecPublicKey, prime256v1.
                let wrapped = Zeroizing::new(der::sequence(&[
                    der::unsigned(&[0]),
                    der::sequence(&[
                        der::oid(&[1, 2, 840, 10045, 2, 1]),
                        der::oid(&[1, 2, 840, 10045, 3, 1, 7]),
                    ]),
                    der::tlv(der::tag::OCTET_STRING, &contents),
                ]));
                PrivateKey::from_pkcs8_der(&wrapped).map_err(|_| key_error("is not a P-256 EC key"))
            }
            other => Err(key_error(format!(
                "is a PEM \"{other}\" block, not a private key"
            ))),
        }
    }

    /// The key as PKCS#8 PEM (`BEGIN PRIVATE KEY`), as `openssl genpkey` writes.
    pub(crate) fn pkcs8_pem(&self) -> &Zeroizing<String> {
        &self.pkcs8_pem
    }

    /// The key as PKCS#1 PEM (`BEGIN RSA PRIVATE KEY`), for RSA keys.
    pub(crate) fn pkcs1_pem(&self) -> Option<&Zeroizing<String>> {
        self.pkcs1_pem.as_ref()
    }

    /// The DER SubjectPublicKeyInfo.
    pub(crate) fn public_key_der(&self) -> Vec<u8> {
        self.pair.public_key_der()
    }

    pub(crate) fn pair(&self) -> &KeyPair {
        &self.pair
    }
}
