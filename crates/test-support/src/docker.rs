//! Fallback backend: a Redis container via testcontainers, used only where no
//! redis-server binary exists but a Docker engine does (feature `docker`).
//!
//! Known limit: after `stop` + `start_again`, Docker may map the container to
//! a new host port; tests that restart Redis need the local backend.

use std::process::Command;

use testcontainers_modules::redis::{REDIS_PORT, Redis};
use testcontainers_modules::testcontainers::runners::AsyncRunner;
use testcontainers_modules::testcontainers::{ContainerAsync, ImageExt, TestcontainersError};

/// A Redis container.
pub(crate) struct DockerRedis {
    container: ContainerAsync<Redis>,
    host: String,
    port: u16,
    running: bool,
}

impl std::fmt::Debug for DockerRedis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerRedis")
            .field("host", &self.host)
            .field("port", &self.port)
            .finish()
    }
}

impl DockerRedis {
    pub(crate) async fn start(args: &[String]) -> Result<Self, TestcontainersError> {
        let mut cmd = vec!["redis-server".to_owned(), "--save".into(), String::new()];
        cmd.extend(args.iter().cloned());
        let container = Redis::default().with_cmd(cmd).start().await?;
        let host = container.get_host().await?.to_string();
        let port = container.get_host_port_ipv4(REDIS_PORT).await?;
        Ok(Self {
            container,
            host,
            port,
            running: true,
        })
    }

    pub(crate) fn host(&self) -> &str {
        &self.host
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    pub(crate) fn is_running(&self) -> bool {
        self.running
    }

    pub(crate) async fn stop(&mut self) {
        self.container
            .stop()
            .await
            .expect("stop the Redis container");
        self.running = false;
    }

    pub(crate) async fn start_again(&mut self) {
        self.container
            .start()
            .await
            .expect("start the Redis container");
        self.port = self
            .container
            .get_host_port_ipv4(REDIS_PORT)
            .await
            .expect("the Redis container's port");
        self.running = true;
    }

    pub(crate) fn pause(&self) {
        docker(&["pause", self.container.id()]);
    }

    pub(crate) fn resume(&self) {
        docker(&["unpause", self.container.id()]);
    }
}

fn docker(args: &[&str]) {
    let status = Command::new("docker")
        .args(args)
        .status()
        .expect("run the docker CLI");
    assert!(status.success(), "docker {args:?} failed: {status}");
}
