//! The main-api binary: configuration from the environment, then serve
//! until SIGTERM or Ctrl-C (see `service_kit::service_main`).

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    service_kit::service_main(
        "main-api",
        main_api::Config::from_env,
        |c| &c.common,
        main_api::run,
    )
    .await
}
