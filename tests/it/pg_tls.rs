//! TLS to PostgreSQL: a cluster serving a certificate from a CA made at test time. With that
//! CA in `ca_file` the store connects over TLS (the server counts the connections as TLS);
//! without it the certificate is refused and nothing connects in plain text.

use std::time::Duration;

use perfhook::store::postgres::{PostgresOptions, PostgresStore};
use perfhook::store::Store;

use crate::test_ca::TestCa;

fn options(url: &str, ca_file: Option<std::path::PathBuf>) -> PostgresOptions {
    PostgresOptions {
        url: zeroize::Zeroizing::new(url.to_owned()),
        pool_size: 2,
        statement_timeout: Duration::from_secs(10),
        ca_file,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_verifies_the_database_certificate_against_its_ca_file() {
    let Some(cluster) = crate::pg_cluster::private() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new("perfhook test database CA");
    let leaf = ca.leaf(&["localhost", "127.0.0.1"], dir.path(), "db");
    cluster.enable_tls(&leaf.cert, &leaf.key);
    let plain_url = cluster.create_database().await;
    let url = format!("{plain_url}?sslmode=require");

    // Without the CA: the certificate is not trusted, and require never falls back.
    let refused = PostgresStore::connect(&options(&url, None)).await;
    assert!(
        refused.is_err(),
        "connected without trusting the certificate"
    );

    // With it: connected, migrated, and every pool connection is TLS.
    let ca_file = ca.write(dir.path(), "ca");
    let store = PostgresStore::connect(&options(&url, Some(ca_file)))
        .await
        .expect("connect over TLS");
    store.check().await.expect("ready");
    let (client, connection) = tokio_postgres::connect(&plain_url, tokio_postgres::NoTls)
        .await
        .expect("plain admin connection");
    let driver = tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_ssl s
             JOIN pg_stat_activity a ON a.pid = s.pid
             WHERE a.datname = current_database() AND s.pid <> pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_ssl");
    let (tls, all): (i64, i64) = (row.get(0), row.get(1));
    assert!(all > 0, "the store holds no connection");
    assert_eq!(tls, all, "a store connection without TLS");
    drop(client);
    let _ = driver.await;
    store.close().await.expect("close");
}
