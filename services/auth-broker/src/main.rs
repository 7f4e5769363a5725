//! The auth-broker binary: configuration from the environment, then serve
//! until SIGTERM or Ctrl-C (see `service_kit::service_main`).
//!
//! `auth-broker openapi` prints the service's OpenAPI document instead and exits
//! (no configuration read, nothing started): `cargo xtask openapi` writes
//! `docs/openapi/auth-broker.json` from it.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("openapi") {
        return service_kit::openapi::print(&auth_broker::openapi());
    }
    service_kit::service_main(
        "auth-broker",
        auth_broker::Config::from_env,
        |c| &c.common,
        auth_broker::run,
    )
    .await
}
