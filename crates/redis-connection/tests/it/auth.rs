//! Password and ACL-user authentication.

use std::time::Duration;

use redis_connection::fred::prelude::*;
use redis_connection::{ConnectionError, RedisConfig, RedisConnectionManager};
use secrecy::SecretString;
use test_support::RedisServer;

use test_support::fixtures::redis_config;

/// A password shaped like an Azure access key.
const AZURE_LIKE: &str = "q8/Zx+Lm3Wp=Tr0/Key+AbC=";

fn with_credentials(server: &RedisServer, user: Option<&str>, password: &str) -> RedisConfig {
    let mut config = redis_config(server);
    config.username = user.map(str::to_owned);
    config.password = Some(SecretString::from(password));
    config
}

// requirepass: the right password connects, a wrong one fails at once with
// an auth error that does not contain the password.
#[tokio::test]
async fn requirepass_accepts_the_right_password_and_hides_a_wrong_one() {
    let redis = RedisServer::builder().password(AZURE_LIKE).start().await;
    let manager = RedisConnectionManager::connect(with_credentials(&redis, None, AZURE_LIKE))
        .await
        .unwrap();
    let _: () = manager
        .pool()
        .set("k", "v", None, None, false)
        .await
        .unwrap();
    manager.shutdown().await;

    let wrong = "wrong-Password/1+=";
    let err = tokio::time::timeout(
        Duration::from_secs(5),
        RedisConnectionManager::connect(with_credentials(&redis, None, wrong)),
    )
    .await
    .expect("a wrong password fails quickly instead of retrying forever")
    .unwrap_err();
    assert!(matches!(err, ConnectionError::Auth { .. }), "{err:?}");
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(
            !text.contains(wrong) && !text.contains(AZURE_LIKE),
            "{text}"
        );
    }
}

// An ACL user connects with its password; a wrong user or password fails clearly.
#[tokio::test]
async fn acl_user_connects_and_a_wrong_user_or_password_fails_clearly() {
    let redis = RedisServer::builder()
        .acl_user("svc", "svc-pass")
        .start()
        .await;
    let manager =
        RedisConnectionManager::connect(with_credentials(&redis, Some("svc"), "svc-pass"))
            .await
            .unwrap();
    let _: () = manager
        .pool()
        .set("k", "v", None, None, false)
        .await
        .unwrap();
    let clients = redis.cmd(&["CLIENT", "LIST"]).as_string().unwrap();
    let ours = clients
        .lines()
        .filter(|l| l.contains("user=svc") && !l.contains("cmd=client|list"));
    assert_eq!(ours.count(), 2, "{clients}");
    manager.shutdown().await;

    for (user, password) in [("svc", "nope"), ("nobody", "svc-pass")] {
        let err = RedisConnectionManager::connect(with_credentials(&redis, Some(user), password))
            .await
            .unwrap_err();
        assert!(matches!(err, ConnectionError::Auth { .. }), "{err:?}");
        assert!(!err.to_string().contains(password));
    }
}

// An Azure-style key works from REDIS_PASSWORD and, percent-encoded, from REDIS_URL.
#[tokio::test]
async fn azure_style_key_from_env_and_url() {
    let redis = RedisServer::builder().password(AZURE_LIKE).start().await;
    let port = redis.port().to_string();
    let vars = [
        ("REDIS_HOST", "127.0.0.1"),
        ("REDIS_PORT", port.as_str()),
        ("REDIS_PASSWORD", AZURE_LIKE),
    ];
    let config = RedisConfig::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    })
    .unwrap();
    let manager = RedisConnectionManager::connect(config).await.unwrap();
    assert!(manager.is_connected());
    manager.shutdown().await;

    let encoded = AZURE_LIKE
        .replace('/', "%2F")
        .replace('+', "%2B")
        .replace('=', "%3D");
    let config = RedisConfig::from_url(&format!("redis://:{encoded}@127.0.0.1:{port}")).unwrap();
    let manager = RedisConnectionManager::connect(config).await.unwrap();
    assert!(manager.is_connected());
}
