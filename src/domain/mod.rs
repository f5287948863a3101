//! Pure rules of the product: no I/O, no database, no HTTP. Everything else
//! in the crate depends on this module, and it depends on nothing of ours.

pub mod address;
mod channel;
pub mod chart;
pub mod dnd;
mod email;
pub mod import;
pub mod integration;
pub mod local_time;
pub mod message;
pub mod optin;
mod phone;
pub mod public_url;
pub mod region;
mod role;
pub mod search;

pub use address::Addresses;
pub use channel::{
    channel_label, provider_label, Channel, IntegrationStatus, Provider, TransportKind,
};
pub use email::EmailAddress;
pub use phone::PhoneNumber;
pub use role::Role;

/// Why a value given by a person or a client was refused: which field, and a
/// sentence they can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidField {
    pub field: &'static str,
    pub message: String,
}

impl InvalidField {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}
