//! Wi-Fi credentials.
//!
//! - `wpa-psk` (ssid, passphrase, name): the 64-hex-digit pre-shared key
//!   `wpa_passphrase` prints, PBKDF2-HMAC-SHA1(passphrase, ssid, 4096, 32)
//!   as IEEE 802.11i fixes it. Devices store the PSK rather than the
//!   passphrase, so a leaked device config does not reveal the passphrase
//!   shared with other networks.
//! - `wps-pin` (name): an 8-digit WPS PIN, seven random digits and the WPS
//!   checksum digit.

use sha1::Sha1;
use zeroize::Zeroizing;

use super::random::string;
use super::{Arg, ArgError, Args, Context, GenError, Generator, Output, Role, Type};
use crate::workspace::check_name;

/// The `wpa-psk` generator.
pub struct WpaPsk;

/// The `wps-pin` generator.
pub struct WpsPin;

const PSK_ITERATIONS: u32 = 4096;

/// The PSK for `passphrase` on the network `ssid`, as lowercase hex. The
/// caller has checked both with [`check_passphrase`] and [`check_ssid`].
pub fn wpa_psk(ssid: &[u8], passphrase: &[u8]) -> Zeroizing<String> {
    let mut psk = Zeroizing::new([0u8; 32]);
    super::kdf::limited(|| {
        pbkdf2::pbkdf2_hmac::<Sha1>(passphrase, ssid, PSK_ITERATIONS, &mut *psk)
    });
    Zeroizing::new(hex::encode(psk.as_slice()))
}

/// WPA2-Personal passphrases are 8 to 63 printable ASCII characters; the
/// reason never quotes the passphrase.
pub fn check_passphrase(passphrase: &str) -> Result<(), String> {
    if !(8..=63).contains(&passphrase.len()) {
        return Err(format!(
            "is {} bytes long; a WPA passphrase has 8 to 63 characters",
            passphrase.len()
        ));
    }
    if !passphrase.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return Err(
            "holds a character that is not printable ASCII, which WPA passphrases must be".into(),
        );
    }
    Ok(())
}

/// SSIDs are 1 to 32 bytes.
pub fn check_ssid(ssid: &str) -> Result<(), String> {
    if ssid.is_empty() || ssid.len() > 32 {
        return Err(format!(
            "is {} bytes long; an SSID has 1 to 32 bytes",
            ssid.len()
        ));
    }
    Ok(())
}

/// A value read from a file without its line ending; spaces at either end
/// are legal in SSIDs and passphrases, so nothing else is trimmed.
fn without_newline(text: &str) -> &str {
    text.strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(text)
}

// Not derived: PBKDF2 with 4096 rounds is worth keeping in the store
// rather than re-deriving on every device run; a rotated passphrase or a
// renamed SSID remakes it through the sources.
const PSK_ARGS: &[Arg] = &[
    Arg::input("passphrase", "the file holding the passphrase").role(Role::Source),
    Arg::value(
        "ssid",
        Type::Str,
        "the network name, or a workspace file holding it",
    )
    .role(Role::Source),
    Arg::private("name", "the PSK file"),
];

const PIN_ARGS: &[Arg] = &[Arg::private("name", "the PIN file")];

impl Generator for WpaPsk {
    fn doc(&self) -> &'static str {
        "the 64-hex-digit PSK wpa_passphrase derives"
    }

    fn args(&self) -> &'static [Arg] {
        PSK_ARGS
    }

    fn generate(&self, args: &Args, cx: &mut Context) -> Result<Vec<Output>, GenError> {
        let ssid_arg = args.str("ssid")?;
        let ssid = match check_name(ssid_arg)
            .ok()
            .and_then(|()| cx.workspace.text(ssid_arg))
        {
            Some(text) => without_newline(text),
            None => ssid_arg,
        };
        check_ssid(ssid).map_err(|why| ArgError::Invalid {
            arg: "ssid".into(),
            why,
        })?;
        let passphrase_name = args.name("passphrase")?;
        let passphrase = without_newline(cx.input_text(args, "passphrase")?);
        check_passphrase(passphrase).map_err(|reason| GenError::BadInput {
            arg: "passphrase",
            file: passphrase_name.to_owned(),
            reason,
        })?;
        let psk = wpa_psk(ssid.as_bytes(), passphrase.as_bytes());
        Ok(vec![Output::private(args.name("name")?, psk.as_bytes())])
    }
}

/// The WPS checksum digit of a 7-digit number (Wi-Fi Simple Configuration,
/// section 7.4.1): digits weighted 3,1,3,1,… from the left, then the digit
/// that brings the sum to a multiple of ten.
fn checksum_digit(digits: &[u8]) -> u8 {
    let sum: u32 = digits
        .iter()
        .enumerate()
        .map(|(i, d)| u32::from(d - b'0') * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

/// Whether `pin` is eight ASCII digits whose last is the WPS checksum.
pub fn wps_checksum_valid(pin: &str) -> bool {
    let bytes = pin.as_bytes();
    bytes.len() == 8
        && bytes.iter().all(u8::is_ascii_digit)
        && bytes[7] - b'0' == checksum_digit(&bytes[..7])
}

impl Generator for WpsPin {
    fn doc(&self) -> &'static str {
        "an 8-digit WPS PIN: 7 random digits and the checksum digit"
    }

    fn args(&self) -> &'static [Arg] {
        PIN_ARGS
    }

    fn generate(&self, args: &Args, cx: &mut Context) -> Result<Vec<Output>, GenError> {
        let mut pin = string(cx.rng, b"0123456789", 7);
        let check = checksum_digit(&pin);
        pin.push(b'0' + check);
        Ok(vec![Output::secret(args.name("name")?, pin)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wps_vectors() {
        assert!(wps_checksum_valid("12345670"));
        assert!(!wps_checksum_valid("12345678"));
        assert!(!wps_checksum_valid("1234567"));
        assert!(!wps_checksum_valid("1234567a"));
        assert!(!wps_checksum_valid("１２３４５６７０"));
        assert!(wps_checksum_valid("00000000"));
    }

    #[test]
    fn ieee_802_11i_vector() {
        // IEEE 802.11i-2004 annex H.4.1, test case 1.
        assert_eq!(
            wpa_psk(b"IEEE", b"password").as_str(),
            "f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e"
        );
    }

    #[test]
    fn checks() {
        assert!(check_passphrase("1234567").is_err());
        assert!(check_passphrase(&"x".repeat(64)).is_err());
        assert!(check_passphrase("pässword").is_err());
        assert!(check_passphrase("pass word ~").is_ok());
        assert!(check_ssid("").is_err());
        assert!(check_ssid(&"x".repeat(33)).is_err());
        assert_eq!(without_newline("a \r\n"), "a ");
    }
}
