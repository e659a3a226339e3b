//! The two libxcrypt calls rumor needs, bound by hand.
//!
//! The device checks a login against its hash with libxcrypt, and
//! `mkpasswd` makes hashes with it, so hashing with the same library keeps
//! the output identical by construction, and its yescrypt is about twice as
//! fast as the RustCrypto crate. The binding is written out here rather than
//! taken from the `xcrypt` crate, whose `-sys` crate runs bindgen and so
//! needs libclang at build time; these two declarations need only
//! libcrypt's headers and `libcrypt.so` (Debian `libcrypt-dev`, Nix
//! `libxcrypt`). This is the crate's only `unsafe` code.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_ulong, c_void, CStr};
use std::io;

use zeroize::Zeroizing;

/// `CRYPT_MAX_PASSPHRASE_SIZE` less its NUL: libxcrypt refuses longer
/// passphrases, so neither rumor nor the device's login can hash them.
pub(super) const MAX_PASSPHRASE: usize = 511;

/// `CRYPT_GENSALT_OUTPUT_SIZE`.
const GENSALT_OUTPUT_SIZE: usize = 192;

/// `sizeof(struct crypt_data)`, the least `crypt_rn` accepts.
const DATA_SIZE: usize = 32768;

#[link(name = "crypt")]
extern "C" {
    fn crypt_rn(
        phrase: *const c_char,
        setting: *const c_char,
        data: *mut c_void,
        size: c_int,
    ) -> *mut c_char;
    fn crypt_gensalt_rn(
        prefix: *const c_char,
        count: c_ulong,
        rbytes: *const c_char,
        nrbytes: c_int,
        output: *mut c_char,
        output_size: c_int,
    ) -> *mut c_char;
}

/// Why libxcrypt refused. Carries the call and its errno, never an input.
#[derive(Debug, thiserror::Error)]
#[error("{call} failed: {why}")]
pub(crate) struct CryptError {
    call: &'static str,
    why: io::Error,
}

impl CryptError {
    fn new(call: &'static str, why: io::Error) -> CryptError {
        CryptError { call, why }
    }

    fn invalid(call: &'static str, why: &str) -> CryptError {
        CryptError::new(call, io::Error::new(io::ErrorKind::InvalidInput, why))
    }
}

/// A setting string for `prefix` (e.g. `$y$`) at cost `count` (0: the
/// library's default) and salted with `rbytes`, which the caller draws from
/// its RNG so tests can pin it.
pub(super) fn gensalt(prefix: &CStr, count: c_ulong, rbytes: &[u8]) -> Result<String, CryptError> {
    const CALL: &str = "crypt_gensalt_rn";
    let nrbytes = c_int::try_from(rbytes.len())
        .map_err(|_| CryptError::invalid(CALL, "too many random bytes"))?;
    let mut output = [0u8; GENSALT_OUTPUT_SIZE];
    // SAFETY: `prefix` is NUL-terminated; `rbytes` is valid for `nrbytes`
    // bytes, which the function reads and does not keep; `output` is
    // writable for the size passed, which is CRYPT_GENSALT_OUTPUT_SIZE as
    // the function requires. All three outlive the call.
    let ret = unsafe {
        crypt_gensalt_rn(
            prefix.as_ptr(),
            count,
            rbytes.as_ptr().cast(),
            nrbytes,
            output.as_mut_ptr().cast(),
            GENSALT_OUTPUT_SIZE as c_int,
        )
    };
    if ret.is_null() {
        return Err(CryptError::new(CALL, io::Error::last_os_error()));
    }
    // On success the setting is in `output`; read it there, so no raw
    // pointer is dereferenced.
    let setting = CStr::from_bytes_until_nul(&output)
        .map_err(|_| CryptError::invalid(CALL, "unterminated setting"))?;
    let setting = setting
        .to_str()
        .map_err(|_| CryptError::invalid(CALL, "setting is not UTF-8"))?;
    Ok(setting.to_owned())
}

/// The crypt(3) hash of `phrase` under `setting` (a hash or a string from
/// [`gensalt`]). The copies of the passphrase handed to the library, and its
/// work area, are zeroed before they are freed.
pub(crate) fn crypt(phrase: &[u8], setting: &str) -> Result<String, CryptError> {
    const CALL: &str = "crypt_rn";
    if phrase.len() > MAX_PASSPHRASE {
        return Err(CryptError::invalid(
            CALL,
            "passphrase longer than 511 bytes",
        ));
    }
    if phrase.contains(&0) || setting.as_bytes().contains(&0) {
        return Err(CryptError::invalid(
            CALL,
            "NUL byte in passphrase or setting",
        ));
    }
    let mut c_phrase = Zeroizing::new(Vec::with_capacity(phrase.len() + 1));
    c_phrase.extend_from_slice(phrase);
    c_phrase.push(0);
    let mut c_setting = Vec::with_capacity(setting.len() + 1);
    c_setting.extend_from_slice(setting.as_bytes());
    c_setting.push(0);
    // Zeroed, as crypt_rn asks of a fresh `struct crypt_data`; it keeps a
    // copy of the passphrase and the hash, hence the zeroizing drop.
    let mut data = Zeroizing::new(vec![0u8; DATA_SIZE]);
    // SAFETY: both strings are NUL-terminated with no interior NUL (checked
    // above); `data` is a writable byte area of DATA_SIZE, at least
    // sizeof(struct crypt_data), whose members are all `char` so any
    // alignment will do. The function keeps none of the pointers.
    let ret = unsafe {
        crypt_rn(
            c_phrase.as_ptr().cast(),
            c_setting.as_ptr().cast(),
            data.as_mut_ptr().cast(),
            DATA_SIZE as c_int,
        )
    };
    if ret.is_null() {
        return Err(CryptError::new(CALL, io::Error::last_os_error()));
    }
    // SAFETY: on success crypt_rn returns a NUL-terminated string inside
    // `data`, which is still alive and unchanged here.
    let hash = unsafe { CStr::from_ptr(ret) };
    let hash = hash
        .to_str()
        .map_err(|_| CryptError::invalid(CALL, "hash is not UTF-8"))?;
    // libxcrypt never returns a '*' hash from crypt_rn, but a '*' string is
    // its failure token elsewhere: never let one through as a hash.
    if hash.starts_with('*') {
        return Err(CryptError::invalid(CALL, "failure token returned"));
    }
    Ok(hash.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gensalt_refuses_an_unknown_prefix() {
        assert!(gensalt(c"$nope$", 0, &[7; 16]).is_err());
    }

    #[test]
    fn gensalt_refuses_too_few_random_bytes() {
        assert!(gensalt(c"$y$", 0, &[7; 2]).is_err());
    }

    #[test]
    fn crypt_refuses_a_bad_setting_and_long_or_nul_passphrases() {
        assert!(crypt(b"secret", "$nope$").is_err());
        assert!(crypt(b"sec\0ret", "$y$j9T$AAAAAAAAAAAAAAAAAAAAAA").is_err());
        assert!(crypt(&[b'a'; MAX_PASSPHRASE + 1], "$y$j9T$AAAAAAAAAAAAAAAAAAAAAA").is_err());
    }

    #[test]
    fn hash_verifies_against_itself() {
        let setting = gensalt(c"$y$", 0, &[7; 16]).unwrap();
        assert!(setting.starts_with("$y$j9T$"), "{setting}");
        let hash = crypt(b"secret", &setting).unwrap();
        assert_eq!(crypt(b"secret", &hash).unwrap(), hash);
        assert_ne!(crypt(b"other", &hash).unwrap(), hash);
    }
}
