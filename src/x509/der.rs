//! Just enough DER to write the certificate extensions rumor controls
//! itself. rcgen fixes the criticality of the extensions it writes, but an
//! OpenSSL config chooses it per extension, so they are encoded here and
//! handed to rcgen as opaque extensions.

/// Universal tags used by the extensions.
pub(crate) mod tag {
    pub(crate) const BOOLEAN: u8 = 0x01;
    pub(crate) const INTEGER: u8 = 0x02;
    pub(crate) const BIT_STRING: u8 = 0x03;
    pub(crate) const OCTET_STRING: u8 = 0x04;
    pub(crate) const OID: u8 = 0x06;
    pub(crate) const IA5_STRING: u8 = 0x16;
    pub(crate) const SEQUENCE: u8 = 0x30;
}

/// One TLV with a definite length.
pub(crate) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// A SEQUENCE of already encoded items.
pub(crate) fn sequence(items: &[Vec<u8>]) -> Vec<u8> {
    tlv(tag::SEQUENCE, &items.concat())
}

/// A non-negative INTEGER from big-endian magnitude bytes.
pub(crate) fn unsigned(magnitude: &[u8]) -> Vec<u8> {
    tlv(tag::INTEGER, &unsigned_content(magnitude))
}

/// The content octets of a non-negative INTEGER, for implicitly tagged uses.
pub(crate) fn unsigned_content(magnitude: &[u8]) -> Vec<u8> {
    let trimmed: Vec<u8> = magnitude.iter().copied().skip_while(|b| *b == 0).collect();
    let mut content = Vec::with_capacity(trimmed.len() + 1);
    // A set high bit would read as negative; DER asks for exactly one 0x00.
    if trimmed.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(&trimmed);
    content
}

/// An OBJECT IDENTIFIER from its arcs. Callers pass only well-formed
/// arcs (at least two, the first below 3).
pub(crate) fn oid(arcs: &[u64]) -> Vec<u8> {
    let mut content = Vec::new();
    let (first, rest) = match arcs {
        [a, b, rest @ ..] => (a * 40 + b, rest),
        _ => (0, &[][..]),
    };
    for arc in std::iter::once(first).chain(rest.iter().copied()) {
        let mut chunk = vec![(arc & 0x7f) as u8];
        let mut value = arc >> 7;
        while value > 0 {
            chunk.push(0x80 | (value & 0x7f) as u8);
            value >>= 7;
        }
        chunk.reverse();
        content.extend_from_slice(&chunk);
    }
    tlv(tag::OID, &content)
}

/// A named bit list (keyUsage): bit 0 is the most significant bit of the
/// first byte, and trailing zero bits are dropped as DER requires.
pub(crate) fn named_bits(bits: u16) -> Vec<u8> {
    if bits == 0 {
        return tlv(tag::BIT_STRING, &[0]);
    }
    let highest = 15 - bits.leading_zeros() as usize;
    let len = highest / 8 + 1;
    let mut bytes = [0u8; 2];
    for bit in 0..16 {
        if bits & (1 << bit) != 0 {
            bytes[bit / 8] |= 0x80 >> (bit % 8);
        }
    }
    let unused = 7 - (highest % 8) as u8;
    let mut content = vec![unused];
    content.extend_from_slice(&bytes[..len]);
    tlv(tag::BIT_STRING, &content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings() {
        assert_eq!(oid(&[2, 5, 29, 19]), [6, 3, 0x55, 0x1d, 0x13]);
        assert_eq!(
            oid(&[1, 2, 840, 113549]),
            [6, 6, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d]
        );
        assert_eq!(unsigned(&[0, 0, 0x80]), [2, 2, 0, 0x80]);
        assert_eq!(unsigned(&[]), [2, 1, 0]);
        // digitalSignature (bit 0) + keyCertSign (bit 5) + cRLSign (bit 6)
        assert_eq!(named_bits(0b110_0001), [3, 2, 1, 0x86]);
        // decipherOnly (bit 8) needs a second byte
        assert_eq!(named_bits(1 << 8), [3, 3, 7, 0, 0x80]);
        assert_eq!(tlv(4, &[0; 200])[..3], [4, 0x81, 200]);
    }
}
