//! IPv4 networks as Nebula certificates hold them: an address (host bits
//! kept for a host's own IP) and a prefix length.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use super::NebulaError;

/// An IPv4 address with a prefix length, like `10.8.0.5/16`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipv4Net {
    addr: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Net {
    /// An address with a prefix length (0 to 32); host bits are kept.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Option<Ipv4Net> {
        (prefix <= 32).then_some(Ipv4Net { addr, prefix })
    }

    /// [`Ipv4Net::new`] for constants: a prefix over 32 fails to compile.
    pub(crate) const fn constant(addr: Ipv4Addr, prefix: u8) -> Ipv4Net {
        assert!(prefix <= 32, "an IPv4 prefix is 0 to 32");
        Ipv4Net { addr, prefix }
    }

    /// The address as written, host bits included.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The mask as a big-endian number: /16 is 0xFFFF0000.
    pub fn mask(&self) -> u32 {
        u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0)
    }

    /// The same network with the host bits cleared, as nebula-cert stores
    /// CA networks and subnets.
    pub fn network(&self) -> Ipv4Net {
        Ipv4Net {
            addr: Ipv4Addr::from(u32::from(self.addr) & self.mask()),
            prefix: self.prefix,
        }
    }

    /// The prefix length of a mask, if it is a run of ones then zeros.
    pub(crate) fn prefix_of(mask: u32) -> Option<u8> {
        let ones = mask.leading_ones();
        (mask.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
    }

    /// Whether `ip` is inside this network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr) & self.mask()
    }

    /// The broadcast address: the network's last address.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }

    /// The `n`th host address (the network address is the 0th), if it
    /// comes before the broadcast address.
    pub fn nth_host(&self, n: u32) -> Option<Ipv4Addr> {
        let at = u32::from(self.network().addr).checked_add(n)?;
        (n > 0 && at < u32::from(self.broadcast())).then(|| Ipv4Addr::from(at))
    }

    /// The last host address, just before the broadcast address (none in
    /// a /31 or /32).
    pub fn last_host(&self) -> Option<Ipv4Addr> {
        let last = u32::from(self.broadcast()).checked_sub(1)?;
        (last > u32::from(self.network().addr)).then(|| Ipv4Addr::from(last))
    }

    /// Whether `inner` fits in this network the way nebula's root
    /// constraint wants: its address is inside, and its prefix is at least
    /// as long.
    pub fn allows(&self, inner: &Ipv4Net) -> bool {
        u32::from(inner.addr) & self.mask() == u32::from(self.addr) & self.mask()
            && inner.prefix >= self.prefix
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Ipv4Net {
    type Err = NebulaError;

    fn from_str(s: &str) -> Result<Ipv4Net, NebulaError> {
        let bad = || NebulaError::BadCidr {
            value: s.to_owned(),
        };
        let (addr, prefix) = s.trim().split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        // Go's ParseCIDR takes decimal digits only: no sign, no spaces.
        if prefix.is_empty() || prefix.len() > 2 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        Ipv4Net::new(addr, prefix).ok_or_else(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_masks() {
        let n: Ipv4Net = "10.1.2.3/16".parse().unwrap();
        assert_eq!(n.to_string(), "10.1.2.3/16");
        assert_eq!(n.mask(), 0xFFFF_0000);
        assert_eq!(n.network().to_string(), "10.1.0.0/16");
        assert_eq!("1.2.3.4/0".parse::<Ipv4Net>().unwrap().mask(), 0);
        assert_eq!("1.2.3.4/32".parse::<Ipv4Net>().unwrap().mask(), u32::MAX);
        for bad in [
            "10.1.2.3",
            "10.1.2.3/33",
            "10.1.2/8",
            "::1/64",
            "10.0.0.1/+8",
            "10.0.0.1/",
            "x/8",
        ] {
            assert!(bad.parse::<Ipv4Net>().is_err(), "{bad}");
        }
    }

    #[test]
    fn prefixes_of_masks() {
        assert_eq!(Ipv4Net::prefix_of(0), Some(0));
        assert_eq!(Ipv4Net::prefix_of(u32::MAX), Some(32));
        assert_eq!(Ipv4Net::prefix_of(0xFFFF_FF00), Some(24));
        assert_eq!(Ipv4Net::prefix_of(0xFF00_FF00), None);
        assert_eq!(Ipv4Net::prefix_of(1), None);
    }

    #[test]
    fn hosts() {
        let n: Ipv4Net = "10.8.3.4/16".parse().unwrap();
        assert!(n.contains(Ipv4Addr::new(10, 8, 255, 255)));
        assert!(!n.contains(Ipv4Addr::new(10, 9, 0, 0)));
        assert_eq!(n.broadcast(), Ipv4Addr::new(10, 8, 255, 255));
        assert_eq!(n.nth_host(0), None);
        assert_eq!(n.nth_host(1), Some(Ipv4Addr::new(10, 8, 0, 1)));
        assert_eq!(n.nth_host(65534), Some(Ipv4Addr::new(10, 8, 255, 254)));
        assert_eq!(n.nth_host(65535), None);
        assert_eq!(n.last_host(), Some(Ipv4Addr::new(10, 8, 255, 254)));
        let p: Ipv4Net = "10.8.0.4/30".parse().unwrap();
        assert_eq!(p.last_host(), Some(Ipv4Addr::new(10, 8, 0, 6)));
        assert_eq!("10.8.0.4/31".parse::<Ipv4Net>().unwrap().last_host(), None);
        assert_eq!(
            "0.0.0.0/0".parse::<Ipv4Net>().unwrap().broadcast(),
            Ipv4Addr::BROADCAST
        );
    }

    #[test]
    fn constraint() {
        let ca: Ipv4Net = "10.8.0.0/16".parse().unwrap();
        assert!(ca.allows(&"10.8.3.4/24".parse().unwrap()));
        assert!(ca.allows(&"10.8.3.4/16".parse().unwrap()));
        assert!(!ca.allows(&"10.8.3.4/8".parse().unwrap()));
        assert!(!ca.allows(&"10.9.0.1/24".parse().unwrap()));
    }
}
