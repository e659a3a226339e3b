//! Making certificates the way `nebula-cert ca` and `nebula-cert sign` do,
//! with the same defaults and refusals.

use rand_core::{CryptoRng, RngCore};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use super::keys::{CaKey, HostKey};
use super::net::Ipv4Net;
use super::{Certificate, Details, NebulaError};

/// What a new CA should say.
#[derive(Clone, Debug)]
pub struct CaSpec {
    /// The CA's name.
    pub name: String,
    /// How long it is valid from now (nebula-cert's default is a year).
    pub duration: Duration,
    /// Networks hosts may be given addresses in (empty: any).
    pub ips: Vec<Ipv4Net>,
    /// Subnets hosts may route for (empty: any).
    pub subnets: Vec<Ipv4Net>,
    /// Groups hosts may be in (empty: any).
    pub groups: Vec<String>,
}

/// What a new host certificate should say.
#[derive(Clone, Debug)]
pub struct HostSpec {
    /// The host's name.
    pub name: String,
    /// Its overlay address and prefix; the host bits are kept.
    pub ip: Ipv4Net,
    /// Its firewall groups.
    pub groups: Vec<String>,
    /// Networks it routes for.
    pub subnets: Vec<Ipv4Net>,
}

/// nebula-cert splits on commas, trims and drops empty names.
fn clean_groups(groups: &[String]) -> Vec<String> {
    groups
        .iter()
        .map(|g| g.trim())
        .filter(|g| !g.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Refuses names and groups that would read as something else in
/// `nebula-cert print` and in firewall rules ([`crate::names`]).
fn check_names(name: &str, groups: &[String]) -> Result<(), NebulaError> {
    let bad = |field, value: &str, why| NebulaError::BadName {
        field,
        value: value.escape_debug().to_string(),
        why,
    };
    crate::names::check(name).map_err(|why| bad("name", name, why))?;
    for group in groups {
        crate::names::check(group).map_err(|why| bad("group", group, why))?;
    }
    Ok(())
}

fn masked(nets: &[Ipv4Net]) -> Vec<Ipv4Net> {
    nets.iter().map(Ipv4Net::network).collect()
}

/// A new self-signed CA valid from `now`: (certificate PEM, key PEM).
pub fn new_ca<R: RngCore + CryptoRng + ?Sized>(
    spec: &CaSpec,
    now: OffsetDateTime,
    rng: &mut R,
) -> Result<(String, Zeroizing<String>), NebulaError> {
    check_names(&spec.name, &spec.groups)?;
    let end = now
        .checked_add(spec.duration)
        .filter(|end| *end > now)
        .ok_or(NebulaError::TimeRange { what: "CA expiry" })?;
    let key = CaKey::generate(rng);
    let details = Details {
        name: spec.name.clone(),
        ips: masked(&spec.ips),
        subnets: masked(&spec.subnets),
        groups: clean_groups(&spec.groups),
        not_before: now.unix_timestamp(),
        not_after: end.unix_timestamp(),
        public_key: key.public(),
        is_ca: true,
        issuer: None,
    };
    let signature = key.sign(&details.to_bytes());
    Ok((Certificate { details, signature }.to_pem(), key.to_pem()))
}

/// Signs a host certificate with a CA given as PEM text: (certificate PEM,
/// key PEM). See [`issue_host`].
pub fn sign_host<R: RngCore + CryptoRng + ?Sized>(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    spec: &HostSpec,
    now: OffsetDateTime,
    rng: &mut R,
) -> Result<(String, Zeroizing<String>), NebulaError> {
    let ca = Certificate::from_pem(ca_cert_pem)?;
    let ca_key = CaKey::from_pem(ca_key_pem)?;
    issue_host(&ca, &ca_key, spec, now, rng)
}

/// Signs a host certificate for a new X25519 key, valid from `now` until a
/// second before the CA expires. Refuses what nebula-cert refuses: a key
/// that is not the CA's, a CA that is not valid now, and a certificate
/// breaking the CA's limits on IPs, subnets and groups.
pub(crate) fn issue_host<R: RngCore + CryptoRng + ?Sized>(
    ca: &Certificate,
    ca_key: &CaKey,
    spec: &HostSpec,
    now: OffsetDateTime,
    rng: &mut R,
) -> Result<(String, Zeroizing<String>), NebulaError> {
    if ca_key.public() != ca.details.public_key {
        return Err(NebulaError::KeyMismatch {
            ca: ca.details.name.clone(),
        });
    }
    ca.check_ca(now)?;
    check_names(&spec.name, &spec.groups)?;
    let key = HostKey::generate(rng);
    let details = Details {
        name: spec.name.clone(),
        ips: vec![spec.ip],
        subnets: masked(&spec.subnets),
        groups: clean_groups(&spec.groups),
        not_before: now.unix_timestamp(),
        not_after: ca.details.not_after - 1,
        public_key: key.public(),
        is_ca: false,
        issuer: Some(ca.fingerprint()),
    };
    let mut cert = Certificate {
        details,
        signature: [0; 64],
    };
    cert.check_constraints(ca)?;
    cert.signature = ca_key.sign(&cert.details.to_bytes());
    Ok((cert.to_pem(), key.to_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca_spec() -> CaSpec {
        CaSpec {
            name: "c".into(),
            duration: Duration::days(365),
            ips: vec!["10.8.1.1/16".parse().unwrap()],
            subnets: vec![],
            groups: vec![" ops".into(), "".into(), "web".into()],
        }
    }

    #[test]
    fn ca_then_host_verifies() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let (ca_pem, key_pem) = new_ca(&ca_spec(), now, &mut rand::rngs::OsRng).unwrap();
        let ca = Certificate::from_pem(&ca_pem).unwrap();
        assert_eq!(ca.details.groups, ["ops", "web"]);
        assert_eq!(ca.details.ips[0].to_string(), "10.8.0.0/16");
        let spec = HostSpec {
            name: "h".into(),
            ip: "10.8.3.4/24".parse().unwrap(),
            groups: vec!["ops".into()],
            subnets: vec![],
        };
        let (crt, key) = sign_host(&ca_pem, &key_pem, &spec, now, &mut rand::rngs::OsRng).unwrap();
        let host = Certificate::from_pem(&crt).unwrap();
        host.verify(&ca, now).unwrap();
        assert_eq!(host.details.not_after, ca.details.not_after - 1);
        assert_eq!(
            HostKey::from_pem(&key).unwrap().public(),
            host.details.public_key
        );
        let later = now + Duration::days(366);
        assert!(matches!(
            host.verify(&ca, later),
            Err(NebulaError::CaExpired { .. })
        ));
        assert!(matches!(
            sign_host(&ca_pem, &key_pem, &spec, later, &mut rand::rngs::OsRng),
            Err(NebulaError::CaExpired { .. })
        ));
    }

    #[test]
    fn refusals() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let (ca_pem, key_pem) = new_ca(&ca_spec(), now, &mut rand::rngs::OsRng).unwrap();
        let (_, other_key) = new_ca(&ca_spec(), now, &mut rand::rngs::OsRng).unwrap();
        let spec = HostSpec {
            name: "h".into(),
            ip: "10.9.0.1/24".parse().unwrap(),
            groups: vec![],
            subnets: vec![],
        };
        let err = sign_host(&ca_pem, &key_pem, &spec, now, &mut rand::rngs::OsRng).unwrap_err();
        assert!(
            err.to_string().contains("10.9.0.1/24") && err.to_string().contains("10.8.0.0/16"),
            "{err}"
        );
        let spec = HostSpec {
            ip: "10.8.0.1/24".parse().unwrap(),
            groups: vec!["db".into()],
            ..spec
        };
        let err = sign_host(&ca_pem, &key_pem, &spec, now, &mut rand::rngs::OsRng).unwrap_err();
        assert!(matches!(err, NebulaError::GroupNotInCa { .. }), "{err}");
        let err = sign_host(&ca_pem, &other_key, &spec, now, &mut rand::rngs::OsRng).unwrap_err();
        assert!(matches!(err, NebulaError::KeyMismatch { .. }), "{err}");
        let zero = CaSpec {
            duration: Duration::ZERO,
            ..ca_spec()
        };
        assert!(new_ca(&zero, now, &mut rand::rngs::OsRng).is_err());
    }

    #[test]
    fn control_and_bidi_characters_are_refused_in_names_and_groups() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let bad_ca = CaSpec {
            name: "fleet\u{202e}".into(),
            ..ca_spec()
        };
        let err = new_ca(&bad_ca, now, &mut rand::rngs::OsRng).unwrap_err();
        assert_eq!(err.to_string(), "name \"fleet\\u{202e}\" contains a Unicode bidirectional control character, which makes text display differently from what it is");
        let bad_group = CaSpec {
            groups: vec!["ops\0".into()],
            ..ca_spec()
        };
        assert!(matches!(
            new_ca(&bad_group, now, &mut rand::rngs::OsRng),
            Err(NebulaError::BadName { field: "group", .. })
        ));
        let (ca_pem, key_pem) = new_ca(&ca_spec(), now, &mut rand::rngs::OsRng).unwrap();
        for (name, group) in [("h\nx", "ops"), ("h", "web\u{2066}")] {
            let spec = HostSpec {
                name: name.into(),
                ip: "10.8.3.4/24".parse().unwrap(),
                groups: vec![group.into()],
                subnets: vec![],
            };
            let err = sign_host(&ca_pem, &key_pem, &spec, now, &mut rand::rngs::OsRng).unwrap_err();
            assert!(matches!(err, NebulaError::BadName { .. }), "{err}");
            assert!(!err.to_string().contains('\n'), "{err}");
        }
    }
}
