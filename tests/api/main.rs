//! Integration tests: each spawns the real application on a random port with
//! a fresh database (a new SQLite file, and a new PostgreSQL database) and a
//! fresh key folder, and talks to it over HTTP.

// Tests assert by unwrapping and panicking (the service may not).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod helpers;

mod accounts;
mod admin;
mod browser;
mod cli;
mod clients;
mod control_characters;
mod database;
mod email;
mod forgery;
mod headers;
mod hostile_input;
mod keys;
mod lifecycle;
mod metrics;
mod oidc;
mod openapi;
mod redirect_uris;
mod rotation;
mod sessions;
mod shutdown;
mod sibling;
mod smtp;
mod throttle;
mod timing;
mod tls;
mod token_model;
mod tokens;
