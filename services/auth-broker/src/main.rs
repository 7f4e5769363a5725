//! The auth-broker binary: configuration from the environment, then serve
//! until SIGTERM or Ctrl-C (see `service_kit::service_main`).

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    service_kit::service_main(
        "auth-broker",
        auth_broker::Config::from_env,
        |c| &c.common,
        auth_broker::run,
    )
    .await
}
