//! Connecting a channel: which provider serves it and what each provider
//! needs. Pure: the page parses the form into a [`Connection`], the
//! database layer stores it.

use super::{Channel, InvalidField, PhoneNumber};

/// The provider of each channel (Calls go through Twilio like SMS; Google
/// Business Messages was shut down by Google in 2024 and cannot be
/// connected any more).
pub fn provider_of(channel: Channel) -> Option<&'static str> {
    match channel {
        Channel::Sms | Channel::Call => Some("twilio"),
        Channel::Email => Some("mailgun"),
        Channel::Facebook | Channel::Whatsapp => Some("meta"),
        Channel::Gmb => None,
    }
}

/// The secret that signs a provider's webhooks, named as the provider's
/// console names it (Meta serves Facebook Messenger and WhatsApp).
pub fn secret_name(provider: &str) -> &'static str {
    match provider {
        "twilio" => "Auth Token",
        "mailgun" => "HTTP webhook signing key",
        "meta" => "App Secret",
        _ => "webhook secret",
    }
}

/// Where the provider's console shows that secret.
pub fn secret_source(provider: &str) -> &'static str {
    match provider {
        "twilio" => "Twilio Console, Account Info",
        "mailgun" => "Mailgun, Sending, Webhooks",
        "meta" => "Meta for Developers, your app, App settings, Basic",
        _ => "the provider's console",
    }
}

/// Why GMB cannot be connected.
pub const GMB_LEGACY: &str = "Google shut Google Business Messages down in 2024: it can no longer \
     be connected. DND kept for it stays, and still blocks.";

/// The providers' API hosts, by region where there is a choice.
pub const MAILGUN_US: &str = "https://api.mailgun.net";
pub const MAILGUN_EU: &str = "https://api.eu.mailgun.net";
pub const META_GRAPH: &str = "https://graph.facebook.com";

/// The form as typed. Secret fields left blank keep what is stored. No
/// `Debug`: it holds secrets, and never reaches a log line.
#[derive(Clone, Default)]
pub struct ConnectForm {
    pub account_sid: String,
    pub auth_token: String,
    pub sending_number: String,
    pub domain: String,
    pub api_key: String,
    pub signing_key: String,
    pub region: String,
    pub from_address: String,
    pub app_secret: String,
    pub verify_token: String,
    pub account_id: String,
    pub access_token: String,
}

/// What a connection stores. `None` for a secret: keep the stored one.
/// `Debug` shows which secrets are given, never their values.
#[derive(Clone, PartialEq, Eq)]
pub struct Connection {
    pub provider: &'static str,
    pub account: String,
    /// Signs the provider's webhooks (Twilio auth token, Mailgun signing
    /// key, Meta app secret).
    pub secret: Option<String>,
    pub verify_token: Option<String>,
    /// Sending credential where it differs from `secret` (Mailgun API key,
    /// Meta access token).
    pub api_key: Option<String>,
    pub sender: Option<String>,
    /// Mailgun's region picks its API host.
    pub api_base_url: Option<String>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let given = |s: &Option<String>| s.as_ref().map(|_| "<redacted>");
        f.debug_struct("Connection")
            .field("provider", &self.provider)
            .field("account", &self.account)
            .field("secret", &given(&self.secret))
            .field("verify_token", &given(&self.verify_token))
            .field("api_key", &given(&self.api_key))
            .field("sender", &self.sender)
            .field("api_base_url", &self.api_base_url)
            .finish()
    }
}

/// The stored secrets a connection may keep.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stored {
    pub secret: bool,
    pub api_key: bool,
    pub verify_token: bool,
}

fn secret(
    value: &str,
    field: &'static str,
    what: &str,
    kept: bool,
    errors: &mut Vec<InvalidField>,
) -> Option<String> {
    let v = value.trim();
    if v.is_empty() {
        if !kept {
            errors.push(InvalidField::new(field, format!("give the {what}")));
        }
        return None;
    }
    if v.len() < 8 || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        errors.push(InvalidField::new(
            field,
            format!("the {what} has at least 8 characters and no spaces: paste it exactly"),
        ));
        return None;
    }
    Some(v.to_string())
}

impl ConnectForm {
    /// Checks the fields the channel's provider needs (every problem at
    /// once, each with its field). `stored` says which secrets may be left
    /// blank to keep them.
    pub fn validate(
        &self,
        channel: Channel,
        region: &str,
        stored: Stored,
    ) -> Result<Connection, Vec<InvalidField>> {
        let Some(provider) = provider_of(channel) else {
            return Err(vec![InvalidField::new("channel", GMB_LEGACY)]);
        };
        let mut errors = Vec::new();
        let connection = match provider {
            "twilio" => {
                let sid = self.account_sid.trim();
                if !(sid.len() == 34
                    && sid.starts_with("AC")
                    && sid[2..].chars().all(|c| c.is_ascii_hexdigit()))
                {
                    errors.push(InvalidField::new(
                        "account_sid",
                        "a Twilio account SID is AC followed by 32 hex characters",
                    ));
                }
                let token = secret(
                    &self.auth_token,
                    "auth_token",
                    secret_name(provider),
                    stored.secret,
                    &mut errors,
                );
                let sender = match PhoneNumber::parse(self.sending_number.trim(), region) {
                    Ok(n) => Some(n.into_inner()),
                    Err(_) if channel == Channel::Call && self.sending_number.trim().is_empty() => {
                        None
                    }
                    Err(e) => {
                        errors.push(InvalidField::new(
                            "sending_number",
                            format!("the sending number: {}", e.message),
                        ));
                        None
                    }
                };
                Connection {
                    provider,
                    account: sid.to_string(),
                    secret: token,
                    verify_token: None,
                    api_key: None,
                    sender,
                    api_base_url: None,
                }
            }
            "mailgun" => {
                let domain = self
                    .domain
                    .trim()
                    .trim_end_matches('.')
                    .to_ascii_lowercase();
                if domain.is_empty()
                    || !domain.contains('.')
                    || !domain
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
                {
                    errors.push(InvalidField::new(
                        "domain",
                        "the Mailgun sending domain, e.g. mg.example.com",
                    ));
                }
                let api_key = secret(
                    &self.api_key,
                    "api_key",
                    "API key",
                    stored.api_key,
                    &mut errors,
                );
                let signing = secret(
                    &self.signing_key,
                    "signing_key",
                    secret_name(provider),
                    stored.secret,
                    &mut errors,
                );
                let base = match self.region.trim() {
                    "us" | "US" | "" => MAILGUN_US,
                    "eu" | "EU" => MAILGUN_EU,
                    _ => {
                        errors.push(InvalidField::new("region", "choose US or EU"));
                        MAILGUN_US
                    }
                };
                let from = self.from_address.trim();
                let sender = if from.is_empty() {
                    format!("no-reply@{domain}")
                } else if super::EmailAddress::parse(
                    from.rsplit('<')
                        .next()
                        .unwrap_or(from)
                        .trim_end_matches('>'),
                )
                .is_err()
                {
                    errors.push(InvalidField::new(
                        "from_address",
                        "the From address, e.g. Harbor Fitness <hello@mg.example.com>",
                    ));
                    String::new()
                } else {
                    from.to_string()
                };
                Connection {
                    provider,
                    account: domain,
                    secret: signing,
                    verify_token: None,
                    api_key,
                    sender: Some(sender),
                    api_base_url: Some(base.to_string()),
                }
            }
            _ => {
                let app_secret = secret(
                    &self.app_secret,
                    "app_secret",
                    secret_name(provider),
                    stored.secret,
                    &mut errors,
                );
                let verify = secret(
                    &self.verify_token,
                    "verify_token",
                    "Verify token",
                    stored.verify_token,
                    &mut errors,
                );
                let id = self.account_id.trim();
                if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
                    errors.push(InvalidField::new(
                        "account_id",
                        if channel == Channel::Whatsapp {
                            "the WhatsApp phone number id (digits, from Meta's app dashboard)"
                        } else {
                            "the Facebook page id (digits)"
                        },
                    ));
                }
                let token = secret(
                    &self.access_token,
                    "access_token",
                    "access token",
                    stored.api_key,
                    &mut errors,
                );
                Connection {
                    provider,
                    account: id.to_string(),
                    secret: app_secret,
                    verify_token: verify,
                    api_key: token,
                    sender: None,
                    api_base_url: None,
                }
            }
        };
        if errors.is_empty() {
            Ok(connection)
        } else {
            Err(errors)
        }
    }
}

/// The sender of SMS sent through Twilio's API: a number (read in the
/// location's `region`, stored in E.164) or an alphanumeric sender id as
/// carriers take it: 1 to 11 ASCII letters, digits and spaces, at least one
/// letter, kept as written.
pub fn sms_sender(input: &str, region: &str) -> Result<String, InvalidField> {
    let typed = input.trim();
    let alphanumeric = (1..=11).contains(&typed.chars().count())
        && typed.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ')
        && typed.chars().any(|c| c.is_ascii_alphabetic());
    if alphanumeric {
        return Ok(typed.to_string());
    }
    let looks_like_number = typed
        .chars()
        .all(|c| c.is_ascii_digit() || " +-().".contains(c));
    match PhoneNumber::parse(typed, region) {
        Ok(number) if looks_like_number => Ok(number.into_inner()),
        Ok(_) | Err(_) => Err(InvalidField::new(
            "sender",
            format!(
                "\"{typed}\" is neither a phone number in international form (+14155550100) nor an alphanumeric sender id (1 to 11 letters, digits and spaces, at least one letter)"
            ),
        )),
    }
}

/// The From of email sent through Mailgun's API: an address, or a name and
/// an address (`Harbor Fitness <hello@mg.example.com>`), kept as written.
pub fn email_sender(input: &str) -> Result<String, InvalidField> {
    let typed = input.trim();
    let address = match typed.rsplit_once('<') {
        Some((_, rest)) if rest.ends_with('>') => rest.trim_end_matches('>'),
        Some(_) => "",
        None => typed,
    };
    match super::EmailAddress::parse(address) {
        Ok(_) if !typed.chars().any(char::is_control) => Ok(typed.to_string()),
        _ => Err(InvalidField::new(
            "sender",
            format!(
                "\"{typed}\" is not a sending address: write it as hello@mg.example.com or Harbor Fitness <hello@mg.example.com>"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(errors: Vec<InvalidField>) -> Vec<&'static str> {
        errors.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn twilio_needs_a_sid_a_token_and_a_number() {
        let form = ConnectForm {
            account_sid: "AC0123456789abcdef0123456789abcdef".into(),
            auth_token: "0123456789abcdef".into(),
            sending_number: "(415) 555-0100".into(),
            ..Default::default()
        };
        let c = form
            .validate(Channel::Sms, "US", Stored::default())
            .unwrap();
        assert_eq!(c.provider, "twilio");
        assert_eq!(c.sender.as_deref(), Some("+14155550100"));
        let bad = ConnectForm {
            account_sid: "AC123".into(),
            ..Default::default()
        };
        assert_eq!(
            fields(
                bad.validate(Channel::Sms, "US", Stored::default())
                    .unwrap_err()
            ),
            vec!["account_sid", "auth_token", "sending_number"]
        );
        // A stored token may be kept by leaving it blank.
        let keep = ConnectForm {
            auth_token: String::new(),
            ..form
        };
        let kept = keep
            .validate(
                Channel::Sms,
                "US",
                Stored {
                    secret: true,
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(kept.secret, None);
    }

    #[test]
    fn mailgun_region_picks_the_host_and_meta_needs_its_ids() {
        let form = ConnectForm {
            domain: "MG.Example.com".into(),
            api_key: "key-0123456789".into(),
            signing_key: "sign-0123456789".into(),
            region: "EU".into(),
            ..Default::default()
        };
        let c = form
            .validate(Channel::Email, "US", Stored::default())
            .unwrap();
        assert_eq!(c.api_base_url.as_deref(), Some(MAILGUN_EU));
        assert_eq!(c.account, "mg.example.com");
        assert_eq!(c.sender.as_deref(), Some("no-reply@mg.example.com"));
        let meta = ConnectForm {
            app_secret: "app-secret-1".into(),
            verify_token: "verify-token-1".into(),
            account_id: "not digits".into(),
            access_token: "EAAB-token".into(),
            ..Default::default()
        };
        assert_eq!(
            fields(
                meta.validate(Channel::Whatsapp, "US", Stored::default())
                    .unwrap_err()
            ),
            vec!["account_id"]
        );
        assert!(ConnectForm::default()
            .validate(Channel::Gmb, "US", Stored::default())
            .is_err());
    }

    #[test]
    fn each_missing_secret_is_named_as_its_provider_names_it() {
        let said = |channel| {
            ConnectForm::default()
                .validate(channel, "US", Stored::default())
                .unwrap_err()
                .into_iter()
                .map(|e| e.message)
                .collect::<Vec<_>>()
        };
        assert!(said(Channel::Sms).contains(&"give the Auth Token".to_string()));
        assert!(said(Channel::Email).contains(&"give the HTTP webhook signing key".to_string()));
        let meta = said(Channel::Facebook);
        assert!(
            meta.contains(&"give the App Secret".to_string()),
            "{meta:?}"
        );
        assert!(
            meta.contains(&"give the Verify token".to_string()),
            "{meta:?}"
        );
        assert_eq!(secret_name("meta"), "App Secret");
        assert_eq!(secret_name("google"), "webhook secret");
    }

    #[test]
    fn senders_are_numbers_or_sender_ids_and_addresses() {
        assert_eq!(sms_sender("(415) 555-0100", "US").unwrap(), "+14155550100");
        assert_eq!(
            sms_sender("+44 20 7946 0958", "US").unwrap(),
            "+442079460958"
        );
        assert_eq!(sms_sender("Harbor Gym", "US").unwrap(), "Harbor Gym");
        for bad in [
            "",
            "12345",
            "Harbor Fitness Club",
            "Gym!",
            "555-01x0",
            "   ",
        ] {
            assert!(sms_sender(bad, "US").is_err(), "{bad:?}");
        }
        assert!(email_sender("hello@mg.example.com").is_ok());
        assert!(email_sender("Harbor Fitness <hello@mg.example.com>").is_ok());
        for bad in ["", "hello", "Harbor <hello>", "a <b@c.example"] {
            assert!(email_sender(bad).is_err(), "{bad:?}");
        }
    }
}
