//! The PostgreSQL store over TLS (#18), against a real server with a certificate from a
//! throwaway authority: with `sslmode=verify-full` and `sslrootcert` the store and the
//! migration copy connect encrypted (the server's own view says so for every connection);
//! a server whose certificate another authority signed, or whose name is not the one
//! dialled, or that the system's authorities do not know, is refused with a clear error; a
//! URL that does not ask for TLS still connects in clear.

use mediator_tests::Postgres;
use mediatord::store::postgres::copy::{copy_sqlite_to_postgres, CopyOptions};
use mediatord::store::postgres::store::open;
use mediatord::store::Store;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// A certificate authority called `name` (its certificate, PEM) and a server certificate it
/// signed for `names` (certificate and key, PEM).
fn authority(name: &str, names: &[&str]) -> (String, String, String) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, name);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    (ca_cert.pem(), server.pem(), key.serialize_pem())
}

/// Waits until the sessions on database `db` are `want` ("encrypted/all"; a closed store's
/// sessions end a moment after it); returns what they were last.
fn sessions(pg: &Postgres, db: &str, want: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let now = pg
            .psql(
                "postgres",
                &format!(
                    "SELECT count(*) FILTER (WHERE s.ssl) || '/' || count(*) FROM pg_stat_ssl s \
                     JOIN pg_stat_activity a USING (pid) WHERE a.datname = '{db}'"
                ),
            )
            .unwrap();
        if now == want || std::time::Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn open_err(url: &str) -> String {
    match open(url) {
        Ok(store) => {
            store.shutdown();
            panic!("{url} was accepted")
        }
        Err(e) => e.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_speaks_tls_and_verifies_the_server() {
    let (ca, cert, key) = authority("mediatord test authority", &["localhost"]);
    let pg = Postgres::start_with_tls(&cert, &key);
    pg.create_database("tls");
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca).unwrap();
    let url =
        |host: &str, query: &str| format!("postgres://postgres@{host}:{}/tls?{query}", pg.port);
    let verified = url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", ca_file.display()),
    );

    let store = tokio::task::block_in_place(|| open(&verified)).expect("open over TLS");
    store
        .write(|c| Ok(c.create_chat(1, &[1; 32], b"over tls", b"", None, 1)?))
        .await
        .unwrap();
    assert!(store.read(|c| Ok(c.chat_exists(1)?)).await.unwrap());
    // The writer and its four readers.
    assert_eq!(sessions(&pg, "tls", "5/5"), "5/5");
    tokio::task::block_in_place(|| store.shutdown());

    // The migration's copy connects the same way.
    let source = dir.path().join("source.db");
    Store::open(&source).unwrap().shutdown();
    pg.create_database("tlscopy");
    let copy_url = verified.replace("/tls?", "/tlscopy?");
    let report = copy_sqlite_to_postgres(&source, &copy_url, &CopyOptions::default(), |_| {})
        .await
        .expect("copy over TLS");
    assert!(!report.tables.is_empty());

    // Another authority's server, the wrong name, or an authority the system does not know.
    let (other_ca, _, _) = authority("another authority", &["localhost"]);
    let other_file = dir.path().join("other.pem");
    std::fs::write(&other_file, other_ca).unwrap();
    let refusals = tokio::task::block_in_place(|| {
        [
            open_err(&url(
                "localhost",
                &format!("sslmode=verify-full&sslrootcert={}", other_file.display()),
            )),
            open_err(&url(
                "127.0.0.1",
                &format!("sslmode=verify-full&sslrootcert={}", ca_file.display()),
            )),
            open_err(&url("localhost", "sslmode=require")),
        ]
    });
    for (e, says) in refusals.iter().zip([
        "UnknownIssuer",
        "not valid for name \"127.0.0.1\"",
        "UnknownIssuer",
    ]) {
        assert!(e.contains(says), "expected {says}: {e}");
    }

    // Without sslmode: in clear, as before.
    let plain = tokio::task::block_in_place(|| open(&url("127.0.0.1", ""))).expect("in clear");
    assert!(plain.read(|c| Ok(c.chat_exists(1)?)).await.unwrap());
    assert_eq!(sessions(&pg, "tls", "0/5"), "0/5");
    tokio::task::block_in_place(|| plain.shutdown());
}
