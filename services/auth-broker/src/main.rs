//! The auth-broker binary: configuration from the environment, then serve
//! until SIGTERM or Ctrl-C.

use std::process::ExitCode;

use auth_broker::Config;
use service_kit::Env;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::from_env(&Env::process()) {
        Ok(config) => config,
        Err(error) => {
            // Before logging is set up: the one place a service writes to stderr.
            #[allow(clippy::print_stderr)]
            {
                eprintln!("auth-broker: {error}");
            }
            return ExitCode::from(2);
        }
    };
    service_kit::telemetry::init(config.common.log_format);
    let listener = match tokio::net::TcpListener::bind(config.common.addr).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(addr = %config.common.addr, %error, "cannot bind AUTH_BROKER_ADDR");
            return ExitCode::FAILURE;
        }
    };
    match auth_broker::run(listener, config, service_kit::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "auth-broker failed");
            ExitCode::FAILURE
        }
    }
}
