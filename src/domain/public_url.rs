//! Whether a provider on the internet can reach the webhook URLs we show:
//! they start with `DND_PUBLIC_URL`, else with the address the page was
//! asked at, which on a developer's machine is `http://127.0.0.1:8080`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why the webhook URLs' host cannot be reached from the internet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreachable {
    /// This machine only: loopback, `localhost`, or the unspecified
    /// address (`0.0.0.0`, `::`).
    Loopback,
    /// A private or link-local network (10.0.0.0/8, 192.168.0.0/16, …).
    Private,
}

impl Unreachable {
    /// Words for a banner: "… `http://127.0.0.1:8080`, {words}, …".
    pub fn words(self) -> &'static str {
        match self {
            Unreachable::Loopback => "an address of this machine only (loopback)",
            Unreachable::Private => "an address of a private network",
        }
    }
}

/// Whether providers cannot reach `base` (`scheme://host[:port][/path]`),
/// and why. A host name other than `localhost` is taken as reachable (it
/// is not resolved: this is a rule, not a probe).
pub fn unreachable(base: &str) -> Option<Unreachable> {
    let host = url::Url::parse(base).ok()?.host()?.to_owned();
    match host {
        url::Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            (name == "localhost" || name.ends_with(".localhost")).then_some(Unreachable::Loopback)
        }
        url::Host::Ipv4(ip) => classify(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => classify(IpAddr::V6(ip)),
    }
}

fn classify(ip: IpAddr) -> Option<Unreachable> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    if ip.is_loopback() || ip.is_unspecified() {
        return Some(Unreachable::Loopback);
    }
    let private = match ip {
        IpAddr::V4(v4) => private_v4(v4),
        IpAddr::V6(v6) => private_v6(v6),
    };
    private.then_some(Unreachable::Private)
}

fn private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_private() || ip.is_link_local() || (a == 100 && (64..128).contains(&b))
}

fn private_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
}

#[cfg(test)]
mod tests {
    use super::{unreachable, Unreachable};

    #[test]
    fn loopback_and_unspecified_addresses_are_this_machine_only() {
        for base in [
            "http://127.0.0.1:8080",
            "http://127.8.9.10",
            "http://localhost:8080",
            "http://LOCALHOST.",
            "http://app.localhost:3000",
            "http://0.0.0.0:8080",
            "http://[::1]:8080",
            "http://[::]:8080",
            "http://[::ffff:127.0.0.1]",
        ] {
            assert_eq!(unreachable(base), Some(Unreachable::Loopback), "{base}");
        }
    }

    #[test]
    fn private_networks_are_not_reachable_either() {
        for base in [
            "http://10.0.0.5:8080",
            "http://192.168.1.20",
            "http://172.16.0.1",
            "http://169.254.1.1",
            "http://100.64.0.1",
            "http://[fd00::1]",
            "http://[fe80::1]",
        ] {
            assert_eq!(unreachable(base), Some(Unreachable::Private), "{base}");
        }
    }

    #[test]
    fn real_hosts_are_reachable() {
        for base in [
            "https://dnd.example.com",
            "https://dnd.example.com/prefix",
            "http://93.184.216.34:8080",
            "http://8.8.8.8",
            "http://[2606:4700::1111]",
            "http://localhost.example.com",
        ] {
            assert_eq!(unreachable(base), None, "{base}");
        }
    }
}
