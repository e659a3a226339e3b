//! The protobuf bytes of a v1 certificate, written and read by hand.
//!
//! nebula verifies signatures over its *own* re-encoding of the details, so
//! only the canonical encoding is useful: fields ascending, zero values
//! omitted, packed networks, minimal varints. The reader accepts exactly
//! what the writer produces (it re-encodes and compares), which keeps the
//! bytes rumor signs, stores and fingerprints identical to nebula's.

use super::net::Ipv4Net;
use super::{Certificate, Details, NebulaError};

const VARINT: u64 = 0;
const LEN: u64 = 2;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_tag(out: &mut Vec<u8>, field: u64, wire: u64) {
    put_varint(out, field << 3 | wire);
}

fn put_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_tag(out, field, LEN);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_nets(out: &mut Vec<u8>, field: u64, nets: &[Ipv4Net]) {
    if nets.is_empty() {
        return;
    }
    let mut packed = Vec::new();
    for net in nets {
        put_varint(&mut packed, u64::from(u32::from(net.addr())));
        put_varint(&mut packed, u64::from(net.mask()));
    }
    put_bytes(out, field, &packed);
}

fn put_int(out: &mut Vec<u8>, field: u64, v: i64) {
    if v != 0 {
        put_tag(out, field, VARINT);
        // int64 is sent as its two's-complement bits: negatives take 10 bytes.
        put_varint(out, v as u64);
    }
}

/// The canonical `RawNebulaCertificateDetails` bytes: what is signed.
pub(crate) fn encode_details(d: &Details) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    if !d.name.is_empty() {
        put_bytes(&mut out, 1, d.name.as_bytes());
    }
    put_nets(&mut out, 2, &d.ips);
    put_nets(&mut out, 3, &d.subnets);
    for group in &d.groups {
        put_bytes(&mut out, 4, group.as_bytes());
    }
    put_int(&mut out, 5, d.not_before);
    put_int(&mut out, 6, d.not_after);
    put_bytes(&mut out, 7, &d.public_key);
    if d.is_ca {
        put_tag(&mut out, 8, VARINT);
        out.push(1);
    }
    if let Some(issuer) = &d.issuer {
        put_bytes(&mut out, 9, issuer);
    }
    out
}

/// The canonical `RawNebulaCertificate` bytes: the PEM body.
pub(crate) fn encode_certificate(c: &Certificate) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    put_bytes(&mut out, 1, &encode_details(&c.details));
    put_bytes(&mut out, 2, &c.signature);
    out
}

/// A cursor over protobuf bytes that never reads past the end.
struct Reader<'a> {
    rest: &'a [u8],
}

fn malformed(reason: &'static str) -> NebulaError {
    NebulaError::Malformed { reason }
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, NebulaError> {
        let mut v = 0u64;
        for i in 0..10 {
            let (&b, rest) = self
                .rest
                .split_first()
                .ok_or_else(|| malformed("truncated varint"))?;
            self.rest = rest;
            if i == 9 && b > 1 {
                return Err(malformed("varint overflows 64 bits"));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(malformed("varint longer than 10 bytes"))
    }

    fn bytes(&mut self) -> Result<&'a [u8], NebulaError> {
        let len = self.varint()?;
        let len = usize::try_from(len)
            .ok()
            .filter(|&n| n <= self.rest.len())
            .ok_or_else(|| malformed("length runs past the end"))?;
        let (head, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(head)
    }

    /// The next (field, wire type), or None at the end.
    fn tag(&mut self) -> Result<Option<(u64, u64)>, NebulaError> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let tag = self.varint()?;
        Ok(Some((tag >> 3, tag & 7)))
    }
}

fn expect_wire(got: u64, want: u64) -> Result<(), NebulaError> {
    if got == want {
        Ok(())
    } else {
        Err(malformed("field has the wrong wire type"))
    }
}

fn fixed<const N: usize>(bytes: &[u8], field: &'static str) -> Result<[u8; N], NebulaError> {
    bytes.try_into().map_err(|_| NebulaError::FieldLength {
        field,
        expected: N,
        found: bytes.len(),
    })
}

fn nets(bytes: &[u8], field: &'static str) -> Result<Vec<Ipv4Net>, NebulaError> {
    let mut r = Reader { rest: bytes };
    let mut words = Vec::new();
    while !r.rest.is_empty() {
        let w =
            u32::try_from(r.varint()?).map_err(|_| malformed("network value exceeds 32 bits"))?;
        words.push(w);
    }
    if words.len() % 2 != 0 {
        return Err(malformed(
            "networks come in address/mask pairs, an odd number was found",
        ));
    }
    words
        .chunks_exact(2)
        .map(|pair| {
            let prefix = Ipv4Net::prefix_of(pair[1]).ok_or(NebulaError::BadMask {
                field,
                mask: pair[1],
            })?;
            Ipv4Net::new(pair[0].into(), prefix).ok_or(NebulaError::BadMask {
                field,
                mask: pair[1],
            })
        })
        .collect()
}

fn text(bytes: &[u8]) -> Result<String, NebulaError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| malformed("a string field is not UTF-8"))
}

fn decode_details(bytes: &[u8]) -> Result<Details, NebulaError> {
    let mut r = Reader { rest: bytes };
    let mut d = Details::default();
    let mut public_key = None;
    while let Some((field, wire)) = r.tag()? {
        match field {
            1..=4 | 7 | 9 => {
                expect_wire(wire, LEN)?;
                let b = r.bytes()?;
                match field {
                    1 => d.name = text(b)?,
                    2 => d.ips = nets(b, "ips")?,
                    3 => d.subnets = nets(b, "subnets")?,
                    4 => d.groups.push(text(b)?),
                    7 => public_key = Some(fixed(b, "public key")?),
                    _ => d.issuer = Some(fixed(b, "issuer")?),
                }
            }
            5 | 6 | 8 => {
                expect_wire(wire, VARINT)?;
                let v = r.varint()?;
                match field {
                    5 => d.not_before = v as i64,
                    6 => d.not_after = v as i64,
                    _ => d.is_ca = v != 0,
                }
            }
            other => return Err(NebulaError::UnknownField { field: other }),
        }
    }
    d.public_key = public_key.ok_or(NebulaError::FieldLength {
        field: "public key",
        expected: 32,
        found: 0,
    })?;
    Ok(d)
}

/// Reads a `RawNebulaCertificate`, accepting only its canonical encoding.
pub(crate) fn decode_certificate(bytes: &[u8]) -> Result<Certificate, NebulaError> {
    let mut r = Reader { rest: bytes };
    let (mut details, mut signature) = (None, None);
    while let Some((field, wire)) = r.tag()? {
        match field {
            1 => {
                expect_wire(wire, LEN)?;
                details = Some(decode_details(r.bytes()?)?);
            }
            2 => {
                expect_wire(wire, LEN)?;
                signature = Some(fixed(r.bytes()?, "signature")?);
            }
            other => return Err(NebulaError::UnknownField { field: other }),
        }
    }
    let details = details.ok_or(malformed("no details"))?;
    let signature = signature.ok_or(NebulaError::FieldLength {
        field: "signature",
        expected: 64,
        found: 0,
    })?;
    let cert = Certificate { details, signature };
    // Repeats, reordering, padded varints and zero values all parse above;
    // one comparison rules them out, since nebula would re-encode them away
    // and then reject the signature anyway.
    if encode_certificate(&cert) != bytes {
        return Err(NebulaError::NotCanonical);
    }
    Ok(cert)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints() {
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(Reader { rest: &out }.varint().unwrap(), v);
        }
        let mut neg = Vec::new();
        put_int(&mut neg, 5, -1);
        assert_eq!(neg.len(), 11);
        assert!(Reader { rest: &[0xff; 11] }.varint().is_err());
        assert!(Reader {
            rest: &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]
        }
        .varint()
        .is_err());
    }

    #[test]
    fn worked_example_prefix() {
        let d = Details {
            name: "h1".into(),
            ips: vec!["10.1.2.3/16".parse().unwrap()],
            public_key: [0; 32],
            ..Details::default()
        };
        let bytes = encode_details(&d);
        assert_eq!(
            bytes[..15],
            [
                0x0a, 0x02, 0x68, 0x31, 0x12, 0x09, 0x83, 0x84, 0x84, 0x50, 0x80, 0x80, 0xfc, 0xff,
                0x0f
            ]
        );
        assert_eq!(decode_details(&bytes).unwrap(), d);
    }

    #[test]
    fn field_100_is_unknown() {
        let mut d = encode_details(&Details::default());
        d.extend_from_slice(&[0xa0, 0x06, 0x00]);
        assert_eq!(
            decode_details(&d),
            Err(NebulaError::UnknownField { field: 100 })
        );
    }
}
