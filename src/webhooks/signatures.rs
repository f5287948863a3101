//! The providers' signature schemes, exactly as their official libraries
//! compute them (test vectors from `shared/reference/provider-webhooks.md`).

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// Twilio's `X-Twilio-Signature`: Base64 HMAC-SHA1 (key: the auth token) of
/// the full URL followed by every POST parameter, names sorted, each name
/// once per distinct value (values sorted), no separators.
pub fn twilio_signature(url: &str, params: &[(String, String)], auth_token: &str) -> String {
    let mut by_name: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (name, value) in params {
        by_name.entry(name).or_default().insert(value);
    }
    let mut data = String::from(url);
    for (name, values) in by_name {
        for value in values {
            data.push_str(name);
            data.push_str(value);
        }
    }
    let mut mac =
        Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()).expect("HMAC takes any key length");
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The URL with its default port made explicit, and without any port: Twilio
/// signs either form, so both are accepted (as its own libraries do).
fn port_variants(url: &str) -> Vec<String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return vec![url.to_string()];
    };
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(split);
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => authority,
    };
    let default_port = if scheme.eq_ignore_ascii_case("https") {
        443
    } else {
        80
    };
    let with_port = if host == authority {
        format!("{scheme}://{host}:{default_port}{tail}")
    } else {
        url.to_string()
    };
    vec![
        url.to_string(),
        with_port,
        format!("{scheme}://{host}{tail}"),
    ]
}

/// Checks `X-Twilio-Signature` for a form POST (or, when the URL carries
/// `bodySHA256`, for a JSON body: the URL alone is signed and the body must
/// hash to that value).
pub fn twilio_is_valid(
    url: &str,
    params: &[(String, String)],
    raw_body: &[u8],
    auth_token: &str,
    header: &str,
) -> bool {
    let body_hash = url
        .split_once('?')
        .and_then(|(_, q)| q.split('&').find_map(|kv| kv.strip_prefix("bodySHA256=")));
    let params: &[(String, String)] = match body_hash {
        Some(expected) => {
            if hex::encode(Sha256::digest(raw_body)) != expected {
                return false;
            }
            &[]
        }
        None => params,
    };
    port_variants(url).iter().any(|u| {
        constant_time_eq(
            twilio_signature(u, params, auth_token).as_bytes(),
            header.as_bytes(),
        )
    })
}

/// Mailgun: lowercase hex HMAC-SHA256 (key: the webhook signing key) of
/// `timestamp + token`.
pub fn mailgun_is_valid(signing_key: &str, timestamp: &str, token: &str, signature: &str) -> bool {
    let Ok(expected) = hex::decode(signature) else {
        return false;
    };
    let mut mac =
        Hmac::<Sha256>::new_from_slice(signing_key.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.as_bytes());
    mac.update(token.as_bytes());
    mac.verify_slice(&expected).is_ok()
}

/// Meta: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`,
/// keyed with the app secret.
pub fn meta_is_valid(app_secret: &str, raw_body: &[u8], header: &str) -> bool {
    let Some(Ok(expected)) = header.strip_prefix("sha256=").map(hex::decode) else {
        return false;
    };
    let mut mac =
        Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(raw_body);
    mac.verify_slice(&expected).is_ok()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Signs like the providers do (for tests, benchmarks and local tools).
pub mod sign {
    use super::*;

    pub fn mailgun(signing_key: &str, timestamp: &str, token: &str) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(signing_key.as_bytes()).expect("any key length");
        mac.update(timestamp.as_bytes());
        mac.update(token.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    pub fn meta(app_secret: &str, raw_body: &[u8]) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()).expect("any key length");
        mac.update(raw_body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn official_params() -> Vec<(String, String)> {
        p(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ])
    }

    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

    #[test]
    fn twilio_official_vectors() {
        let params = official_params();
        assert_eq!(
            twilio_signature(URL, &params, "12345"),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        );
        assert_eq!(
            twilio_signature(
                "https://mycompany.com:443/myapp.php?foo=1&bar=2",
                &params,
                "12345"
            ),
            "kvajT1Ptam85bY51eRf/AJRuM3w="
        );
        assert_eq!(
            twilio_signature(
                "http://mycompany.com:80/myapp.php?foo=1&bar=2",
                &params,
                "12345"
            ),
            "0ZXoZLH/DfblKGATFgpif+LLRf4="
        );
        assert_eq!(
            twilio_signature(
                "http://mycompany.com:1234/myapp.php?foo=1&bar=2",
                &params,
                "12345"
            ),
            "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="
        );
    }

    #[test]
    fn twilio_accepts_the_url_with_and_without_the_default_port() {
        let params = official_params();
        // Signed without the port, received with it, and the other way round.
        assert!(twilio_is_valid(
            "https://mycompany.com:443/myapp.php?foo=1&bar=2",
            &params,
            b"",
            "12345",
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        assert!(twilio_is_valid(
            URL,
            &params,
            b"",
            "12345",
            "kvajT1Ptam85bY51eRf/AJRuM3w="
        ));
        assert!(twilio_is_valid(
            "http://mycompany.com/myapp.php?foo=1&bar=2",
            &params,
            b"",
            "12345",
            "0ZXoZLH/DfblKGATFgpif+LLRf4="
        ));
    }

    #[test]
    fn twilio_refuses_changes_of_any_kind() {
        let params = official_params();
        let good = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";
        assert!(
            !twilio_is_valid(URL, &params, b"", "54321", good),
            "other token"
        );
        assert!(!twilio_is_valid(
            "https://mycompany.com/myapp.php?foo=1&bar=3",
            &params,
            b"",
            "12345",
            good
        ));
        let mut tampered = params.clone();
        tampered[2].1 = "9999".into();
        assert!(!twilio_is_valid(URL, &tampered, b"", "12345", good));
        let mut padded = params.clone();
        padded[2].1 = "1234 ".into();
        assert!(
            !twilio_is_valid(URL, &padded, b"", "12345", good),
            "whitespace is signed"
        );
        assert!(!twilio_is_valid(URL, &params, b"", "12345", ""));
    }

    #[test]
    fn twilio_repeated_parameters_sign_each_distinct_value_sorted() {
        let params = p(&[
            ("Sid", "CA123"),
            ("SidAccount", "AC123"),
            ("Digits", "5678"),
            ("Digits", "1234"),
            ("Digits", "1234"),
        ]);
        assert_eq!(
            twilio_signature(URL, &params, "12345"),
            "IK+Dwps556ElfBT0I3Rgjkr1wJU="
        );
    }

    #[test]
    fn twilio_json_body_vector() {
        let body = br#"{"property": "value", "boolean": true}"#;
        assert_eq!(
            hex::encode(Sha256::digest(body)),
            "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
        );
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2&bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
        assert_eq!(
            twilio_signature(url, &[], "12345"),
            "a9nBmqA0ju/hNViExpshrM61xv4="
        );
        assert!(twilio_is_valid(
            url,
            &[],
            body,
            "12345",
            "a9nBmqA0ju/hNViExpshrM61xv4="
        ));
        assert!(
            !twilio_is_valid(url, &[], b"{}", "12345", "a9nBmqA0ju/hNViExpshrM61xv4="),
            "body must match its hash"
        );
    }

    #[test]
    fn mailgun_official_vector() {
        let key = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0";
        let sig = "9cfc5c41582e51246e73c88d34db3af0a3a2692a76fbab81492842f000256d33";
        assert!(mailgun_is_valid(
            key,
            "1403645220",
            "5egbgr1vjgqxtrnp65xfznchgdccwh5d6i09vijqi3whgowmn6",
            sig
        ));
        assert!(!mailgun_is_valid(
            key,
            "1403645220",
            "owyldpe6nxhmrn78epljl6bj0orrki1u3d2v5e6cnlmmuox8jr",
            sig
        ));
        assert!(!mailgun_is_valid(
            key,
            "1403645221",
            "5egbgr1vjgqxtrnp65xfznchgdccwh5d6i09vijqi3whgowmn6",
            sig
        ));
        assert!(!mailgun_is_valid(
            key,
            "1403645220",
            "5egbgr1vjgqxtrnp65xfznchgdccwh5d6i09vijqi3whgowmn6",
            "not hex"
        ));
        assert_eq!(
            sign::mailgun(
                key,
                "1403645220",
                "5egbgr1vjgqxtrnp65xfznchgdccwh5d6i09vijqi3whgowmn6"
            ),
            sig
        );
    }

    #[test]
    fn meta_vector() {
        let header = "sha256=0329a06b62cd16b33eb6792be8c60b158d89a2ee3a876fce9a881ebb488c0914";
        assert!(meta_is_valid("secret", b"test", header));
        assert!(!meta_is_valid("secret", b"test ", header));
        assert!(!meta_is_valid("other", b"test", header));
        assert!(!meta_is_valid(
            "secret",
            b"test",
            "0329a06b62cd16b33eb6792be8c60b158d89a2ee3a876fce9a881ebb488c0914"
        ));
        assert_eq!(sign::meta("secret", b"test"), header);
    }
}
