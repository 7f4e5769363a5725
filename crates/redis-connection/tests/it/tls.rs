//! TLS for real: a redis-server with a throwaway CA, reached through rediss://.

use std::time::Duration;

use redis_connection::fred::prelude::*;
use redis_connection::{ConnectionError, RedisConfig, RedisConnectionManager, TlsOptions};
use secrecy::SecretString;
use test_support::RedisServer;

fn tls_config(server: &RedisServer, ca_file: std::path::PathBuf) -> RedisConfig {
    test_support::init_tracing();
    let mut config = RedisConfig::from_url(&server.tls_url()).unwrap();
    assert!(config.tls.is_some(), "rediss:// must turn TLS on");
    config.tls = Some(TlsOptions::default().with_ca_file(ca_file));
    config.pool_size = 2;
    config
}

/// Our connections, as the server lists them, arrive on the TLS port.
fn connections_on_port(server: &RedisServer, port: u16) -> usize {
    let list = server.cmd(&["CLIENT", "LIST"]).as_string().unwrap();
    list.lines()
        .filter(|l| l.contains(&format!("laddr=127.0.0.1:{port} ")))
        .count()
}

// rediss:// with the right CA connects over the TLS port and runs commands.
#[tokio::test]
async fn connects_with_the_right_ca() {
    let redis = RedisServer::builder().tls().start().await;
    let manager = RedisConnectionManager::connect(tls_config(&redis, redis.tls_ca_file()))
        .await
        .unwrap();
    let _: () = manager
        .pool()
        .set("k", "over tls", None, None, false)
        .await
        .unwrap();
    let v: String = manager.pool().get("k").await.unwrap();
    assert_eq!(v, "over tls");
    assert_eq!(connections_on_port(&redis, redis.tls_port()), 2);
}

// A CA that did not sign the server's certificate fails clearly, and quickly.
#[tokio::test]
async fn wrong_ca_fails_clearly() {
    let redis = RedisServer::builder().tls().start().await;
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other-ca.pem");
    test_support::tls::write_unrelated_ca(&other);
    let err = tokio::time::timeout(
        Duration::from_secs(10),
        RedisConnectionManager::connect(tls_config(&redis, other)),
    )
    .await
    .expect("a certificate error is not retried forever")
    .unwrap_err();
    assert!(matches!(err, ConnectionError::Tls { .. }), "{err:?}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
}

// Password and ACL-user authentication work over TLS.
#[tokio::test]
async fn authentication_over_tls() {
    let redis = RedisServer::builder()
        .tls()
        .password("tls-secret")
        .start()
        .await;
    let mut config = tls_config(&redis, redis.tls_ca_file());
    config.password = Some(SecretString::from("tls-secret"));
    let manager = RedisConnectionManager::connect(config).await.unwrap();
    let _: () = manager
        .pool()
        .set("k", "v", None, None, false)
        .await
        .unwrap();

    let redis = RedisServer::builder()
        .tls()
        .acl_user("svc", "svc-secret")
        .start()
        .await;
    let mut config = tls_config(&redis, redis.tls_ca_file());
    config.username = Some("svc".to_owned());
    config.password = Some(SecretString::from("svc-secret"));
    let manager = RedisConnectionManager::connect(config).await.unwrap();
    let _: () = manager
        .pool()
        .set("k", "v", None, None, false)
        .await
        .unwrap();
    let list = redis.cmd(&["CLIENT", "LIST"]).as_string().unwrap();
    let tls_port = format!("laddr=127.0.0.1:{} ", redis.tls_port());
    assert!(
        list.lines()
            .any(|l| l.contains(&tls_port) && l.contains("user=svc")),
        "{list}"
    );
}

// A plain-text client cannot talk to the TLS port: there is no silent fallback.
#[tokio::test]
async fn plain_text_to_tls_port_fails() {
    let redis = RedisServer::builder().tls().start().await;
    let mut config = RedisConfig::centralized("127.0.0.1", redis.tls_port());
    config.reconnect.max_attempts = 2;
    config.connect_timeout = Duration::from_millis(500);
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        RedisConnectionManager::connect(config),
    )
    .await
    .expect("gave up in time");
    assert!(result.is_err());
}
