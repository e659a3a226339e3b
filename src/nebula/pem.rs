//! PEM as nebula-cert writes it: one block, no headers, base64 in lines of
//! 64 characters, LF endings.
//!
//! Written by hand rather than with the `pem` crate because that crate ends
//! lines with CRLF by default, and key bodies must stay in zeroizing buffers.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use zeroize::Zeroizing;

use super::NebulaError;

/// The certificate banner.
pub const CERTIFICATE: &str = "NEBULA CERTIFICATE";
/// The CA key banner: 32-byte seed then 32-byte public key.
pub const ED25519_PRIVATE: &str = "NEBULA ED25519 PRIVATE KEY";
/// The host key banner: 32 random bytes.
pub const X25519_PRIVATE: &str = "NEBULA X25519 PRIVATE KEY";
/// The host public key banner.
pub const X25519_PUBLIC: &str = "NEBULA X25519 PUBLIC KEY";

/// Encodes `body` under `banner`, into a buffer that is wiped on drop.
pub fn encode(banner: &str, body: &[u8]) -> Zeroizing<String> {
    let b64 = Zeroizing::new(STANDARD.encode(body));
    // Sized up front so the buffer never reallocates and leaves copies.
    let mut out = Zeroizing::new(String::with_capacity(
        b64.len() + b64.len() / 64 + 2 * banner.len() + 40,
    ));
    out.push_str("-----BEGIN ");
    out.push_str(banner);
    out.push_str("-----\n");
    for line in b64.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(banner);
    out.push_str("-----\n");
    out
}

/// Decodes the one PEM block in `text`, which must carry `banner`.
pub fn decode(banner: &'static str, text: &str) -> Result<Zeroizing<Vec<u8>>, NebulaError> {
    let err = |reason| NebulaError::Pem { banner, reason };
    let mut lines = text.trim().lines().map(str::trim);
    let begin = lines.next().ok_or_else(|| err("the text is empty"))?;
    let Some(found) = begin
        .strip_prefix("-----BEGIN ")
        .and_then(|s| s.strip_suffix("-----"))
    else {
        return Err(err("the first line is not a -----BEGIN …----- line"));
    };
    if found != banner {
        return Err(err("the block has another banner"));
    }
    let end = format!("-----END {banner}-----");
    let mut b64 = Zeroizing::new(String::with_capacity(text.len()));
    let mut ended = false;
    for line in lines {
        if ended {
            return Err(err("there is more text after the END line"));
        }
        if line == end {
            ended = true;
        } else if line.starts_with("-----") || line.contains(':') {
            return Err(err("the block has headers or a mismatched END line"));
        } else {
            b64.push_str(line);
        }
    }
    if !ended {
        return Err(err("the END line is missing"));
    }
    let mut body = Zeroizing::new(Vec::with_capacity(b64.len()));
    STANDARD
        .decode_vec(b64.as_bytes(), &mut body)
        .map_err(|_| err("the body is not valid base64"))?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_64() {
        let pem = encode(CERTIFICATE, &[7u8; 100]);
        let lines: Vec<_> = pem.lines().collect();
        assert_eq!(lines[0], "-----BEGIN NEBULA CERTIFICATE-----");
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines[3], "BwcHBw==");
        assert_eq!(lines[4], "-----END NEBULA CERTIFICATE-----");
        assert!(pem.ends_with("-----\n") && !pem.contains('\r'));
        assert_eq!(&*decode(CERTIFICATE, &pem).unwrap(), &[7u8; 100]);
    }

    #[test]
    fn rejects() {
        let pem = encode(CERTIFICATE, &[1, 2, 3]);
        assert!(decode(X25519_PRIVATE, &pem).is_err());
        assert!(decode(CERTIFICATE, "").is_err());
        assert!(decode(CERTIFICATE, &pem.replace("END", "EN")).is_err());
        assert!(decode(CERTIFICATE, &format!("{}{}", *pem, *pem)).is_err());
        assert!(decode(CERTIFICATE, &pem.replace("AQID", "AQI*")).is_err());
        assert!(decode(CERTIFICATE, &pem.replace("\n", "\r\n")).is_ok());
    }
}
