//! Where a location's provider credentials may be sent. Every provider
//! call authenticates with the location's secret (Twilio's auth token,
//! Mailgun's API key), so the URL it goes to is a security boundary: a user
//! who could point it at their own server would receive the secret the
//! settings page masks. Only the providers' own API hosts, plus the hosts an
//! operator lists in `DND_PROVIDER_HOSTS` (a proxy, a test double), are
//! reached; loopback, link-local and private addresses are refused unless
//! `DND_ALLOW_PRIVATE_URLS=true` (a local test receiver), both when a URL
//! is saved and when it is called, where the DNS answer is checked too (a
//! listed name that resolves to a private address is refused).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;

/// The providers' own API hosts.
pub const PROVIDER_HOSTS: [&str; 4] = [
    "api.twilio.com",
    "api.mailgun.net",
    "api.eu.mailgun.net",
    "graph.facebook.com",
];

/// How long a provider call may take in all before it is given up (and
/// the message is `unknown`: the request may have been taken).
pub const PROVIDER_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HostRefused(pub String);

/// The hosts provider calls may go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPolicy {
    allowed: Vec<String>,
    allow_private: bool,
    /// When not empty, the only hosts DND-change webhooks go to.
    webhook_hosts: Vec<String>,
}

impl Default for HostPolicy {
    /// The providers' hosts only, no private addresses.
    fn default() -> Self {
        HostPolicy::new(&[], false)
    }
}

impl HostPolicy {
    /// The providers' hosts and `extra` (names or IP addresses).
    pub fn new(extra: &[String], allow_private: bool) -> Self {
        let mut allowed: Vec<String> = PROVIDER_HOSTS.iter().map(|h| h.to_string()).collect();
        allowed.extend(
            extra
                .iter()
                .map(|h| normalise_host(h))
                .filter(|h| !h.is_empty()),
        );
        allowed.sort();
        allowed.dedup();
        HostPolicy {
            allowed,
            allow_private,
            webhook_hosts: Vec::new(),
        }
    }

    /// Limits DND-change webhooks to these hosts (none: any public host).
    pub fn with_webhook_hosts(mut self, hosts: &[String]) -> Self {
        self.webhook_hosts = hosts
            .iter()
            .map(|h| normalise_host(h))
            .filter(|h| !h.is_empty())
            .collect();
        self
    }

    /// Checks a customer's webhook URL, before it is stored and before each
    /// delivery: https, no credentials in it, a public host (a private
    /// address only with `DND_ALLOW_PRIVATE_URLS=true`), and one of
    /// `DND_WEBHOOK_HOSTS` when the operator lists them. Unlike provider
    /// URLs, any public host is fine otherwise: it is the customer's own
    /// server, and no credential of ours goes there.
    pub fn check_webhook(&self, url: &str) -> Result<Url, HostRefused> {
        let restricted = HostPolicy {
            allowed: self.webhook_hosts.clone(),
            allow_private: self.allow_private,
            webhook_hosts: Vec::new(),
        };
        match restricted.check_target(url) {
            Err(e) => Err(e),
            Ok((parsed, private, shown)) => {
                if !private
                    && !self.webhook_hosts.is_empty()
                    && !self.webhook_hosts.contains(&shown)
                {
                    return Err(HostRefused(format!(
                        "{shown} is not one of the hosts webhooks may go to ({})",
                        self.webhook_hosts.join(", ")
                    )));
                }
                Ok(parsed)
            }
        }
    }

    pub fn allows_private(&self) -> bool {
        self.allow_private
    }

    /// Checks a provider base URL, before it is stored and before it is
    /// called: https (http only to a private test receiver), no user name
    /// or password in it, and a host on the allow-list (or a private
    /// address, when those are allowed).
    pub fn check(&self, url: &str) -> Result<Url, HostRefused> {
        let (parsed, private, shown) = self.check_target(url)?;
        if !private && !self.allowed.contains(&shown) {
            return Err(HostRefused(format!(
                "{shown} is not a provider API host: credentials go only to {} (an operator adds \
                 a proxy with DND_PROVIDER_HOSTS)",
                self.allowed.join(", ")
            )));
        }
        Ok(parsed)
    }

    /// What every destination must be: a URL without credentials in it,
    /// https (http only to a private address), and a private address only
    /// when those are allowed. Returns the URL, whether its host is
    /// private, and the host as compared with the lists.
    fn check_target(&self, url: &str) -> Result<(Url, bool, String), HostRefused> {
        let refused = |why: String| HostRefused(why);
        let parsed =
            Url::parse(url.trim()).map_err(|e| refused(format!("\"{url}\" is not a URL ({e})")))?;
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(refused(
                "the URL carries a user name or password; credentials are never put in a URL"
                    .into(),
            ));
        }
        let host = match parsed.host() {
            Some(url::Host::Domain(d)) => Target::Name(normalise_host(d)),
            Some(url::Host::Ipv4(ip)) => Target::Ip(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Target::Ip(IpAddr::V6(ip)),
            None => return Err(refused(format!("\"{url}\" has no host"))),
        };
        let private = match &host {
            Target::Ip(ip) => is_private(*ip),
            Target::Name(name) => name == "localhost" || name.ends_with(".localhost"),
        };
        let shown = host.to_string();
        if private && !self.allow_private {
            return Err(refused(format!(
                "{shown} is a loopback, link-local or private address: nothing is sent there \
                 (set DND_ALLOW_PRIVATE_URLS=true for a local test server)"
            )));
        }
        match parsed.scheme() {
            "https" => {}
            "http" if private => {}
            _ => {
                return Err(refused(
                    "the URL must start with https:// (http:// only for a local test server)"
                        .into(),
                ))
            }
        }
        Ok((parsed, private, shown))
    }

    /// The HTTP client for provider calls: no redirects (a provider's
    /// answer cannot send the credentials elsewhere), a resolver that
    /// refuses private addresses unless they are allowed, and
    /// [`PROVIDER_TIMEOUT`] for a whole request. A client that cannot be
    /// built is an error, never a default one without the guards.
    pub fn client(&self) -> Result<reqwest::Client, reqwest::Error> {
        self.client_with_timeout(PROVIDER_TIMEOUT)
    }

    /// [`HostPolicy::client`] giving up on a request after `timeout`
    /// instead (tests of a provider that answers too late).
    pub fn client_with_timeout(
        &self,
        timeout: Duration,
    ) -> Result<reqwest::Client, reqwest::Error> {
        reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            // A proxy from the environment would resolve names itself,
            // past the guard below.
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver {
                allow_private: self.allow_private,
            }))
            .build()
    }
}

enum Target {
    Name(String),
    Ip(IpAddr),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Name(n) => f.write_str(n),
            Target::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

fn normalise_host(host: &str) -> String {
    let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
    // "[::1]" as written in a URL, "::1" as an address.
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_string()
}

/// Addresses no provider lives at: loopback, private, link-local, shared
/// (CGNAT), unspecified, multicast, broadcast, documentation, and the
/// IPv6 forms of all of them (mapped IPv4, unique local, link-local).
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => private_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return private_v4(v4);
            }
            let seg = v6.segments();
            let embedded = |hi: u16, lo: u16| {
                Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8)
            };
            // Forms that carry an IPv4 address to a gateway: NAT64
            // (64:ff9b::/96), IPv4-compatible (::/96) and 6to4 (2002::/16).
            if (seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0, 0, 0, 0])
                || (seg[0..6] == [0, 0, 0, 0, 0, 0] && !v6.is_loopback() && !v6.is_unspecified())
            {
                return private_v4(embedded(seg[6], seg[7]));
            }
            if seg[0] == 0x2002 {
                return private_v4(embedded(seg[1], seg[2]));
            }
            let first = seg[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (first & 0xffc0) == 0xfec0 // site-local fec0::/10
                || (first == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
                || v6 == Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0)
        }
    }
}

fn private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240
}

/// Resolves names with the system resolver and drops private addresses
/// unless they are allowed: a listed name whose DNS answer points inside
/// the network (DNS rebinding) gets no connection at all.
struct GuardedResolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let usable: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| allow_private || !is_private(a.ip()))
                .collect();
            if usable.is_empty() {
                return Err(format!(
                    "{host} resolves only to private addresses; nothing is sent there"
                )
                .into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(usable.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_forms_that_carry_a_private_ipv4_address_are_private() {
        for private in [
            "64:ff9b::a00:1",
            "2002:7f00:1::",
            "::a00:1",
            "::ffff:192.168.0.1",
        ] {
            assert!(is_private(private.parse().unwrap()), "{private}");
        }
        for public in ["64:ff9b::808:808", "2002:808:808::", "2606:4700::1111"] {
            assert!(!is_private(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn only_provider_hosts_by_default() {
        let p = HostPolicy::default();
        assert!(p.check("https://api.twilio.com").is_ok());
        assert!(p.check("https://API.Mailgun.net./v3").is_ok());
        assert!(p.check("https://api.eu.mailgun.net").is_ok());
        for bad in [
            "https://evil.example.com",
            "https://api.twilio.com.evil.example",
            "http://api.twilio.com",
            "https://user:pw@api.twilio.com",
            "https://127.0.0.1:9000",
            "http://localhost:9000",
            "https://10.1.2.3",
            "https://169.254.169.254/latest",
            "https://[::1]:8080",
            "https://[::ffff:127.0.0.1]",
            "https://[fd00::1]",
            "https://100.64.0.1",
            "ftp://api.twilio.com",
            "not a url",
        ] {
            assert!(p.check(bad).is_err(), "{bad} was allowed");
        }
    }

    #[test]
    fn operators_add_hosts_and_private_test_servers() {
        let p = HostPolicy::new(&["proxy.example.com".into()], false);
        assert!(p.check("https://proxy.example.com/twilio").is_ok());
        assert!(p.check("http://proxy.example.com").is_err(), "https only");
        let local = HostPolicy::new(&[], true);
        assert!(local.check("http://127.0.0.1:9000").is_ok());
        assert!(local.check("http://localhost:9000").is_ok());
        assert!(local.check("http://[::1]:9000").is_ok());
        assert!(
            local.check("https://evil.example.com").is_err(),
            "private addresses allowed does not open every host"
        );
    }

    #[test]
    fn a_name_that_resolves_inside_the_network_gets_no_connection() {
        use reqwest::dns::Resolve;
        use std::str::FromStr;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let name = || reqwest::dns::Name::from_str("localhost").unwrap();
        let strict = GuardedResolver {
            allow_private: false,
        };
        let refused = rt.block_on(strict.resolve(name())).err().unwrap();
        assert!(refused.to_string().contains("private"), "{refused}");
        let local = GuardedResolver {
            allow_private: true,
        };
        let found: Vec<SocketAddr> = rt.block_on(local.resolve(name())).unwrap().collect();
        assert!(found.iter().all(|a| a.ip().is_loopback()) && !found.is_empty());
    }

    #[test]
    fn private_addresses() {
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fc00::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["3.210.12.1", "2600:1f18::1", "8.8.8.8"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }
}
