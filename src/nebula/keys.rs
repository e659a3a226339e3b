//! Nebula keys: Ed25519 for CAs (they sign), X25519 for hosts (they do
//! Diffie-Hellman in the Noise handshake). Neither type has `Debug`, and
//! both wipe their secret bytes on drop.

use ed25519_dalek::{Signer, SigningKey};
use rand_core::{CryptoRng, RngCore};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use super::{pem, NebulaError};

/// A CA's Ed25519 signing key.
pub struct CaKey {
    key: SigningKey,
}

impl CaKey {
    /// A new key from `rng`.
    pub fn generate<R: RngCore + CryptoRng + ?Sized>(rng: &mut R) -> CaKey {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        CaKey {
            key: SigningKey::from_bytes(&seed),
        }
    }

    /// Reads a `NEBULA ED25519 PRIVATE KEY` block (seed then public key).
    pub fn from_pem(text: &str) -> Result<CaKey, NebulaError> {
        let body = pem::decode(pem::ED25519_PRIVATE, text)?;
        let bytes: &[u8; 64] = body
            .as_slice()
            .try_into()
            .map_err(|_| NebulaError::KeyLength {
                banner: pem::ED25519_PRIVATE,
                expected: 64,
                found: body.len(),
            })?;
        // nebula only compares the stored public half with the certificate;
        // checking it against the seed too catches a key file spliced from two.
        let key =
            SigningKey::from_keypair_bytes(bytes).map_err(|_| NebulaError::KeyInconsistent)?;
        Ok(CaKey { key })
    }

    /// The `NEBULA ED25519 PRIVATE KEY` block.
    pub fn to_pem(&self) -> Zeroizing<String> {
        let bytes = Zeroizing::new(self.key.to_keypair_bytes());
        pem::encode(pem::ED25519_PRIVATE, bytes.as_slice())
    }

    /// The public key, as a CA certificate carries it.
    pub fn public(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// A pure Ed25519 signature over `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }
}

/// A host's X25519 key.
pub struct HostKey {
    secret: StaticSecret,
}

impl HostKey {
    /// A new key: 32 bytes from `rng`, stored unclamped as nebula-cert does.
    pub fn generate<R: RngCore + CryptoRng + ?Sized>(rng: &mut R) -> HostKey {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(bytes.as_mut());
        HostKey {
            secret: StaticSecret::from(*bytes),
        }
    }

    /// Reads a `NEBULA X25519 PRIVATE KEY` block.
    pub fn from_pem(text: &str) -> Result<HostKey, NebulaError> {
        let body = pem::decode(pem::X25519_PRIVATE, text)?;
        let bytes: Zeroizing<[u8; 32]> = Zeroizing::new(body.as_slice().try_into().map_err(
            |_| NebulaError::KeyLength {
                banner: pem::X25519_PRIVATE,
                expected: 32,
                found: body.len(),
            },
        )?);
        Ok(HostKey {
            secret: StaticSecret::from(*bytes),
        })
    }

    /// The `NEBULA X25519 PRIVATE KEY` block.
    pub fn to_pem(&self) -> Zeroizing<String> {
        pem::encode(pem::X25519_PRIVATE, self.secret.as_bytes())
    }

    /// The public key: X25519(private, basepoint).
    pub fn public(&self) -> [u8; 32] {
        PublicKey::from(&self.secret).to_bytes()
    }

    /// The `NEBULA X25519 PUBLIC KEY` block (what `nebula-cert keygen`
    /// writes beside the private key).
    pub fn public_pem(&self) -> String {
        pem::encode(pem::X25519_PUBLIC, &self.public()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut rng = rand::rngs::OsRng;
        let ca = CaKey::generate(&mut rng);
        let again = CaKey::from_pem(&ca.to_pem()).unwrap();
        assert_eq!(again.public(), ca.public());
        let host = HostKey::generate(&mut rng);
        let again = HostKey::from_pem(&host.to_pem()).unwrap();
        assert_eq!(again.public(), host.public());
        assert!(host
            .public_pem()
            .starts_with("-----BEGIN NEBULA X25519 PUBLIC KEY-----\n"));
    }

    #[test]
    fn spliced_ca_key_is_refused() {
        let mut rng = rand::rngs::OsRng;
        let (a, b) = (CaKey::generate(&mut rng), CaKey::generate(&mut rng));
        let mut bytes = a.key.to_keypair_bytes().to_vec();
        bytes[32..].copy_from_slice(&b.public());
        let text = pem::encode(pem::ED25519_PRIVATE, &bytes);
        assert!(matches!(
            CaKey::from_pem(&text),
            Err(NebulaError::KeyInconsistent)
        ));
        let short = pem::encode(pem::ED25519_PRIVATE, &bytes[..32]);
        assert!(matches!(
            CaKey::from_pem(&short),
            Err(NebulaError::KeyLength { found: 32, .. })
        ));
    }
}
