//! A service's life: configuration, logging, binding, serving until told to
//! stop (see `server.rs`), then closing the Redis layer.

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;

use axum::Router;
use tokio::net::TcpListener;
use tracing::{error, info, warn};

use crate::config::{CommonConfig, likely_typos};
use crate::otel_config::OtelConfig;
use crate::platform::Platform;
use crate::server::serve;
use redis_connection::{ConfigError, Env};

/// A boxed shutdown future, as [`service_main`] hands it to a service.
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A service's failure, for its binary to report.
pub type ServiceError = Box<dyn std::error::Error + Send + Sync>;

/// Starts the Redis layer, serves `router(platform)` on `listener` until
/// `shutdown`, then closes the Redis layer (unsubscribe, QUIT).
///
/// # Errors
/// Configuration errors of the Redis layer, or I/O errors of the listener.
pub async fn run_service(
    name: &str,
    listener: TcpListener,
    common: &CommonConfig,
    router: impl FnOnce(Platform) -> Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServiceError> {
    let platform = Platform::start(common.redis.clone(), common.cache.clone()).await?;
    info!(service = name, addr = %listener.local_addr()?, "listening");
    let served = serve(listener, router(platform.clone()), common.server, shutdown).await;
    platform.shutdown().await;
    served?;
    info!(service = name, "stopped");
    Ok(())
}

/// The whole `main` of a service binary: configuration from the process
/// environment (a bad variable exits 2 with a message naming it, before any
/// logging), logging (with a warning for each [`likely_typos`] variable),
/// binding, then `run` until SIGTERM or Ctrl-C (exit 0),
/// or a failure (exit 1).
pub async fn service_main<C, Fut>(
    name: &str,
    load: impl FnOnce(&Env<fn(&str) -> Option<String>>) -> Result<C, ConfigError>,
    common: impl Fn(&C) -> &CommonConfig,
    run: impl FnOnce(TcpListener, C, Shutdown) -> Fut,
) -> ExitCode
where
    Fut: Future<Output = Result<(), ServiceError>>,
{
    let config = match load(&Env::process()) {
        Ok(config) => config,
        Err(error) => {
            // Before logging is set up: the one place a service writes to stderr.
            #[allow(clippy::print_stderr)]
            {
                eprintln!("{name}: {error}");
            }
            return ExitCode::from(2);
        }
    };
    let otel = match OtelConfig::from_env(&Env::process(), name) {
        Ok(otel) => otel,
        Err(error) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("{name}: {error}");
            }
            return ExitCode::from(2);
        }
    };
    let settings = common(&config);
    // Kept until the service has stopped: dropping it sends the last spans.
    let _telemetry = match crate::telemetry::init_with(settings.log_format, &otel) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("{name}: {error}");
            }
            return ExitCode::from(2);
        }
    };
    if let Some(endpoint) = &otel.traces_endpoint {
        // The endpoint only: headers may hold an API key.
        info!(service = name, endpoint = %endpoint, sampler = ?otel.sampler, "exporting traces over OTLP/HTTP");
    }
    let set: Vec<String> = std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .collect();
    for variable in likely_typos(set.iter().map(String::as_str)) {
        warn!(
            service = name,
            variable, "unknown variable, ignored: is its name misspelt?"
        );
    }
    let listener = match TcpListener::bind(settings.addr).await {
        Ok(listener) => listener,
        Err(error) => {
            error!(service = name, addr = %settings.addr, %error, "cannot bind the listen address");
            return ExitCode::FAILURE;
        }
    };
    match run(listener, config, Box::pin(shutdown_signal())).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            error!(service = name, %error, "service failed");
            ExitCode::FAILURE
        }
    }
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => info!("Ctrl-C received; shutting down"),
        () = terminate => info!("SIGTERM received; shutting down"),
    }
}
