//! Delivery of outbound messages: a dispatcher claims queued messages
//! (several app servers may run it: `FOR UPDATE SKIP LOCKED`), asks the
//! gate again, and hands each to its integration's transport.

pub mod dispatcher;
pub mod hosts;
pub mod notify;
pub mod probe;
pub mod transport;
