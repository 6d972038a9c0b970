//! Scale: 1,000 FederationEnablements driven to Success by the real controller binary with
//! simulated executors, on the project's test API server (or `FEDERATION_E2E_KUBECONFIG`).
//!
//! The enablements are created first; the clock starts when the controller starts. Reports the
//! time until all succeed, status writes per enablement (the controller's own counter), every
//! write the controller made (the API server's own `apiserver_request_total`, over the run), the
//! controller's peak RSS and the API server's CPU share, and the progress route's latency while
//! it runs; beside them, measured in the same run with the controller and its watches still
//! running, the server's raw rate of status patches from a tight client loop, the physical limit
//! for this work. Ends with `ratio` and `figure` lines.
//!
//! `cargo bench --bench scale` (options: `-- --enablements 1000 --concurrency 16 --delay-ms 50`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use federation_controller::api::FederationEnablement;
use futures::{StreamExt, stream};
use kube::api::{Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde_json::json;

mod support;
use support::argument;

/// The API server: the caller's, or a fresh test environment stopped at the end.
struct Server {
    kubeconfig: PathBuf,
    started: bool,
}

impl Server {
    fn get() -> Server {
        if let Some(kubeconfig) = std::env::var_os("FEDERATION_E2E_KUBECONFIG") {
            return Server {
                kubeconfig: kubeconfig.into(),
                started: false,
            };
        }
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/testenv/testenv.sh");
        let out = Command::new("bash")
            .args([script, "up", "--watch-pid", &std::process::id().to_string()])
            .stderr(Stdio::inherit())
            .output()
            .expect("testenv.sh runs");
        assert!(out.status.success(), "the test API server did not start");
        let stdout = String::from_utf8_lossy(&out.stdout);
        Server {
            kubeconfig: stdout
                .lines()
                .last()
                .expect("kubeconfig path")
                .trim()
                .into(),
            started: true,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.started {
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/testenv/testenv.sh");
            let _ = Command::new("bash")
                .args([script, "down"])
                .arg(&self.kubeconfig)
                .status();
        }
    }
}

fn enablement(namespace: &str, i: u64) -> FederationEnablement {
    serde_json::from_value(json!({
        "apiVersion": "federation.fleet.dev/v1alpha1",
        "kind": "FederationEnablement",
        "metadata": {"name": format!("scale-{i:04}"), "namespace": namespace},
        "spec": {"clusterGroupID": format!("scale-{i:04}"),
            "chart": {"repository": "oci://registry.example/charts", "name": "federation", "version": "1.0.0"}},
    }))
    .expect("enablement")
}

fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(addr)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

/// The controller binary, run under `FEDERATION_BENCH_CONTROLLER_WRAPPER` when it is set (a
/// profiler that runs its argument, e.g. `heaptrack -o /tmp/scale`); the process is then the
/// wrapper's, so the controller's RSS and CPU are not reported: read the profiler's figures.
fn controller_command() -> Command {
    let binary = env!("CARGO_BIN_EXE_federation-controller");
    let wrapper = wrapper();
    let mut words = wrapper.split_whitespace();
    match words.next() {
        Some(program) => {
            let mut command = Command::new(program);
            command.args(words).arg(binary);
            command
        }
        None => Command::new(binary),
    }
}

/// How long the bench watches the server's write count once every job is done.
const IDLE: Duration = Duration::from_secs(5);

fn wrapper() -> String {
    std::env::var("FEDERATION_BENCH_CONTROLLER_WRAPPER").unwrap_or_default()
}

fn wrapped() -> bool {
    !wrapper().trim().is_empty()
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted
        .get(((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

/// Successful writes (POST, PUT, PATCH, APPLY (server-side apply), DELETE answered 2xx) the API
/// server has served, by its own `apiserver_request_total`; None when it does not say.
async fn server_writes(client: &Client) -> Option<f64> {
    server_requests(client, "2").await
}

/// Writes the API server refused as conflicts (409: a precondition on a stale resourceVersion).
async fn server_conflicts(client: &Client) -> Option<f64> {
    server_requests(client, "409").await
}

/// Writes answered with a code starting with `code`, by `apiserver_request_total`.
async fn server_requests(client: &Client, code: &str) -> Option<f64> {
    let request = http::Request::get("/metrics").body(Vec::new()).ok()?;
    let text = client.request_text(request).await.ok()?;
    let mut total = 0.0;
    for line in text
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
    {
        let (labels, value) = line.rsplit_once(' ')?;
        let mutating = ["POST", "PUT", "PATCH", "APPLY", "DELETE"]
            .iter()
            .any(|verb| labels.contains(&format!("verb=\"{verb}\"")));
        if mutating && labels.contains(&format!("code=\"{code}")) {
            total += value.parse::<f64>().ok()?;
        }
    }
    Some(total)
}

/// CPU seconds (user + system) process `pid` has used so far; None when /proc does not say.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command (which may hold spaces) start after its closing parenthesis.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// The test API server's process, when this bench started it (its state holds the pid).
fn server_pid(server: &Server) -> Option<u32> {
    if !server.started {
        return None;
    }
    let state = server.kubeconfig.parent()?;
    std::fs::read_to_string(state.join("apiserver.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The physical limit: status merge patches (the kind of status write the controller makes)
/// from a tight loop, 16 objects of namespace `namespace` patched at once for 5 s; patches per
/// second, and how many.
async fn raw_patch_rate(client: &Client, namespace: &str) -> (f64, u64) {
    let api: Api<FederationEnablement> = Api::namespaced(client.clone(), namespace);
    const PROBES: u64 = 16;
    for p in 0..PROBES {
        api.create(&PostParams::default(), &enablement(namespace, 9000 + p))
            .await
            .expect("probe object");
    }
    let patches = {
        let deadline = Instant::now() + Duration::from_secs(5);
        let started = Instant::now();
        let loops = (0..PROBES).map(|p| {
            let api = api.clone();
            tokio::spawn(async move {
                let name = format!("scale-{:04}", 9000 + p);
                let mut done = 0u64;
                while Instant::now() < deadline {
                    // The kind of write the controller makes of a status: a merge patch.
                    let patch = json!({"status": {"message": format!("patch {done}")}});
                    if api
                        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                        .is_ok()
                    {
                        done += 1;
                    }
                }
                done
            })
        });
        let mut total = 0;
        for done in futures::future::join_all(loops).await {
            total += done.expect("patch loop");
        }
        (total as f64 / started.elapsed().as_secs_f64(), total)
    };
    for p in 0..PROBES {
        api.delete(&format!("scale-{:04}", 9000 + p), &Default::default())
            .await
            .expect("probe deleted");
    }

    patches
}

#[tokio::main]
async fn main() {
    let count: u64 = argument("--enablements", 1000);
    let concurrency: u64 = argument("--concurrency", 16);
    let delay_ms: u64 = argument("--delay-ms", 50);
    let server = Server::get();
    let config = Config::from_custom_kubeconfig(
        Kubeconfig::read_from(&server.kubeconfig).expect("kubeconfig"),
        &KubeConfigOptions::default(),
    )
    .await
    .expect("config");
    let client = Client::try_from(config).expect("client");
    let crds = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crds/federationenablements.yaml"
    );
    let crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
        serde_yaml::from_str(&std::fs::read_to_string(crds).expect("crd")).expect("crd yaml");
    let crd_api: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    crd_api
        .patch(
            "federationenablements.federation.fleet.dev",
            &PatchParams::apply("scale-bench").force(),
            &Patch::Apply(&crd),
        )
        .await
        .expect("CRD applied");
    tokio::time::sleep(Duration::from_secs(2)).await;

    let namespace = format!("scale-{}", std::process::id());
    let api: Api<FederationEnablement> = Api::namespaced(client.clone(), &namespace);

    // Every enablement exists before the controller starts: the clock below measures the
    // controller alone, its first list included.
    let creating = Instant::now();
    stream::iter(0..count)
        .map(|i| {
            let api = api.clone();
            let namespace = namespace.clone();
            async move {
                api.create(&PostParams::default(), &enablement(&namespace, i))
                    .await
            }
        })
        .buffer_unordered(32)
        .for_each(|result| {
            result.expect("created");
            futures::future::ready(())
        })
        .await;
    let created = creating.elapsed();
    let server_pid = server_pid(&server);
    let writes_before = server_writes(&client).await;
    let conflicts_before = server_conflicts(&client).await;
    let cpu_before = server_pid.and_then(cpu_seconds);

    let addr: SocketAddr = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let started = Instant::now();
    let mut controller = controller_command()
        .args([
            "run",
            "--executors=simulated",
            "--auth=none",
            "--log-level=warn",
        ])
        .args(["--simulated-delay-ms", &delay_ms.to_string()])
        .args(["--concurrency", &concurrency.to_string()])
        .args(["--namespace", &namespace, "--http-addr", &addr.to_string()])
        .arg("--allowed-chart-repositories=oci://registry.example/charts")
        .env("KUBECONFIG", &server.kubeconfig)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("controller starts");
    let controller_cpu_before = cpu_seconds(controller.id());
    while http_get(addr, "/readyz").map_or(true, |r| !r.starts_with("HTTP/1.1 200")) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The progress route, polled while the controller works.
    let polling = Arc::new(AtomicBool::new(true));
    let poller = {
        let polling = polling.clone();
        std::thread::spawn(move || {
            let mut latencies = Vec::new();
            let mut i = 0u64;
            while polling.load(Ordering::Relaxed) {
                let started = Instant::now();
                let path = format!(
                    "/v1/clustergroups/scale-{:04}/federations/progress",
                    i % count
                );
                if http_get(addr, &path).is_ok() {
                    latencies.push(started.elapsed());
                }
                i += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            latencies
        })
    };

    // Counted from the controller's own cache (its /metrics), not by listing 1,000 objects
    // from the server many times a second, which would load the server under test.
    let success_line = "federation_enablements{phase=\"Success\"} ";
    loop {
        let metrics = http_get(addr, "/metrics").unwrap_or_default();
        let done: u64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix(success_line))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if done >= count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all_done = started.elapsed();
    let writes_done = server_writes(&client).await;
    let conflicts = match (conflicts_before, server_conflicts(&client).await) {
        (Some(before), Some(after)) => Some(after - before),
        _ => None,
    };
    let controller_writes = match (writes_before, writes_done) {
        (Some(before), Some(after)) => Some(after - before),
        _ => None,
    };
    let server_cpu_seconds = match (cpu_before, server_pid.and_then(cpu_seconds)) {
        (Some(before), Some(after)) => Some(after - before),
        _ => None,
    };
    let server_cpu = server_cpu_seconds.map(|cpu| cpu / all_done.as_secs_f64());
    // Under a wrapper the process is the wrapper's, not the controller's.
    let controller_cpu = match (controller_cpu_before, cpu_seconds(controller.id())) {
        (Some(before), Some(after)) if !wrapped() => {
            Some((after - before) / all_done.as_secs_f64())
        }
        _ => None,
    };
    // Every job is done and nothing changes: a level-triggered controller writes nothing.
    tokio::time::sleep(IDLE).await;
    let idle_writes = match (writes_done, server_writes(&client).await) {
        (Some(before), Some(after)) => Some(after - before),
        _ => None,
    };
    polling.store(false, Ordering::Relaxed);
    let mut latencies = poller.join().expect("poller");
    latencies.sort();

    let metrics = http_get(addr, "/metrics").expect("metrics");
    let writes: f64 = metrics
        .lines()
        .find(|l| l.starts_with("federation_status_writes_total "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no status write counter in /metrics:\n{metrics}"));
    let rss = (!wrapped()).then(|| peak_rss_kib(controller.id()) as f64 / 1024.0);
    // The server's limit, measured now, with the controller and its watches still running (on
    // objects of another namespace, so that it has nothing to do with them).
    let probe_cpu_before = server_pid.and_then(cpu_seconds);
    let (patches, probe_patches) = raw_patch_rate(&client, &format!("{namespace}-probe")).await;
    // The server's CPU per raw patch (the probe's 32 creates and deletes included), and per
    // controller write: what one write costs it in each case.
    let cpu_per_raw_patch = match (probe_cpu_before, server_pid.and_then(cpu_seconds)) {
        (Some(before), Some(after)) if probe_patches > 0 => {
            Some((after - before) / probe_patches as f64)
        }
        _ => None,
    };
    let cpu_per_controller_write = match (server_cpu_seconds, controller_writes) {
        (Some(cpu), Some(writes)) if writes > 0.0 => Some(cpu / writes),
        _ => None,
    };
    if wrapped() {
        // Let the profiler see the controller end and write its report.
        let _ = Command::new("pkill")
            .args(["-TERM", "-P", &controller.id().to_string()])
            .status();
    } else {
        let _ = controller.kill();
    }
    let _ = controller.wait();

    println!(
        "scale: {count} FederationEnablements, simulated executors ({delay_ms} ms per subjob), --concurrency {concurrency}"
    );
    println!("  created in                      {:>10.2?}", created);
    println!(
        "  all Success after               {:>10.2?}  ({:.0} enablements/s)",
        all_done,
        count as f64 / all_done.as_secs_f64()
    );
    println!(
        "  status writes per enablement    {:>10.2}",
        writes / count as f64
    );
    if let Some(rss) = rss {
        println!("  controller peak RSS             {rss:>10.1} MiB");
    }
    println!(
        "  progress route while running    p50 {:.2?}  p99 {:.2?}  ({} requests)",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.len()
    );
    println!(
        "  raw status patches (16 objects) {:>10.0} /s   (the server's limit, the controller running)",
        patches
    );
    println!(
        "  status writes needed            {:>10.0} /s   (writes per enablement x enablements / time)",
        writes / all_done.as_secs_f64()
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if let Some(all) = controller_writes {
        println!(
            "  controller writes (the server's count) {:>6.0} /s   ({:.2} per enablement: finalizer, status, owned objects)",
            all / all_done.as_secs_f64(),
            all / count as f64
        );
    }
    if let Some(cpu) = server_cpu {
        println!(
            "  API server CPU during the run   {:>10.0}% of one core ({cores} cores)",
            cpu * 100.0
        );
    }
    if let Some(all) = controller_writes {
        println!(
            "ratio writes/raw {:.2}",
            (all / all_done.as_secs_f64()) / patches
        );
        println!(
            "figure controller_writes_per_second {:.0} 1/s",
            all / all_done.as_secs_f64()
        );
    }
    println!("figure raw_status_patches_per_second {patches:.0} 1/s");
    println!("figure all_success_seconds {:.1} s", all_done.as_secs_f64());
    if let Some(rss) = rss {
        println!("figure controller_peak_rss {rss:.1} MiB");
    }
    println!(
        "figure progress_p99_during_run {:.2} ms",
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0
    );
    if let Some(cpu) = server_cpu {
        println!("figure apiserver_cpu {:.0} %", cpu * 100.0);
    }
    if let Some(cpu) = controller_cpu {
        println!("figure controller_cpu {:.0} %", cpu * 100.0);
    }
    if let (Some(write), Some(raw)) = (cpu_per_controller_write, cpu_per_raw_patch) {
        println!(
            "figure apiserver_cpu_per_controller_write {:.2} ms",
            write * 1000.0
        );
        println!("figure apiserver_cpu_per_raw_patch {:.2} ms", raw * 1000.0);
    }
    if let Some(conflicts) = conflicts {
        println!("figure controller_write_conflicts {conflicts:.0} writes");
    }
    if let Some(idle) = idle_writes {
        println!(
            "figure controller_writes_while_idle {idle:.0} writes_in_{}s",
            IDLE.as_secs()
        );
    }
    println!("figure cores {cores} 1");
}
