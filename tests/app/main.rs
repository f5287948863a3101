//! Integration tests: one binary, so one PostgreSQL cluster per run, with a
//! database per test.

mod common;

mod access;
mod access_matrix;
mod accessibility;
mod agency;
mod agency_users;
mod api;
mod api_keys;
mod backup;
mod browser;
mod browser_settings;
mod bulk;
mod cli;
mod compose;
mod consent;
mod contact_forms;
mod dashboard;
mod delivery;
mod dnd;
mod embedded;
mod error_pages;
mod export;
mod faults;
mod finding;
mod form_errors;
mod fuzz_regressions;
mod gate;
mod getting_around;
mod hostile;
mod hostile_http;
mod imports;
mod inbound;
mod integrations;
mod messages;
mod meta_send;
mod migrations;
mod optin;
mod pages;
mod schema;
mod settings;
mod settings_page;
mod sign_in;
mod subscriptions;
mod webhooks;
