//! `openssl-dhparam`: Diffie-Hellman parameters for TLS servers.
//!
//! The original ran `openssl dhparam 2048`, generating a fresh safe prime
//! (minutes on a Pi). rumor writes the RFC 7919 `ffdhe2048` group instead:
//! a published, audited safe prime that TLS 1.3 and current OpenSSL use by
//! name, so nothing is lost and no prime search is needed. The bytes match
//! `openssl genpkey -genparam -algorithm DH -pkeyopt group:ffdhe2048`.

use super::{Arg, Args, Context, GenError, Generator, Output};

/// Writes the ffdhe2048 group as `BEGIN DH PARAMETERS` PEM.
pub(crate) struct Dhparam;

/// The ffdhe2048 prime p, from RFC 7919 Appendix A.1; its generator is 2.
const FFDHE2048_P: &str = concat!(
    "FFFFFFFFFFFFFFFFADF85458A2BB4A9AAFDC5620273D3CF1D8B9C583CE2D3695",
    "A9E13641146433FBCC939DCE249B3EF97D2FE363630C75D8F681B202AEC4617A",
    "D3DF1ED5D5FD65612433F51F5F066ED0856365553DED1AF3B557135E7F57C935",
    "984F0C70E0E68B77E2A689DAF3EFE8721DF158A136ADE73530ACCA4F483A797A",
    "BC0AB182B324FB61D108A94BB2C8E3FBB96ADAB760D7F4681D4F42A3DE394DF4",
    "AE56EDE76372BB190B07A7C8EE0A6D709E02FCE1CDF7E2ECC03404CD28342F61",
    "9172FE9CE98583FF8E4F1232EEF28183C3FE3B1B4C6FAD733BB5FCBC2EC22005",
    "C58EF1837D1683B2C6F34A26C1B2EFFA886B423861285C97FFFFFFFFFFFFFFFF",
);

/// The PEM text: DER `DHParameter ::= SEQUENCE { INTEGER p, INTEGER g }`
/// (PKCS #3), without the optional privateValueLength, as OpenSSL 3 writes
/// named groups.
pub(crate) fn ffdhe2048_pem() -> Result<String, GenError> {
    let p = hex::decode(FFDHE2048_P)
        .map_err(|_| GenError::Failed("the built-in ffdhe2048 prime is not hex".into()))?;
    let mut p_int = vec![0x02, 0x82, 0x01, 0x01, 0x00];
    p_int.extend_from_slice(&p);
    let g_int = [0x02, 0x01, 0x02];
    let len = p_int.len() + g_int.len();
    let mut der = vec![0x30, 0x82, (len >> 8) as u8, len as u8];
    der.extend_from_slice(&p_int);
    der.extend_from_slice(&g_int);
    Ok(pem::encode_config(
        &pem::Pem::new("DH PARAMETERS", der),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    ))
}

// Public parameters, but the original chmods the file 600.
const ARGS: &[Arg] = &[Arg::private("name", "the PEM file")];

impl Generator for Dhparam {
    fn doc(&self) -> &'static str {
        "BEGIN DH PARAMETERS for the RFC 7919 ffdhe2048 group"
    }

    fn args(&self) -> &'static [Arg] {
        ARGS
    }

    fn generate(&self, args: &Args, _cx: &mut Context) -> Result<Vec<Output>, GenError> {
        // Public parameters, but the original chmods the file 600.
        Ok(vec![Output::private(args.name("name")?, ffdhe2048_pem()?)])
    }
}
