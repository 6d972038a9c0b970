//! End-to-end tests: the real `federation-controller` binary (simulated executors, `--auth=none`)
//! against a real Kubernetes API server, driven with kubectl and the HTTP API.
//!
//! The server comes from `FEDERATION_E2E_KUBECONFIG` (and kubectl from `FEDERATION_E2E_KUBECTL`,
//! else the one on PATH): `scripts/test.sh` starts the project's own test API server
//! (`tests/testenv/`) and sets both; point them at a kind or k3d cluster to run the suite there.
//! Without them the suite is skipped with one loud line, except under CI (`CI=true`), where that
//! is a failure. Each test gets its own namespace and its own controller watching only it.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod dashboard_browser;
mod webdriver;

struct Env {
    kubeconfig: PathBuf,
    kubectl: PathBuf,
    logs: PathBuf,
}

static ENV: OnceLock<Option<Env>> = OnceLock::new();

/// The environment, with the CRD applied and Established; None: skip.
fn env() -> Option<&'static Env> {
    ENV.get_or_init(|| {
        let Some(kubeconfig) = std::env::var_os("FEDERATION_E2E_KUBECONFIG").map(PathBuf::from) else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but FEDERATION_E2E_KUBECONFIG is not set: the e2e environment did not come up"
            );
            eprintln!(
                "\n!!!!! e2e SKIPPED: FEDERATION_E2E_KUBECONFIG is not set. Run `bash scripts/test.sh` \
                 (it starts a local API server) or point it at a cluster. !!!!!\n"
            );
            return None;
        };
        let kubectl = std::env::var_os("FEDERATION_E2E_KUBECTL")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("kubectl"));
        Some(Env::prepare(kubeconfig, kubectl))
    })
    .as_ref()
}

impl Env {
    /// The environment of a server, with the CRD applied and Established.
    fn prepare(kubeconfig: PathBuf, kubectl: PathBuf) -> Env {
        let logs = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-logs");
        std::fs::create_dir_all(&logs).expect("log dir");
        let env = Env {
            kubeconfig,
            kubectl,
            logs,
        };
        let crds = concat!(env!("CARGO_MANIFEST_DIR"), "/crds/");
        env.kubectl_ok(&["apply", "--server-side", "--force-conflicts", "-f", crds]);
        env.kubectl_ok(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/federationenablements.federation.fleet.dev",
        ]);
        env
    }

    fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut command = Command::new(&self.kubectl);
        command
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("KUBECACHEDIR", self.logs.join("kubecache"))
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("kubectl runs");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write stdin");
        }
        child.wait_with_output().expect("kubectl finishes")
    }

    fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args, None);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn apply(&self, manifest: &Value) -> Output {
        self.kubectl(&["apply", "-f", "-"], Some(&manifest.to_string()))
    }
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
}

/// One test: its namespace and its controller, killed on drop.
struct Fixture {
    env: &'static Env,
    namespace: String,
    http: SocketAddr,
    controller: Option<Child>,
    extra_args: Vec<String>,
}

impl Fixture {
    fn new(env: &'static Env, test: &str, extra_args: &[&str]) -> Self {
        let namespace = format!("e2e-{test}-{}", std::process::id());
        // A real cluster needs the Namespace; the test server serves none (and needs none).
        let _ = env.kubectl(&["create", "namespace", &namespace], None);
        let mut fixture = Fixture {
            env,
            namespace,
            http: free_addr(),
            controller: None,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
        };
        fixture.start();
        fixture
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.env.logs.join(format!("{}.log", self.namespace)))
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_federation-controller"))
            .args([
                "run",
                "--executors=simulated",
                "--auth=none",
                "--log-level=info",
            ])
            .args([
                "--http-addr",
                &self.http.to_string(),
                "--namespace",
                &self.namespace,
                // The repository of `Fixture::enablement`.
                "--allowed-chart-repositories=oci://registry.example/charts",
            ])
            .args(&self.extra_args)
            .env("KUBECONFIG", &self.env.kubeconfig)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("controller starts");
        self.controller = Some(child);
        self.wait_until(
            "the controller's HTTP API is ready",
            Duration::from_secs(30),
            |f| {
                f.http_get("/readyz")
                    .map(|(status, _)| status == 200)
                    .unwrap_or(false)
            },
        );
    }

    /// kill -9.
    fn kill(&mut self) {
        if let Some(mut child) = self.controller.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn wait_until(&self, what: &str, timeout: Duration, mut done: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if done(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "timed out after {timeout:?} waiting for {what} (logs in {})",
            self.env.logs.display()
        );
    }

    fn enablement(&self, name: &str, fleet: &str, extra: Value) -> Value {
        let mut spec = json!({
            "clusterGroupID": fleet,
            "backoffLimit": 1,
            "chart": {"repository": "oci://registry.example/charts", "name": "federation", "version": "1.2.3"},
            "network": {"elbID": "69694819-67dc-44ac-ab6e-9b18087c5c4c"},
        });
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        json!({
            "apiVersion": "federation.fleet.dev/v1alpha1",
            "kind": "FederationEnablement",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": spec,
        })
    }

    fn create(&self, manifest: &Value) {
        self.create_all(std::slice::from_ref(manifest));
    }

    /// One `kubectl apply` of many objects, as a YAML stream (the test server has no `v1 List`).
    fn create_all(&self, manifests: &[Value]) {
        let stream: Vec<String> = manifests.iter().map(Value::to_string).collect();
        let out = self
            .env
            .kubectl(&["apply", "-f", "-"], Some(&stream.join("\n---\n")));
        assert!(
            out.status.success(),
            "apply failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn get(&self, name: &str) -> Option<Value> {
        let out = self.env.kubectl(
            &["get", "fe", name, "-n", &self.namespace, "-o", "json"],
            None,
        );
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).expect("json"))
    }

    fn status(&self, name: &str) -> Value {
        self.get(name)
            .map(|fe| fe["status"].clone())
            .unwrap_or(Value::Null)
    }

    /// Every enablement's status in the namespace, by name, in one request.
    fn statuses(&self) -> BTreeMap<String, Value> {
        let out = self
            .env
            .kubectl(&["get", "fe", "-n", &self.namespace, "-o", "json"], None);
        let list: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| {
                let name = item["metadata"]["name"].as_str()?;
                Some((name.to_string(), item["status"].clone()))
            })
            .collect()
    }

    fn wait_phase(&self, name: &str, phase: &str, timeout: Duration) -> Value {
        self.wait_until(&format!("{name} to be {phase}"), timeout, |f| {
            f.status(name)["phase"] == phase
        });
        self.status(name)
    }

    fn http_get(&self, path: &str) -> std::io::Result<(u16, Value)> {
        let mut stream = TcpStream::connect(self.http)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: e2e\r\nConnection: close\r\n\r\n"
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .unwrap_or("");
        Ok((
            status,
            serde_json::from_str(body).unwrap_or(Value::String(body.to_string())),
        ))
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.kill();
        let _ = self.env.kubectl(
            &[
                "delete",
                "fe",
                "--all",
                "-n",
                &self.namespace,
                "--wait=false",
            ],
            None,
        );
        // Leftover finalizers would keep objects forever on a server with no controller.
        if let Ok(list) = serde_json::from_str::<Value>(&self.env.kubectl_ok(&[
            "get",
            "fe",
            "-n",
            &self.namespace,
            "-o",
            "json",
        ])) {
            for item in list["items"].as_array().into_iter().flatten() {
                if let Some(name) = item["metadata"]["name"].as_str() {
                    let _ = self.env.kubectl(
                        &[
                            "patch",
                            "fe",
                            name,
                            "-n",
                            &self.namespace,
                            "--type=merge",
                            "-p",
                            r#"{"metadata":{"finalizers":null}}"#,
                        ],
                        None,
                    );
                }
            }
        }
        let _ = self.env.kubectl(
            &["delete", "namespace", &self.namespace, "--wait=false"],
            None,
        );
    }
}

fn time(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_string()
}

fn sub_job<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["subJobs"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["type"] == type_))
        .unwrap_or(&Value::Null)
}

const MINUTE: Duration = Duration::from_secs(60);

#[test]
fn kubectl_get_shows_the_printer_columns() {
    let Some(env) = env() else { return };
    let f = Fixture::new(env, "columns", &[]);
    f.create(&f.enablement("fleet-cols", "e2e-cols", json!({})));
    f.wait_phase("fleet-cols", "Success", MINUTE);
    let table = env.kubectl_ok(&["get", "fe", "-n", &f.namespace]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().expect("header").split_whitespace().collect();
    assert_eq!(header, ["NAME", "FLEET", "PHASE", "PROGRESS", "AGE"]);
    let row: Vec<&str> = lines.next().expect("row").split_whitespace().collect();
    assert_eq!(&row[..4], ["fleet-cols", "e2e-cols", "Success", "4/4"]);
    let wide = env.kubectl_ok(&["get", "fedenable", "-n", &f.namespace, "-o", "wide"]);
    let header: Vec<&str> = wide
        .lines()
        .next()
        .expect("header")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAME", "FLEET", "PHASE", "PROGRESS", "AGE", "CURRENT", "REASON"
        ]
    );
    assert!(
        wide.lines()
            .nth(1)
            .expect("row")
            .trim_end()
            .ends_with("Succeeded")
    );
}

#[test]
fn an_enablement_goes_through_all_four_subjobs_to_success_and_ready() {
    let Some(env) = env() else { return };
    let f = Fixture::new(env, "success", &["--simulated-delay-ms=400"]);
    f.create(&f.enablement("fleet-ok", "e2e-ok", json!({})));
    let mut phases = Vec::new();
    f.wait_until("Success", MINUTE, |f| {
        let phase = f.status("fleet-ok")["phase"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if phases.last() != Some(&phase) {
            phases.push(phase.clone());
        }
        phase == "Success"
    });
    assert!(phases.contains(&"Running".to_string()), "{phases:?}");
    env.kubectl_ok(&[
        "wait",
        "--for=condition=Ready",
        "fe/fleet-ok",
        "-n",
        &f.namespace,
        "--timeout=30s",
    ]);

    let status = f.status("fleet-ok");
    assert_eq!(status["progress"], "4/4");
    let types: Vec<_> = status["subJobs"]
        .as_array()
        .expect("subJobs")
        .iter()
        .map(|s| s["type"].clone())
        .collect();
    assert_eq!(
        types,
        [
            "CreateNode",
            "CreateNetworkResource",
            "CreateCert",
            "InstallFederationChart"
        ]
    );
    for s in status["subJobs"].as_array().expect("subJobs") {
        assert_eq!(s["phase"], "Success");
        assert!(time(&s["creationTime"]) <= time(&s["startTime"]));
        assert!(time(&s["startTime"]) <= time(&s["completionTime"]));
    }
    let install_start = time(&sub_job(&status, "InstallFederationChart")["startTime"]);
    assert!(time(&sub_job(&status, "CreateNode")["completionTime"]) <= install_start);
    assert!(time(&sub_job(&status, "CreateCert")["completionTime"]) <= install_start);
    assert!(
        time(&sub_job(&status, "CreateNetworkResource")["completionTime"])
            <= time(&sub_job(&status, "CreateCert")["startTime"])
    );
    assert!(time(&status["startTime"]) <= time(&status["completionTime"]));
    let ready = status["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .find(|c| c["type"] == "Ready")
        .expect("Ready");
    assert_eq!(ready["status"], "True");
    assert_eq!(status["observedGeneration"], 1);
}

#[test]
fn the_progress_and_list_routes_serve_the_live_state() {
    let Some(env) = env() else { return };
    let f = Fixture::new(env, "http", &["--simulated-delay-ms=1500"]);
    f.create(&f.enablement("fleet-http", "e2e-http", json!({})));
    f.wait_until("the job to run", MINUTE, |f| {
        f.status("fleet-http")["phase"] == "Running"
    });
    f.wait_until("the cache to see it", MINUTE, |f| {
        f.http_get("/v1/clustergroups/e2e-http/federations/progress")
            .is_ok_and(|(s, _)| s == 200)
    });
    let (_, running) = f
        .http_get("/v1/clustergroups/e2e-http/federations/progress")
        .expect("progress");
    assert_eq!(running["kind"], "Job");
    assert_eq!(running["spec"]["type"], "CreateFederationContainer");
    assert_eq!(running["spec"]["resourceName"], "fleet-http");
    assert!(
        running["metadata"]["creationTimestamp"]
            .as_str()
            .expect("time")
            .ends_with("+0000 UTC")
    );

    f.wait_phase("fleet-http", "Success", MINUTE);
    f.wait_until("the route to show Success", MINUTE, |f| {
        f.http_get("/v1/clustergroups/e2e-http/federations/progress")
            .is_ok_and(|(_, b)| b["status"]["phase"] == "Success")
    });
    let (_, done) = f
        .http_get("/v1/clustergroups/e2e-http/federations/progress")
        .expect("progress");
    let subs = done["spec"]["subJobs"].as_array().expect("subJobs");
    assert_eq!(subs.len(), 4);
    assert!(subs.iter().all(|s| s["status"]["phase"] == "Success"));
    assert_eq!(
        subs[1]["spec"]["extendParam"]["JobExtendParamKeyElbID"],
        "69694819-67dc-44ac-ab6e-9b18087c5c4c"
    );
    let (status, missing) = f
        .http_get("/v1/clustergroups/no-such-fleet/federations/progress")
        .expect("404");
    assert_eq!(
        (status, missing["error_code"].as_str()),
        (404, Some("FED.4040001"))
    );
}

#[test]
fn the_list_route_pages_through_25_enablements() {
    let Some(env) = env() else { return };
    let f = Fixture::new(env, "list", &["--simulated-delay-ms=50"]);
    let items: Vec<Value> = (0..25)
        .map(|i| {
            f.enablement(
                &format!("page-{i:02}"),
                &format!("e2e-page-{i:02}"),
                json!({}),
            )
        })
        .collect();
    f.create_all(&items);
    f.wait_until("25 cached", MINUTE, |f| {
        f.http_get("/api/v1/sso/federations?limit=10")
            .is_ok_and(|(_, b)| b["total"] == 25)
    });
    let mut seen = Vec::new();
    for offset in [0, 10, 20] {
        let (status, page) = f
            .http_get(&format!("/api/v1/sso/federations?limit=10&offset={offset}"))
            .expect("page");
        assert_eq!(status, 200);
        assert_eq!(
            (page["limit"].as_u64(), page["offset"].as_u64()),
            (Some(10), Some(offset))
        );
        seen.extend(
            page["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|i| i["platformUuid"].as_str().expect("uuid").to_string()),
        );
    }
    let expected: Vec<String> = (0..25).map(|i| format!("e2e-page-{i:02}")).collect();
    assert_eq!(seen, expected, "every item once, in order");
}

#[test]
fn a_simulated_failure_fails_the_job_and_a_retry_recovers_it() {
    let Some(env) = env() else { return };
    let f = Fixture::new(env, "retry", &["--simulated-delay-ms=100"]);
    let mut manifest = f.enablement("fleet-retry", "e2e-retry", json!({"backoffLimit": 1}));
    manifest["metadata"]["annotations"] =
        json!({"federation.fleet.dev/simulate-failure": "CreateCert"});
    f.create(&manifest);
    let failed = f.wait_phase("fleet-retry", "Failed", MINUTE);
    assert_eq!(failed["reason"], "SimulatedFailure");
    let cert = sub_job(&failed, "CreateCert");
    assert_eq!(
        (cert["phase"].as_str(), cert["attempts"].as_i64()),
        (Some("Failed"), Some(2))
    );
    let succeeded_before: BTreeMap<String, Value> = ["CreateNode", "CreateNetworkResource"]
        .iter()
        .map(|t| (t.to_string(), sub_job(&failed, t).clone()))
        .collect();

    env.kubectl_ok(&[
        "annotate",
        "fe",
        "fleet-retry",
        "-n",
        &f.namespace,
        "federation.fleet.dev/simulate-failure-",
    ]);
    env.kubectl_ok(&[
        "annotate",
        "fe",
        "fleet-retry",
        "-n",
        &f.namespace,
        "federation.fleet.dev/retry=1",
    ]);
    let done = f.wait_phase("fleet-retry", "Success", MINUTE);
    assert_eq!(done["lastHandledRetry"], "1");
    assert_eq!(done["jobUID"], failed["jobUID"]);
    for (t, before) in succeeded_before {
        assert_eq!(
            sub_job(&done, &t)["completionTime"],
            before["completionTime"],
            "{t} not re-run"
        );
    }
    assert_eq!(sub_job(&done, "CreateCert")["uid"], cert["uid"]);
}

#[test]
fn invalid_specs_are_refused_at_kubectl_apply() {
    let Some(env) = env() else { return };
    let f = Fixture::new(env, "invalid", &[]);
    let refused = |manifest: Value, needle: &str| {
        let out = env.apply(&manifest);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "accepted: {manifest}");
        assert!(stderr.contains(needle), "{needle:?} not in: {stderr}");
    };
    refused(
        f.enablement("bad-fleet", "Bad_Fleet", json!({})),
        "clusterGroupID",
    );
    refused(
        f.enablement(
            "bad-replicas",
            "e2e-bad",
            json!({"controlPlane": {"replicas": 8}}),
        ),
        "replicas",
    );
    let mut unknown = f.enablement("bad-field", "e2e-bad", json!({}));
    unknown["spec"]["notAField"] = json!(true);
    refused(unknown, "notAField");
    refused(
        f.enablement(&"n".repeat(41), "e2e-bad", json!({})),
        "40 characters",
    );

    refused(
        f.enablement(
            "generic-without-a-chart",
            "e2e-bad",
            json!({"chart": {"profile": "Generic", "name": "c", "version": "1"}}),
        ),
        "the Generic chart profile requires",
    );
    refused(
        f.enablement(
            "repository-only",
            "e2e-bad",
            json!({"chart": {"repository": "oci://registry.example/charts"}}),
        ),
        "the Generic chart profile requires",
    );

    // Selector and annotation injection (hardening item 15).
    refused(
        f.enablement(
            "comma-in-selector",
            "e2e-bad",
            json!({"controlPlane": {"nodeSelector": {"zone": "eu,kubernetes.io/hostname=x"}}}),
        ),
        "controlPlane.nodeSelector values must be label values",
    );
    refused(
        f.enablement(
            "bad-selector-key",
            "e2e-bad",
            json!({"controlPlane": {"nodeSelector": {"zone,x": "eu"}}}),
        ),
        "controlPlane.nodeSelector keys must be label keys",
    );
    refused(
        f.enablement(
            "bad-annotation-key",
            "e2e-bad",
            json!({"network": {"annotations": {"Example.com/lb": "x"}}}),
        ),
        "network.annotations keys must be annotation keys",
    );
    refused(
        f.enablement(
            "bad-secret-name",
            "e2e-bad",
            json!({"chart": {
                "repository": "oci://registry.example/charts", "name": "federation",
                "version": "1.2.3", "credentialsSecretRef": {"name": "Repo_Creds"},
            }}),
        ),
        "chart.credentialsSecretRef.name must be a DNS subdomain",
    );
    f.create(&f.enablement(
        "valid-names",
        "e2e-valid-names",
        json!({
            "controlPlane": {"nodeSelector": {
                "topology.kubernetes.io/zone": "eu-west-1a",
                "dedicated": "",
            }},
            "network": {
                "elbID": "69694819-67dc-44ac-ab6e-9b18087c5c4c",
                "annotations": {"service.beta.kubernetes.io/aws-load-balancer-type": "nlb, any value"},
            },
            "chart": {
                "repository": "oci://registry.example/charts", "name": "federation",
                "version": "1.2.3", "credentialsSecretRef": {"name": "repo-creds.v1"},
            },
        }),
    ));

    f.create(&f.enablement("fixed-fleet", "e2e-fixed", json!({})));
    refused(
        f.enablement("fixed-fleet", "e2e-other", json!({})),
        "clusterGroupID is immutable",
    );
}

#[test]
fn an_enablement_without_a_chart_gets_the_karmada_profile_which_needs_a_cluster_scoped_install() {
    let Some(env) = env() else { return };
    let f = Fixture::new(env, "karmada", &[]);
    let mut manifest = f.enablement("fleet-karmada", "e2e-karmada", json!({}));
    manifest["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("chart");
    f.create(&manifest);
    let failed = f.wait_phase("fleet-karmada", "Failed", MINUTE);
    assert_eq!(failed["reason"], "NotAllowed");
    let message = failed["message"].as_str().unwrap_or_default();
    assert!(message.contains("chart.clusterScoped: true"), "{message}");
    let stored = f.get("fleet-karmada").expect("stored");
    assert_eq!(
        stored["spec"]["chart"],
        json!({"clusterScoped": false, "installerClusterRole": "federation-chart-installer"}),
        "chart defaulted to {{}} by the API server, then its fields' defaults"
    );
    assert_eq!(sub_job(&failed, "CreateNode")["phase"], "Pending");
}

#[test]
fn the_controller_survives_kill_9_and_resumes_every_job() {
    let Some(env) = env() else { return };
    let mut f = Fixture::new(env, "crash", &["--simulated-delay-ms=700"]);
    let items: Vec<Value> = (0..20)
        .map(|i| {
            f.enablement(
                &format!("crash-{i:02}"),
                &format!("e2e-crash-{i:02}"),
                json!({}),
            )
        })
        .collect();
    f.create_all(&items);

    let mut history: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut observe = |f: &Fixture| {
        let list: Value =
            serde_json::from_str(&env.kubectl_ok(&["get", "fe", "-n", &f.namespace, "-o", "json"]))
                .expect("list");
        let mut successes = 0;
        for item in list["items"].as_array().expect("items") {
            let name = item["metadata"]["name"].as_str().expect("name").to_string();
            if item["status"]["phase"] == "Success" {
                successes += 1;
            }
            history
                .entry(name)
                .or_default()
                .push(item["status"].clone());
        }
        successes
    };
    for pause in [300u64, 900, 1500, 400] {
        std::thread::sleep(Duration::from_millis(pause));
        observe(&f);
        f.kill();
        observe(&f);
        f.start();
    }
    f.wait_until("all 20 to succeed", 2 * MINUTE, |f| observe(f) == 20);

    for (name, statuses) in &history {
        let last = statuses.last().expect("observed");
        let types: Vec<_> = last["subJobs"]
            .as_array()
            .expect("subJobs")
            .iter()
            .map(|s| s["type"].clone())
            .collect();
        assert_eq!(
            types,
            [
                "CreateNode",
                "CreateNetworkResource",
                "CreateCert",
                "InstallFederationChart"
            ],
            "{name}: each subjob once"
        );
        let job_uids: std::collections::BTreeSet<_> = statuses
            .iter()
            .filter_map(|s| s["jobUID"].as_str())
            .collect();
        assert_eq!(job_uids.len(), 1, "{name}: one job run across restarts");
        for pair in statuses.windows(2) {
            assert!(
                time(&pair[0]["updateTime"]) <= time(&pair[1]["updateTime"]),
                "{name}: updateTime ran backwards"
            );
            for t in [
                "CreateNode",
                "CreateNetworkResource",
                "CreateCert",
                "InstallFederationChart",
            ] {
                for field in ["startTime", "completionTime"] {
                    let (a, b) = (
                        time(&sub_job(&pair[0], t)[field]),
                        time(&sub_job(&pair[1], t)[field]),
                    );
                    assert!(
                        a.is_empty() || a <= b,
                        "{name}: {t}.{field} ran backwards ({a} -> {b})"
                    );
                }
            }
        }
    }
}

#[test]
fn deleting_a_successful_enablement_tears_it_down_and_removes_it() {
    let Some(env) = env() else { return };
    let f = Fixture::new(env, "delete", &["--simulated-delay-ms=100"]);
    f.create(&f.enablement("fleet-gone", "e2e-gone", json!({})));
    f.wait_phase("fleet-gone", "Success", MINUTE);
    let fe = f.get("fleet-gone").expect("exists");
    assert_eq!(
        fe["metadata"]["finalizers"],
        json!(["federation.fleet.dev/cleanup"])
    );
    env.kubectl_ok(&[
        "delete",
        "fe",
        "fleet-gone",
        "-n",
        &f.namespace,
        "--wait=false",
    ]);
    f.wait_until("the object to disappear", MINUTE, |f| {
        f.get("fleet-gone").is_none()
    });
}

#[test]
fn an_idle_controller_writes_nothing() {
    let Some(env) = env() else { return };
    let f = Fixture::new(env, "idle", &["--simulated-delay-ms=50"]);
    for i in 0..3 {
        f.create(&f.enablement(&format!("idle-{i}"), &format!("e2e-idle-{i}"), json!({})));
    }
    for i in 0..3 {
        f.wait_phase(&format!("idle-{i}"), "Success", MINUTE);
    }
    let versions = |f: &Fixture| -> Vec<String> {
        let list: Value =
            serde_json::from_str(&env.kubectl_ok(&["get", "fe", "-n", &f.namespace, "-o", "json"]))
                .expect("list");
        list["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| {
                i["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    };
    // Let the last status write land and its own watch event come back.
    std::thread::sleep(Duration::from_secs(2));
    let before = versions(&f);
    std::thread::sleep(Duration::from_secs(30));
    assert_eq!(versions(&f), before, "no writes for 30 s while idle");
}

/// `kubectl-fedprogress`, which the workspace's `fedprogress` crate builds (`CARGO_BIN_EXE_*`
/// names only this package's binaries). Built here, next to this package's binaries, so that a
/// run of this suite alone neither misses it nor runs a stale one.
fn fedprogress_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let controller = Path::new(env!("CARGO_BIN_EXE_federation-controller"));
            let profile_dir = controller.parent().expect("the binaries' directory");
            let target_dir = profile_dir.parent().expect("the target directory");
            let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
                Some("debug") => "dev",
                Some(name) => name,
                None => panic!("no profile in {}", profile_dir.display()),
            };
            let status = Command::new(env!("CARGO"))
                .args([
                    "build",
                    "--quiet",
                    "-p",
                    "fedprogress",
                    "--bin",
                    "kubectl-fedprogress",
                ])
                .args(["--profile", profile])
                .arg("--target-dir")
                .arg(target_dir)
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .stdin(Stdio::null())
                .status()
                .expect("cargo runs");
            assert!(status.success(), "cargo build -p fedprogress failed");
            profile_dir.join(format!(
                "kubectl-fedprogress{}",
                std::env::consts::EXE_SUFFIX
            ))
        })
        .clone()
}

#[test]
fn kubectl_fedprogress_follows_an_enablement_through_the_kubeconfig_until_success() {
    let Some(env) = env() else { return };
    let f = Fixture::new(env, "fedprogress", &["--simulated-delay-ms=1500"]);
    let fleet = format!("e2e-fedprogress-{}", std::process::id());
    let run = |binary: &Path, args: &[&str]| -> (i32, String, String) {
        let mut child = Command::new(binary)
            .args(args)
            .env("KUBECONFIG", &env.kubeconfig)
            .env_remove("FEDPROGRESS_SERVER")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the view starts");
        let deadline = Instant::now() + MINUTE;
        while child.try_wait().expect("try_wait").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("{} {args:?} still running after a minute", binary.display());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let out = child.wait_with_output().expect("output");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let plugin = fedprogress_binary();
    let plugin = plugin.as_path();

    f.create(&f.enablement("fleet-progress", &fleet, json!({})));
    // No --server, no -n: found by its fleet across all namespaces, then watched.
    let (code, stdout, stderr) = run(plugin, &[&fleet, "--watch"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let trees: Vec<&str> = stdout.split("\n\n").collect();
    let title = format!(
        "{fleet} ({}/fleet-progress)  CreateFederationContainer",
        f.namespace
    );
    assert!(
        trees.len() > 1 && !trees[0].contains("4/4  Success"),
        "followed live: {stdout}"
    );
    let last = trees.last().expect("a tree");
    assert!(
        last.starts_with(&format!("{title}  4/4  Success")),
        "{stdout}"
    );
    assert!(
        last.contains("└─ ✓ InstallFederationChart  Success"),
        "{stdout}"
    );

    // Once, in its namespace: the cluster says attempts (backoffLimit 1: 2 at most).
    let (code, stdout, _) = run(plugin, &[&fleet, "-n", &f.namespace]);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.starts_with(&format!("{title}  4/4  Success")),
        "{stdout}"
    );
    assert_eq!(stdout.matches("attempt 1/2").count(), 4, "{stdout}");

    let (code, _, stderr) = run(plugin, &["e2e-no-such-fleet", "-n", &f.namespace]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains(&format!(
            "no FederationEnablement has spec.clusterGroupID \"e2e-no-such-fleet\"; searched namespace \"{}\"",
            f.namespace
        )),
        "{stderr}"
    );
}

/// A test API server of this test's own (`tests/testenv/`), which it may kill and start again
/// without disturbing the tests that share the suite's server. Stopped on drop.
struct PrivateApiServer {
    env: &'static Env,
    state: PathBuf,
}

impl PrivateApiServer {
    const TESTENV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/testenv/testenv.sh");

    /// None (skip) unless the suite runs on the project's own test server.
    fn start() -> Option<PrivateApiServer> {
        env()?;
        if std::env::var("FEDERATION_E2E_TESTENV").as_deref() != Ok("1") {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but the suite does not run on the project's test API server"
            );
            eprintln!(
                "\n!!!!! SKIPPED: killing and restarting the API server needs the project's own \
                 test server (bash scripts/test.sh) !!!!!\n"
            );
            return None;
        }
        let out = Command::new("bash")
            .args([
                Self::TESTENV,
                "up",
                "--watch-pid",
                &std::process::id().to_string(),
            ])
            .stderr(Stdio::inherit())
            .output()
            .expect("testenv.sh runs");
        assert!(out.status.success(), "a private test API server starts");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let kubeconfig = PathBuf::from(stdout.lines().last().expect("kubeconfig path").trim());
        let state = kubeconfig.parent().expect("state dir").to_path_buf();
        let kubectl = std::env::var_os("FEDERATION_E2E_KUBECTL")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("kubectl"));
        let env = Box::leak(Box::new(Env::prepare(kubeconfig, kubectl)));
        Some(PrivateApiServer { env, state })
    }

    /// `kill -9` of the API server (etcd keeps its data), then a start after `down_for`, in the
    /// background: wait on the child for the server to be back.
    fn crash_and_restart(&self, down_for: Duration) -> Child {
        Command::new("bash")
            .args([Self::TESTENV, "restart-apiserver", "--down-for"])
            .arg(down_for.as_secs().to_string())
            .arg(&self.state)
            .stdout(Stdio::null())
            .spawn()
            .expect("testenv.sh restart-apiserver runs")
    }
}

impl Drop for PrivateApiServer {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .args([Self::TESTENV, "down"])
            .arg(&self.state)
            .status();
    }
}

#[test]
fn every_job_resumes_after_the_api_server_is_killed_and_restarted() {
    let Some(server) = PrivateApiServer::start() else {
        return;
    };
    // The chart step takes long enough that every job is still in it when the API server goes,
    // however slow a loaded machine is to get there.
    let mut f = Fixture::new(
        server.env,
        "apirestart",
        &[
            "--simulated-delay-ms=1000",
            "--simulated-delay-for=InstallFederationChart=12000",
            "--watch-stall-seconds=3",
        ],
    );
    let names: Vec<String> = (0..10).map(|i| format!("restart-{i}")).collect();
    let items: Vec<Value> = names
        .iter()
        .map(|name| f.enablement(name, &format!("e2e-{name}"), json!({})))
        .collect();
    f.create_all(&items);
    let succeeded_subjobs = |status: &Value| {
        status["subJobs"]
            .as_array()
            .map(|a| a.iter().filter(|s| s["phase"] == "Success").count())
            .unwrap_or(0)
    };
    f.wait_until("every job to be part-way", MINUTE, |f| {
        let statuses = f.statuses();
        names
            .iter()
            .all(|n| statuses.get(n).is_some_and(|s| succeeded_subjobs(s) >= 1))
    });
    let statuses = f.statuses();
    let job_uids: Vec<Value> = names
        .iter()
        .map(|n| statuses[n]["jobUID"].clone())
        .collect();
    assert!(
        names.iter().any(|n| statuses[n]["phase"] == "Running"),
        "some jobs are still running when the API server goes"
    );

    let mut restart = server.crash_and_restart(Duration::from_secs(8));
    // Down for longer than --watch-stall-seconds: the replica reports itself unhealthy.
    f.wait_until(
        "/healthz to fail while the watches fail",
        Duration::from_secs(8),
        |f| {
            f.http_get("/healthz")
                .is_ok_and(|(status, _)| status == 503)
        },
    );
    let (_, why) = f.http_get("/healthz").expect("healthz answers");
    assert!(
        why.to_string().contains("FederationEnablement"),
        "/healthz names the failing watch: {why}"
    );
    assert!(
        restart.wait().expect("restart finishes").success(),
        "the API server is back"
    );

    f.wait_until(
        "every job to succeed within 30 s of the API server's return",
        Duration::from_secs(30),
        |f| {
            let statuses = f.statuses();
            names
                .iter()
                .all(|n| statuses.get(n).is_some_and(|s| s["phase"] == "Success"))
        },
    );
    f.wait_until("/healthz to pass again", Duration::from_secs(10), |f| {
        f.http_get("/healthz")
            .is_ok_and(|(status, _)| status == 200)
    });
    assert!(
        f.controller
            .as_mut()
            .expect("running")
            .try_wait()
            .expect("status")
            .is_none(),
        "the same controller process recovered: no restart was needed"
    );
    for (name, job_uid) in names.iter().zip(&job_uids) {
        let status = f.status(name);
        assert_eq!(&status["jobUID"], job_uid, "{name}: the same run went on");
        let sub_jobs = status["subJobs"].as_array().expect("subJobs");
        assert_eq!(sub_jobs.len(), 4, "{name}: each subjob once");
        for sub_job in sub_jobs {
            assert_eq!(
                sub_job["attempts"], 1,
                "{name}: {} ran once, nothing duplicated",
                sub_job["type"]
            );
        }
    }
}
