//! The main-api binary: configuration from the environment, then serve
//! until SIGTERM or Ctrl-C.

use std::process::ExitCode;

use main_api::Config;
use service_kit::Env;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::from_env(&Env::process()) {
        Ok(config) => config,
        Err(error) => {
            // Before logging is set up: the one place a service writes to stderr.
            #[allow(clippy::print_stderr)]
            {
                eprintln!("main-api: {error}");
            }
            return ExitCode::from(2);
        }
    };
    service_kit::telemetry::init(config.common.log_format);
    let listener = match tokio::net::TcpListener::bind(config.common.addr).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(addr = %config.common.addr, %error, "cannot bind MAIN_API_ADDR");
            return ExitCode::FAILURE;
        }
    };
    match main_api::run(listener, config, service_kit::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "main-api failed");
            ExitCode::FAILURE
        }
    }
}
