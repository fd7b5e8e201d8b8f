//! TLS served by Tessera itself: a generated self-signed certificate,
//! HTTP/2 and HTTP/1.1 by ALPN, and plain HTTP refused on the TLS port.

use crate::both_backends;

/// A self-signed certificate for 127.0.0.1 written as PEM files; returns
/// (cert path, key path, the certificate to trust).
fn self_signed(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, reqwest::Certificate) {
    let generated =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let cert_pem = generated.cert.pem();
    let cert = dir.join("tls-cert.pem");
    let key = dir.join("tls-key.pem");
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
    (
        cert,
        key,
        reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap(),
    )
}

fn with_tls(s: &mut tessera::configuration::Settings) {
    // The key folder's parent is the test's own temporary folder.
    let dir = s.keys.dir.parent().unwrap().to_owned();
    let (cert, key, _) = self_signed(&dir);
    s.server.tls.cert = Some(cert);
    s.server.tls.key = Some(key);
}

both_backends! {
    async fn tls_with_http2_and_http1(app: TestApp, settings = with_tls) {
        let trusted = reqwest::Certificate::from_pem(
            &std::fs::read(app.settings.server.tls.cert.as_ref().unwrap()).unwrap(),
        )
        .unwrap();
        let https = app.address.replace("http://", "https://");
        for (http2, version) in [(true, reqwest::Version::HTTP_2), (false, reqwest::Version::HTTP_11)] {
            let mut builder = reqwest::Client::builder()
                .use_rustls_tls()
                .tls_built_in_root_certs(false)
                .add_root_certificate(trusted.clone());
            if !http2 {
                builder = builder.http1_only();
            }
            let client = builder.build().unwrap();
            let response = client.get(format!("{https}/.well-known/jwks.json")).send().await.unwrap();
            assert_eq!(response.status(), 200);
            assert_eq!(response.version(), version);
        }
        // Plain HTTP on the TLS port gets no HTTP answer.
        let plain = app.client.get(format!("{}/healthz", app.address)).send().await;
        assert!(plain.is_err() || plain.unwrap().status() != 200);
    }
}

#[test]
fn tls_needs_both_files_and_says_which_is_wrong() {
    use std::process::Command;
    let dir = tempfile::tempdir().unwrap();
    let (cert, _, _) = self_signed(dir.path());
    let run = |env: &[(&str, String)]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tessera"));
        command
            .current_dir(dir.path())
            .arg("serve")
            .env("TESSERA__SERVER__BIND", "127.0.0.1:0");
        for (k, v) in env {
            command.env(k, v);
        }
        command.output().unwrap()
    };
    let only_cert = run(&[("TESSERA__SERVER__TLS__CERT", cert.display().to_string())]);
    assert!(!only_cert.status.success());
    assert!(String::from_utf8_lossy(&only_cert.stderr).contains("server.tls"));
    let missing_key = run(&[
        ("TESSERA__SERVER__TLS__CERT", cert.display().to_string()),
        (
            "TESSERA__SERVER__TLS__KEY",
            dir.path().join("nope.pem").display().to_string(),
        ),
    ]);
    assert!(!missing_key.status.success());
    let stderr = String::from_utf8_lossy(&missing_key.stderr);
    assert!(
        stderr.contains("nope.pem") && stderr.lines().count() == 1,
        "{stderr}"
    );
}
