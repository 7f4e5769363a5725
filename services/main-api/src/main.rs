//! The main-api binary: configuration from the environment, then serve
//! until SIGTERM or Ctrl-C (see `service_kit::service_main`).
//!
//! `main-api openapi` prints the service's OpenAPI document instead and exits
//! (no configuration read, nothing started): `cargo xtask openapi` writes
//! `docs/openapi/main-api.json` from it.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("openapi") {
        return service_kit::openapi::print(&main_api::openapi());
    }
    service_kit::service_main(
        "main-api",
        main_api::Config::from_env,
        |c| &c.common,
        main_api::run,
    )
    .await
}
