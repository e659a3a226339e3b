//! Any bytes as a Nebula certificate, raw and as PEM: an error or a
//! certificate that survives a round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rumor::nebula::Certificate;

fuzz_target!(|data: &[u8]| {
    if let Ok(cert) = Certificate::from_bytes(data) {
        let _ = (cert.fingerprint_hex(), cert.expires_at(), cert.valid_from(), cert.check_ca(cert.valid_from()));
        let again = Certificate::from_pem(&cert.to_pem()).expect("a parsed certificate re-reads from its PEM");
        assert_eq!(again.to_bytes(), cert.to_bytes());
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(cert) = Certificate::from_pem(text) {
            let _ = cert.verify(&cert, cert.valid_from());
        }
    }
});
