//! The Karmada certificate set and kubeconfig, as real servers judge them: etcd and an API
//! server (the project's test server, built from the Kubernetes tree) started with the Karmada
//! chart's own TLS flags and the files CreateCert stores, then reached with the kubeconfig the
//! user gets. Needs the project's test environment (`bash scripts/test.sh` sets it up); skipped,
//! loudly, without it.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use federation_controller::subjobs::cert::KeyedCert;
use federation_controller::subjobs::cert::karmada::{FEDERATION_ADMIN, KarmadaSet, issue_set};
use federation_controller::subjobs::cert::kubeconfig::{KubeconfigInput, kubeconfig, server_url};
use federation_controller::testing::karmada_request;

/// The directory with `etcd`, `testenv-apiserver` and `kubectl`; None: skip.
fn testenv_bin() -> Option<PathBuf> {
    let kubectl = std::env::var_os("FEDERATION_E2E_KUBECTL").map(PathBuf::from);
    let on_testenv = std::env::var("FEDERATION_E2E_TESTENV").as_deref() == Ok("1");
    match kubectl.and_then(|k| k.parent().map(Path::to_path_buf)) {
        Some(bin) if on_testenv && bin.join("testenv-apiserver").is_file() => Some(bin),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but the project's test environment is not set up"
            );
            eprintln!(
                "\n!!!!! SKIPPED: the certificate check needs the project's test servers \
                 (bash scripts/test.sh) !!!!!\n"
            );
            None
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Child processes killed when the test ends, however it ends.
struct Servers(Vec<Child>);

impl Drop for Servers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    let mut file = std::fs::File::create(&path).expect("file");
    file.write_all(text.as_bytes()).expect("written");
    path
}

/// The set for a control plane reached at 127.0.0.1, as CreateCert issues it.
fn certificate_set() -> KarmadaSet<KeyedCert> {
    let request = karmada_request("karmada-fleet-a", "karmada-fleet-a", "127.0.0.1");
    issue_set(&request, jiff::Timestamp::now()).expect("a certificate set")
}

/// The kubeconfig CreateCert writes, for `server`, trusting `ca`, as `client`.
fn kubeconfig_for(server: &str, ca: &KeyedCert, client: &KeyedCert) -> String {
    kubeconfig(&KubeconfigInput {
        cluster: "karmada-fleet-a",
        user: FEDERATION_ADMIN,
        server,
        ca_pem: &ca.cert_pem,
        client,
    })
    .expect("a kubeconfig")
    .into_string()
}

fn kubectl(bin: &Path, kubeconfig: &Path, args: &[&str]) -> std::process::Output {
    Command::new(bin.join("kubectl"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--request-timeout=5s"])
        .args(args)
        .env("KUBECACHEDIR", kubeconfig.with_extension("cache"))
        .output()
        .expect("kubectl runs")
}

#[test]
fn etcd_and_an_api_server_serve_with_the_set_and_the_users_kubeconfig_reaches_them() {
    let Some(bin) = testenv_bin() else { return };
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("karmada-certificates-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let set = certificate_set();
    // The files of Secret <release>-cert, under the names the chart mounts them by.
    let ca = write(&dir, "server-ca.crt", &set.ca.cert_pem);
    let crt = write(&dir, "karmada.crt", &set.control_plane.cert_pem);
    let key = write(&dir, "karmada.key", set.control_plane.key_pem());
    let front_proxy_ca = write(&dir, "front-proxy-ca.crt", &set.front_proxy_ca.cert_pem);

    let (etcd_port, peer_port, api_port) = (free_port(), free_port(), free_port());
    let log = |name: &str| std::fs::File::create(dir.join(name)).expect("log");
    let etcd_url = format!("https://127.0.0.1:{etcd_port}");
    let mut servers = Servers(Vec::new());
    // etcd as the chart runs it: serving with the one control-plane pair, and trusting clients
    // of the Karmada CA only.
    servers.0.push(
        Command::new(bin.join("etcd"))
            .args(["--name", "karmada", "--data-dir"])
            .arg(dir.join("etcd-data"))
            .args([
                "--listen-client-urls",
                &etcd_url,
                "--advertise-client-urls",
                &etcd_url,
            ])
            .args([
                "--listen-peer-urls",
                &format!("http://127.0.0.1:{peer_port}"),
            ])
            .args([
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{peer_port}"),
            ])
            .args([
                "--initial-cluster",
                &format!("karmada=http://127.0.0.1:{peer_port}"),
            ])
            .arg("--cert-file")
            .arg(&crt)
            .arg("--key-file")
            .arg(&key)
            .arg("--trusted-ca-file")
            .arg(&ca)
            .arg("--client-cert-auth")
            .stdout(log("etcd.log"))
            .stderr(log("etcd.err"))
            .spawn()
            .expect("etcd starts"),
    );

    // The kubeconfig the user gets, for this server.
    let server = server_url(&format!("127.0.0.1:{api_port}"));
    let user_kubeconfig = write(
        &dir,
        "fed.kubeconfig",
        &kubeconfig_for(&server, &set.ca, &set.federation_admin),
    );

    // The API server with the chart's TLS flags: TLS 1.3 only with the control-plane pair,
    // client certificates of the Karmada CA, the front proxy's CA and name, etcd over TLS with
    // the same pair. Its own delegated checks go through the user's kubeconfig.
    servers.0.push(
        Command::new(bin.join("testenv-apiserver"))
            .args(["--bind-address=127.0.0.1", "--advertise-address=127.0.0.1"])
            .arg(format!("--secure-port={api_port}"))
            .arg(format!("--tls-cert-file={}", crt.display()))
            .arg(format!("--tls-private-key-file={}", key.display()))
            .arg("--tls-min-version=VersionTLS13")
            .arg(format!("--client-ca-file={}", ca.display()))
            .arg(format!("--requestheader-client-ca-file={}", front_proxy_ca.display()))
            .arg("--requestheader-allowed-names=front-proxy-client")
            .arg("--requestheader-username-headers=X-Remote-User")
            .arg("--requestheader-group-headers=X-Remote-Group")
            .arg(format!("--etcd-servers={etcd_url}"))
            .arg(format!("--etcd-cafile={}", ca.display()))
            .arg(format!("--etcd-certfile={}", crt.display()))
            .arg(format!("--etcd-keyfile={}", key.display()))
            .arg(format!("--kubeconfig={}", user_kubeconfig.display()))
            .arg(format!("--authentication-kubeconfig={}", user_kubeconfig.display()))
            .arg(format!("--authorization-kubeconfig={}", user_kubeconfig.display()))
            .arg("--authentication-skip-lookup")
            .arg("--disable-admission-plugins=NamespaceLifecycle,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ValidatingAdmissionPolicy,MutatingAdmissionPolicy")
            .arg("--enable-priority-and-fairness=false")
            .stdout(log("apiserver.log"))
            .stderr(log("apiserver.err"))
            .spawn()
            .expect("the API server starts"),
    );

    // Listing CRDs is served from etcd: TLS to the API server, the user's client certificate,
    // and the API server's client certificate towards etcd all have to be accepted. This server
    // delegates authorization to an API it does not serve, so only `system:masters` (always
    // allowed) gets through: the list also proves the user's group.
    let deadline = Instant::now() + Duration::from_secs(60);
    let listed = loop {
        let out = kubectl(
            &bin,
            &user_kubeconfig,
            &["get", "customresourcedefinitions", "-o", "name"],
        );
        if out.status.success() {
            break out;
        }
        for (i, child) in servers.0.iter_mut().enumerate() {
            if let Ok(Some(status)) = child.try_wait() {
                let logs = ["etcd.err", "apiserver.err"][i];
                panic!(
                    "{} exited ({status}):\n{}",
                    ["etcd", "the API server"][i],
                    std::fs::read_to_string(dir.join(logs)).unwrap_or_default()
                );
            }
        }
        assert!(
            Instant::now() < deadline,
            "the kubeconfig never reached the API server: {}\n--- apiserver:\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(dir.join("apiserver.err")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(listed.status.success());

    // A client certificate the Karmada CA did not sign is refused.
    let stranger = certificate_set();
    let stranger_kubeconfig = write(
        &dir,
        "stranger.kubeconfig",
        &kubeconfig_for(&server, &set.ca, &stranger.federation_admin),
    );
    let refused = kubectl(
        &bin,
        &stranger_kubeconfig,
        &["get", "customresourcedefinitions"],
    );
    assert!(
        !refused.status.success(),
        "a certificate of another CA is refused"
    );
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("Unauthorized")
            || String::from_utf8_lossy(&refused.stderr).contains("must be logged in"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    drop(servers);
    let _ = std::fs::remove_dir_all(&dir);
}
