//! Live streams (`?watch=true`) on one replica: the memory and CPU that 1,000 concurrent progress
//! streams cost, idle and under a steady rate of status changes; what list streams add; and that
//! clients which never read leave the other streams' latency and the server's memory alone.
//!
//! The server is this binary run again as a child process (`--serve`): the real router and
//! `http::serve` over a FederationCache of enablements (Running, so no stream ends), and a thread
//! (`change-feed`, standing in for the watch) that applies status changes to the cache at the
//! rates the parent writes to the child's stdin. The parent is the clients. The server's RSS and
//! CPU time come from `/proc/<pid>/status` and `/proc/<pid>/stat`, so they are the replica's own;
//! the CPU the rest of the machine used meanwhile is shown too, to spot a disturbed run. Every
//! change carries the wall-clock time at which it was applied (in CreateNetworkResource's
//! `extendParam`, which both streams show); a client subtracts it from the time at which it
//! parsed the event, so latency is change applied to the cache -> event parsed by the client, on
//! one machine's clock.
//!
//! Scenarios: 1 the cache loaded, no streams; 2 one progress stream per enablement, idle; 3 the
//! same under each `--rates` of changes, each to a random watched enablement; 4 `--lists` of the
//! streams replaced by list streams, under the same rates; 5 `--slow` more clients on `--hot`
//! fleets of their own that never read: their hot fleets first change at `--hot-rate` until the
//! kernel's buffers of those connections are full, then the load is 3's top rate, a tenth of it
//! on the hot fleets; at the end they read, to show what they skipped.
//!
//! `cargo bench --bench streams` (options: `-- --streams 1000 --seconds 12 --idle-seconds 15
//! --rates 100,1000 --lists 10,100 --slow 100 --hot 10 --hot-rate 2000`); about 2.5 minutes.
//! Needs `ulimit -n` of about 1.2 × the streams; it says so if the limit is lower.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use federation_controller::api::{FederationEnablement, JobPhase, SubJobPhase, SubJobType};
use federation_controller::clock::SystemClock;
use federation_controller::http::{
    self, AppState, Authorizer, FederationCache, ServeConfig, router,
};
use federation_controller::metrics::Metrics;
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::runtime::watcher;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

mod support;
use support::{argument, enablement};

/// The `extendParam` key that carries the time a change was applied, in nanoseconds since 1970.
const MARKER: &str = "benchSentAtNanos";
/// Linux reports CPU time in /proc in USER_HZ ticks, 100 a second on every architecture.
const USER_HZ: f64 = 100.0;
/// The name of the server's thread that applies the changes (it stands in for the watch).
const FEED_THREAD: &str = "change-feed";
/// The receive buffer of a client that never reads, so that its stream stalls soon.
const SLOW_RECEIVE_BUFFER: u32 = 4096;

fn arguments<T: FromStr>(name: &str, default: &str) -> Vec<T> {
    argument(name, default.to_string())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect()
}

fn main() {
    if std::env::args().any(|a| a == "--serve") {
        serve(argument("--port", 0), argument("--enablements", 0));
    } else {
        measure_all();
    }
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

// ---- the server (child process) ----

/// Enablement `i` of the benchmarks' fixture, but Running (a finished job would end its
/// streams): three subjobs done and the chart installing.
fn running(i: usize) -> FederationEnablement {
    let mut fe = enablement(i);
    if let Some(status) = fe.status.as_mut() {
        status.phase = Some(JobPhase::Running);
        status.reason = Some("Running".to_string());
        status.completion_time = None;
        status.progress = Some("3/4".to_string());
        status.current_sub_jobs = Some("InstallFederationChart".to_string());
        for step in &mut status.sub_jobs {
            if step.type_ == SubJobType::InstallFederationChart {
                step.phase = SubJobPhase::Running;
                step.completion_time = None;
            }
        }
    }
    fe
}

/// `template` with a new status update at `at`, which the marker carries.
fn changed(template: &FederationEnablement, at: jiff::Timestamp) -> FederationEnablement {
    let mut fe = template.clone();
    if let Some(status) = fe.status.as_mut() {
        status.update_time = Some(MicroTime(at));
        for step in &mut status.sub_jobs {
            if step.type_ == SubJobType::CreateNetworkResource {
                step.extend_param
                    .insert(MARKER.to_string(), at.as_nanosecond().to_string());
            }
        }
    }
    fe
}

/// `per_second` changes, each to a random enablement of `first..end`.
#[derive(Clone, Copy, PartialEq, Default)]
struct Load {
    per_second: f64,
    first: usize,
    end: usize,
}

/// What the control channel sets and reads; the driver thread applies the changes.
struct Changes {
    /// Two independent loads: the readers' and the hot fleets'.
    loads: Mutex<[Load; 2]>,
    /// Told when `loads` changes.
    changed: Condvar,
    applied: AtomicU64,
    /// Per enablement: the marker of its last change, and how many changes it had.
    last: Mutex<Vec<(u64, u64)>>,
}

impl Changes {
    fn drive(&self, cache: &FederationCache, templates: &[FederationEnablement]) {
        struct Paced {
            load: Load,
            since: Instant,
            done: u64,
        }
        let mut paced: Vec<Paced> = (0..2)
            .map(|_| Paced {
                load: Load::default(),
                since: Instant::now(),
                done: 0,
            })
            .collect();
        let mut random = 0x9E37_79B9_7F4A_7C15u64;
        let mut wake_at: Option<Instant> = None;
        loop {
            // Asleep until the next change is due or the loads change; no ticking while idle.
            let loads = {
                let guard = self.loads.lock().expect("loads");
                let guard = match wake_at {
                    None => self.changed.wait(guard).expect("loads"),
                    Some(at) => {
                        let wait = at.saturating_duration_since(Instant::now());
                        self.changed.wait_timeout(guard, wait).expect("loads").0
                    }
                };
                *guard
            };
            wake_at = None;
            for (p, load) in paced.iter_mut().zip(loads) {
                if p.load != load {
                    *p = Paced {
                        load,
                        since: Instant::now(),
                        done: 0,
                    };
                }
                if load.per_second <= 0.0 || load.first >= load.end {
                    continue;
                }
                // Paced by the clock: the rate holds however late a wake-up is.
                let due = (load.per_second * p.since.elapsed().as_secs_f64()) as u64;
                while p.done < due {
                    random ^= random << 13;
                    random ^= random >> 7;
                    random ^= random << 17;
                    let target = load.first + (random % (load.end - load.first) as u64) as usize;
                    let at = jiff::Timestamp::now();
                    cache.apply(watcher::Event::Apply(changed(&templates[target], at)));
                    let mut last = self.last.lock().expect("last");
                    last[target] = (at.as_nanosecond() as u64, last[target].1 + 1);
                    p.done += 1;
                    self.applied.fetch_add(1, Ordering::Relaxed);
                }
                let next = p.since + Duration::from_secs_f64((p.done + 1) as f64 / load.per_second);
                wake_at = Some(wake_at.map_or(next, |w| w.min(next)));
            }
        }
    }

    /// One line in, one line out: `load <slot> <per second> <first> <end>`, `applied`,
    /// `last <first> <end>` (marker:count per enablement).
    fn answer(&self, line: &str) -> String {
        let words: Vec<&str> = line.split_whitespace().collect();
        let number = |word: &str| word.parse::<usize>().expect("a number");
        match words.as_slice() {
            ["load", slot, per_second, first, end] => {
                self.loads.lock().expect("loads")[number(slot)] = Load {
                    per_second: per_second.parse().expect("a rate"),
                    first: number(first),
                    end: number(end),
                };
                self.changed.notify_all();
                "ok".to_string()
            }
            ["applied"] => self.applied.load(Ordering::Relaxed).to_string(),
            ["last", first, end] => self.last.lock().expect("last")[number(first)..number(end)]
                .iter()
                .map(|(marker, count)| format!("{marker}:{count}"))
                .collect::<Vec<_>>()
                .join(" "),
            _ => format!("unknown command {line:?}"),
        }
    }
}

fn serve(port: u16, enablements: usize) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let templates: Vec<FederationEnablement> = (0..enablements).map(running).collect();
    let cache = FederationCache::from_objects(templates.iter().cloned());
    let state = Arc::new(AppState {
        cache: cache.clone(),
        auth: Authorizer::None,
        metrics: Arc::new(Metrics::new()),
        clock: Arc::new(SystemClock),
        health: Default::default(),
    });
    let config = ServeConfig {
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        tls: None,
        reload_every: http::TLS_RELOAD_INTERVAL,
    };
    runtime.spawn(async move {
        http::serve(config, router(state), std::future::pending())
            .await
            .expect("serve")
    });
    let changes = Arc::new(Changes {
        loads: Mutex::default(),
        changed: Condvar::new(),
        applied: AtomicU64::new(0),
        last: Mutex::new(vec![(0, 0); enablements]),
    });
    let driver = changes.clone();
    std::thread::Builder::new()
        .name(FEED_THREAD.to_string())
        .spawn(move || driver.drive(&cache, &templates))
        .expect("the change feed starts");
    let mut out = std::io::stdout().lock();
    // Until the parent closes stdin (or dies).
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        writeln!(out, "{}", changes.answer(&line)).expect("stdout");
        out.flush().expect("stdout");
    }
}

// ---- the clients (parent process) ----

fn proc_field(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// User plus system CPU time, in seconds, from a `/proc/.../stat` file.
fn cpu_seconds_of(stat_file: &str) -> f64 {
    let stat = std::fs::read_to_string(stat_file).unwrap_or_default();
    // After the `(comm)` field: state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    (ticks(11).unwrap_or(0) + ticks(12).unwrap_or(0)) as f64 / USER_HZ
}

fn cpu_seconds(pid: u32) -> f64 {
    cpu_seconds_of(&format!("/proc/{pid}/stat"))
}

/// CPU time of a process's threads named `name`.
fn thread_cpu_seconds(pid: u32, name: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0.0;
    };
    tasks
        .flatten()
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm")).is_ok_and(|c| c.trim() == name)
        })
        .map(|task| cpu_seconds_of(&task.path().join("stat").to_string_lossy()))
        .sum()
}

/// CPU time the whole machine has been busy (not idle, not waiting for I/O), in seconds.
fn machine_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|v| v.parse().ok())
        .collect();
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    (ticks.iter().sum::<u64>() - idle) as f64 / USER_HZ
}

fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Bytes the kernel holds for the connections of `client_ports`: (in the server's send
/// queues, in the clients' receive queues).
fn queued_bytes(server_port: u16, client_ports: &HashSet<u16>) -> (u64, u64) {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let port = |field: &str| {
        field
            .rsplit(':')
            .next()
            .and_then(|p| u16::from_str_radix(p, 16).ok())
    };
    let (mut sending, mut receiving) = (0, 0);
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(remote), Some((tx, rx))) = (
            fields.get(1).and_then(|f| port(f)),
            fields.get(2).and_then(|f| port(f)),
            fields.get(4).and_then(|f| f.split_once(':')),
        ) else {
            continue;
        };
        let hex = |v: &str| u64::from_str_radix(v, 16).unwrap_or(0);
        if local == server_port && client_ports.contains(&remote) {
            sending += hex(tx);
        }
        if remote == server_port && client_ports.contains(&local) {
            receiving += hex(rx);
        }
    }
    (sending, receiving)
}

/// The server process and its control channel.
struct Server {
    child: Child,
    control: ChildStdin,
    answers: BufReader<ChildStdout>,
    addr: SocketAddr,
}

impl Server {
    fn start(enablements: usize) -> Server {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let mut child = Command::new(std::env::current_exe().expect("this binary"))
            .args(["--serve", "--port", &addr.port().to_string()])
            .args(["--enablements", &enablements.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the server starts");
        let control = child.stdin.take().expect("stdin");
        let answers = BufReader::new(child.stdout.take().expect("stdout"));
        let server = Server {
            child,
            control,
            answers,
            addr,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "the server did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn ask(&mut self, command: &str) -> String {
        writeln!(self.control, "{command}").expect("control");
        self.control.flush().expect("control");
        let mut answer = String::new();
        self.answers.read_line(&mut answer).expect("answer");
        answer.trim().to_string()
    }

    fn load(&mut self, slot: usize, per_second: f64, fleets: std::ops::Range<usize>) {
        let answer = self.ask(&format!(
            "load {slot} {per_second} {} {}",
            fleets.start, fleets.end
        ));
        assert_eq!(answer, "ok");
    }

    fn applied(&mut self) -> u64 {
        self.ask("applied").parse().expect("applied")
    }

    /// Per enablement of `fleets`: (marker of its last change, changes so far).
    fn last(&mut self, fleets: std::ops::Range<usize>) -> Vec<(u64, u64)> {
        self.ask(&format!("last {} {}", fleets.start, fleets.end))
            .split_whitespace()
            .map(|pair| {
                let (marker, count) = pair.split_once(':').expect("marker:count");
                (
                    marker.parse().expect("marker"),
                    count.parse().expect("count"),
                )
            })
            .collect()
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn rss_mib(&self) -> f64 {
        proc_field(self.pid(), "VmRSS:") as f64 / 1024.0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Latency histogram in microseconds: exact below 64 µs, then 32 buckets per power of two (3%).
const BUCKETS: usize = 64 + 40 * 32;

fn bucket(micros: u64) -> usize {
    if micros < 64 {
        return micros as usize;
    }
    let exponent = 63 - micros.leading_zeros() as usize;
    let sub = (micros >> (exponent - 5)) as usize & 31;
    (64 + (exponent - 6) * 32 + sub).min(BUCKETS - 1)
}

fn bucket_middle(index: usize) -> Duration {
    if index < 64 {
        return Duration::from_nanos(index as u64 * 1000 + 500);
    }
    let exponent = (index - 64) / 32 + 6;
    let low = ((32 + (index - 64) % 32) as u64) << (exponent - 5);
    let width = 1u64 << (exponent - 5);
    Duration::from_nanos((low * 2 + width) * 500)
}

/// What the clients of one kind saw since the last reset.
struct Meter {
    events: AtomicU64,
    heartbeats: AtomicU64,
    histogram: Vec<AtomicU64>,
}

struct Reading {
    events: u64,
    heartbeats: u64,
    p50: Duration,
    p99: Duration,
}

impl Meter {
    fn new() -> Arc<Meter> {
        Arc::new(Meter {
            events: AtomicU64::new(0),
            heartbeats: AtomicU64::new(0),
            histogram: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    fn record(&self, latency_micros: u64) {
        self.events.fetch_add(1, Ordering::Relaxed);
        self.histogram[bucket(latency_micros)].fetch_add(1, Ordering::Relaxed);
    }

    fn reset(&self) {
        self.events.store(0, Ordering::Relaxed);
        self.heartbeats.store(0, Ordering::Relaxed);
        for b in &self.histogram {
            b.store(0, Ordering::Relaxed);
        }
    }

    fn read(&self) -> Reading {
        let counts: Vec<u64> = self
            .histogram
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        let at = |q: f64| {
            let rank = ((total as f64 * q).ceil() as u64).max(1);
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return bucket_middle(i);
                }
            }
            Duration::ZERO
        };
        Reading {
            events: self.events.load(Ordering::Relaxed),
            heartbeats: self.heartbeats.load(Ordering::Relaxed),
            p50: at(0.50),
            p99: at(0.99),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// An HTTP/1.1 response with a chunked body, decoded into server-sent event blocks.
#[derive(Default)]
struct Decoder {
    raw: Vec<u8>,
    head_done: bool,
    chunk_left: usize,
    crlf_due: bool,
    body: Vec<u8>,
}

impl Decoder {
    fn feed(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.raw.extend_from_slice(bytes);
        let mut at = 0;
        if !self.head_done {
            let Some(end) = find(&self.raw, b"\r\n\r\n") else {
                return Ok(());
            };
            let head = String::from_utf8_lossy(&self.raw[..end]).to_ascii_lowercase();
            if !head.starts_with("http/1.1 200") || !head.contains("transfer-encoding: chunked") {
                return Err(format!("unexpected response: {head}"));
            }
            self.head_done = true;
            at = end + 4;
        }
        loop {
            if self.chunk_left > 0 {
                let take = self.chunk_left.min(self.raw.len() - at);
                if take == 0 {
                    break;
                }
                self.body.extend_from_slice(&self.raw[at..at + take]);
                at += take;
                self.chunk_left -= take;
                self.crlf_due = self.chunk_left == 0;
                continue;
            }
            if self.crlf_due {
                if self.raw.len() - at < 2 {
                    break;
                }
                at += 2;
                self.crlf_due = false;
            }
            let Some(end) = find(&self.raw[at..], b"\r\n") else {
                break;
            };
            let line = String::from_utf8_lossy(&self.raw[at..at + end]);
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|e| format!("chunk size {line:?}: {e}"))?;
            if size == 0 {
                return Err("the stream ended".to_string());
            }
            at += end + 2;
            self.chunk_left = size;
        }
        self.raw.drain(..at);
        Ok(())
    }

    /// Calls `on_event` with every complete event block received so far.
    fn events(&mut self, mut on_event: impl FnMut(&[u8])) {
        let mut start = 0;
        while let Some(end) = find(&self.body[start..], b"\n\n") {
            on_event(&self.body[start..start + end]);
            start += end + 2;
        }
        self.body.drain(..start);
    }
}

/// The marker of an event's data: in a progress job's `extendParam`, or JSON-encoded in a list
/// item's `federation.metadata`.
fn marker(block: &[u8]) -> Option<u64> {
    let at = find(block, MARKER.as_bytes())? + MARKER.len();
    let digits: Vec<u8> = block[at..]
        .iter()
        .skip_while(|b| !b.is_ascii_digit())
        .take_while(|b| b.is_ascii_digit())
        .copied()
        .collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Progress,
    List,
}

/// What one stream received: events, changes (events after the first state), and when it was
/// drained (read with `quiet`), the marker of every event.
#[derive(Default)]
struct Seen {
    events: u64,
    changes: u64,
    markers: Vec<u64>,
}

/// Reads a stream until it ends, or when `quiet` is given (draining a stalled stream), until it
/// has been quiet that long. `opened` is told when the first event arrives.
async fn read_stream(
    mut stream: TcpStream,
    kind: Kind,
    meter: Arc<Meter>,
    mut opened: Option<oneshot::Sender<()>>,
    quiet: Option<Duration>,
) -> Seen {
    let mut decoder = Decoder::default();
    let mut seen = Seen::default();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = match quiet {
            Some(quiet) => match tokio::time::timeout(quiet, stream.read(&mut buffer)).await {
                Ok(read) => read,
                Err(_) => return seen,
            },
            None => stream.read(&mut buffer).await,
        };
        let n = match read {
            Ok(0) | Err(_) => return seen,
            Ok(n) => n,
        };
        if let Err(error) = decoder.feed(&buffer[..n]) {
            eprintln!("a stream stopped: {error}");
            return seen;
        }
        decoder.events(|block| {
            if block.starts_with(b":") {
                meter.heartbeats.fetch_add(1, Ordering::Relaxed);
                return;
            }
            seen.events += 1;
            if let Some(opened) = opened.take() {
                let _ = opened.send(());
            }
            let is_change = match kind {
                Kind::Progress => seen.events > 1,
                Kind::List => block.starts_with(b"event: modified"),
            };
            let Some(sent) = marker(block) else { return };
            if quiet.is_some() {
                seen.markers.push(sent);
            }
            if is_change {
                seen.changes += 1;
                meter.record(now_nanos().saturating_sub(sent) / 1000);
            }
        });
    }
}

/// Connects and sends the request; a client that will not read gets a small receive buffer.
async fn connect(addr: SocketAddr, path: &str, receive_buffer: Option<u32>) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    if let Some(size) = receive_buffer {
        socket.set_recv_buffer_size(size).expect("SO_RCVBUF");
    }
    let mut stream = socket.connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n").as_bytes())
        .await
        .expect("request");
    stream
}

fn progress_path(fleet: usize) -> String {
    format!("/v1/clustergroups/fleet-{fleet:05}/federations/progress?watch=true")
}

const LIST_PATH: &str = "/api/v1/sso/federations?watch=true";

/// An open stream, read by a task of its own.
struct Reader(JoinHandle<Seen>);

impl Reader {
    fn close(self) {
        self.0.abort();
    }
}

/// Opens streams (64 connecting at once) and returns their readers once each has its first event.
fn open_streams(
    runtime: &tokio::runtime::Runtime,
    addr: SocketAddr,
    paths: Vec<(Kind, String)>,
    meter: &Arc<Meter>,
) -> Vec<Reader> {
    runtime.block_on(
        futures::stream::iter(paths)
            .map(|(kind, path)| {
                let meter = meter.clone();
                async move {
                    let stream = connect(addr, &path, None).await;
                    let (opened, first_event) = oneshot::channel();
                    let reader = tokio::spawn(read_stream(stream, kind, meter, Some(opened), None));
                    tokio::time::timeout(Duration::from_secs(60), first_event)
                        .await
                        .expect("a first event within 60 s")
                        .expect("the stream's first event");
                    Reader(reader)
                }
            })
            .buffered(64)
            .collect(),
    )
}

/// One line of the table.
struct Row {
    label: String,
    changes_per_second: f64,
    /// CPU as % of one core: the server, its change feed (part of the server), the clients,
    /// and everything else on the machine.
    server_cpu: f64,
    feed_cpu: f64,
    clients_cpu: f64,
    other_cpu: f64,
    server_rss: f64,
    streams: Vec<StreamLine>,
}

/// What the streams of one kind received during a row's interval.
struct StreamLine {
    kind: &'static str,
    per_second: f64,
    /// p50 and p99, when there were events.
    latency: Option<(Duration, Duration)>,
}

fn print_table(rows: &[Row]) {
    println!(
        "{:<44} {:>9} {:>8} {:>8} {:>10} {:>8} {:>8}  {:<9} {:>8} {:>9} {:>9}",
        "scenario",
        "changes/s",
        "srv CPU",
        "of feed",
        "srv RSS",
        "cli CPU",
        "others",
        "stream",
        "events/s",
        "p50",
        "p99"
    );
    for row in rows {
        let head = format!(
            "{:<44} {:>9.0} {:>7.1}% {:>7.1}% {:>6.1} MiB {:>7.1}% {:>7.1}%",
            row.label,
            row.changes_per_second,
            row.server_cpu,
            row.feed_cpu,
            row.server_rss,
            row.clients_cpu,
            row.other_cpu
        );
        if row.streams.is_empty() {
            println!("{head}");
        }
        for (i, line) in row.streams.iter().enumerate() {
            let head = if i == 0 {
                head.clone()
            } else {
                " ".repeat(head.len())
            };
            let latency = line.latency.map_or(String::new(), |(p50, p99)| {
                format!(
                    "{:>6.2} ms {:>6.2} ms",
                    p50.as_secs_f64() * 1e3,
                    p99.as_secs_f64() * 1e3
                )
            });
            let decimals = usize::from(line.per_second < 100.0);
            println!(
                "{head}  {:<9} {:>8.decimals$} {latency}",
                line.kind, line.per_second
            );
        }
    }
}

/// Measures the server and the clients for `seconds`; `sample` is called about once a second.
fn measure(
    server: &mut Server,
    label: String,
    seconds: f64,
    meters: &[(&'static str, &Arc<Meter>)],
    mut sample: impl FnMut(&Server),
) -> Row {
    for (_, meter) in meters {
        meter.reset();
    }
    let me = std::process::id();
    let cpu = |server: &Server| {
        (
            cpu_seconds(server.pid()),
            thread_cpu_seconds(server.pid(), FEED_THREAD),
            cpu_seconds(me),
            machine_busy_seconds(),
        )
    };
    let applied = server.applied();
    let before = cpu(server);
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    while Instant::now() < deadline {
        std::thread::sleep(
            deadline
                .saturating_duration_since(Instant::now())
                .min(Duration::from_secs(1)),
        );
        sample(server);
    }
    let after = cpu(server);
    let elapsed = started.elapsed().as_secs_f64();
    let applied = server.applied() - applied;
    let percent = |seconds: f64| seconds / elapsed * 100.0;
    let server_cpu = percent(after.0 - before.0);
    let clients_cpu = percent(after.2 - before.2);
    let row = Row {
        label,
        changes_per_second: applied as f64 / elapsed,
        server_cpu,
        feed_cpu: percent(after.1 - before.1),
        clients_cpu,
        other_cpu: (percent(after.3 - before.3) - server_cpu - clients_cpu).max(0.0),
        server_rss: server.rss_mib(),
        streams: meters
            .iter()
            .flat_map(|(kind, meter)| {
                let reading = meter.read();
                // Under load, every kind (a starved one too); idle, the heartbeats.
                if applied == 0 {
                    return (reading.heartbeats > 0).then(|| StreamLine {
                        kind: "heartbeat",
                        per_second: reading.heartbeats as f64 / elapsed,
                        latency: None,
                    });
                }
                Some(StreamLine {
                    kind,
                    per_second: reading.events as f64 / elapsed,
                    latency: (reading.events > 0).then_some((reading.p50, reading.p99)),
                })
            })
            .collect(),
    };
    eprintln!(
        "measured: {} ({:.0}% CPU by other processes)",
        row.label, row.other_cpu
    );
    row
}

/// `per_second` changes to random enablements of `fleets`: settles for 2 s, measures, stops.
fn measure_under_load(
    server: &mut Server,
    label: String,
    (per_second, fleets): (f64, std::ops::Range<usize>),
    seconds: f64,
    meters: &[(&'static str, &Arc<Meter>)],
) -> Row {
    server.load(0, per_second, fleets);
    std::thread::sleep(Duration::from_secs(2));
    let row = measure(server, label, seconds, meters, |_| {});
    server.load(0, 0.0, 0..0);
    std::thread::sleep(Duration::from_secs(1));
    row
}

fn measure_all() {
    let streams: usize = argument("--streams", 1000);
    let seconds: f64 = argument("--seconds", 12.0);
    let idle_seconds: f64 = argument("--idle-seconds", 15.0);
    let rates: Vec<f64> = arguments("--rates", "100,1000");
    let mut lists: Vec<usize> = arguments("--lists", "10,100");
    lists.sort_unstable();
    let slow: usize = argument("--slow", 100);
    let hot: usize = argument("--hot", 10).max(1);
    let hot_rate: f64 = argument("--hot-rate", 2000.0);
    let top_rate = rates.iter().copied().fold(0.0, f64::max);
    let enablements = streams + hot;

    let sockets = (streams + slow + lists.last().copied().unwrap_or(0)) as u64 + 64;
    if let Some(limit) = open_files_limit().filter(|l| *l < sockets) {
        eprintln!(
            "open files limit {limit} is below the {sockets} this run needs: `ulimit -n {sockets}`"
        );
        std::process::exit(1);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut server = Server::start(enablements);
    let addr = server.addr;
    let (progress, list_meter) = (Meter::new(), Meter::new());
    let mut rows = Vec::new();

    // 1. The cache loaded, no streams.
    std::thread::sleep(Duration::from_secs(2));
    rows.push(measure(
        &mut server,
        "1 cache loaded, no streams".into(),
        5.0,
        &[],
        |_| {},
    ));
    let baseline_rss = server.rss_mib();

    // 2. The progress streams, idle.
    let opening = Instant::now();
    let mut readers = open_streams(
        &runtime,
        addr,
        (0..streams)
            .map(|f| (Kind::Progress, progress_path(f)))
            .collect(),
        &progress,
    );
    let opened_in = opening.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let idle = measure(
        &mut server,
        format!("2 {streams} progress streams, idle"),
        idle_seconds,
        &[("progress", &progress)],
        |_| {},
    );
    let per_stream_kib = (idle.server_rss - baseline_rss) * 1024.0 / streams as f64;
    rows.push(idle);

    // 3. The progress streams under change load.
    for &rate in &rates {
        rows.push(measure_under_load(
            &mut server,
            format!("3 {streams} progress streams"),
            (rate, 0..streams),
            seconds,
            &[("progress", &progress)],
        ));
    }

    // 5. `slow` more clients that never read, on `hot` fleets of their own. First the hot fleets
    // change fast until the kernel's buffers of those connections are full; then the load is
    // that of 3 at the top rate, a tenth of it on the hot fleets so that the stalled streams
    // keep falling behind.
    let hot_fleets = streams..streams + hot;
    server.load(0, 0.0, 0..0);
    let rss_before_slow = server.rss_mib();
    let (release, released) = watch::channel(false);
    let slow_meter = Meter::new();
    let mut slow_ports = HashSet::new();
    let slow_clients: Vec<JoinHandle<(usize, Seen)>> = runtime.block_on(async {
        let mut clients = Vec::new();
        for i in 0..slow {
            let path = progress_path(streams + i % hot);
            let stream = connect(addr, &path, Some(SLOW_RECEIVE_BUFFER)).await;
            slow_ports.insert(stream.local_addr().expect("local address").port());
            let mut released = released.clone();
            let meter = slow_meter.clone();
            clients.push(tokio::spawn(async move {
                let _ = released.wait_for(|r| *r).await;
                let seen = read_stream(
                    stream,
                    Kind::Progress,
                    meter,
                    None,
                    Some(Duration::from_secs(2)),
                )
                .await;
                (i % hot, seen)
            }));
        }
        clients
    });
    server.load(1, hot_rate, hot_fleets.clone());
    let filling = Instant::now();
    let mut queued = queued_bytes(addr.port(), &slow_ports);
    while slow > 0 && filling.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_secs(1));
        let now = queued_bytes(addr.port(), &slow_ports);
        let full = now.0 > 0 && now.0 <= queued.0 + queued.0 / 100;
        queued = now;
        if full {
            break;
        }
    }
    let filled_in = filling.elapsed();
    let hot_share = top_rate / 10.0;
    server.load(0, top_rate - hot_share, 0..streams);
    server.load(1, hot_share, hot_fleets.clone());
    std::thread::sleep(Duration::from_secs(1));
    let (stalled_since, before) = (now_nanos(), server.last(hot_fleets.clone()));
    let mut rss_series = Vec::new();
    rows.push(measure(
        &mut server,
        format!("5 {streams} progress + {slow} never reading"),
        seconds,
        &[("progress", &progress)],
        |server| rss_series.push(server.rss_mib()),
    ));
    let queued_end = queued_bytes(addr.port(), &slow_ports);
    server.load(0, 0.0, 0..0);
    server.load(1, 0.0, 0..0);
    std::thread::sleep(Duration::from_millis(500));
    let after = server.last(hot_fleets.clone());
    release.send_replace(true);
    let drained: Vec<(usize, Seen)> = runtime.block_on(async {
        let mut drained = Vec::new();
        for client in slow_clients {
            drained.push(client.await.expect("slow client"));
        }
        drained
    });

    // 4. Some of the streams are list streams (this closes progress streams, so it comes last).
    let mut list_readers = Vec::new();
    for &list_streams in &lists {
        let readers_left = streams.saturating_sub(list_streams);
        readers
            .drain(readers_left.min(readers.len())..)
            .for_each(Reader::close);
        let more = list_streams.saturating_sub(list_readers.len());
        list_readers.extend(open_streams(
            &runtime,
            addr,
            (0..more)
                .map(|_| (Kind::List, LIST_PATH.to_string()))
                .collect(),
            &list_meter,
        ));
        for &rate in &rates {
            rows.push(measure_under_load(
                &mut server,
                format!("4 {readers_left} progress + {list_streams} list streams"),
                (rate, 0..readers_left),
                seconds,
                &[("progress", &progress), ("list", &list_meter)],
            ));
        }
    }

    println!(
        "live streams: {enablements} enablements cached ({streams} with a progress stream each, {hot} hot fleets), \
         {} cores shared by the server and the clients; CPU in % of one core",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    // The scenarios ran in the order 1, 2, 3, 5, 4 (4 closes progress streams); shown 1-5.
    rows.sort_by_key(|row| row.label.chars().next());
    print_table(&rows);
    println!();
    println!(
        "opening {streams} progress streams took {opened_in:.2?}; server RSS {baseline_rss:.1} MiB with none, \
         {per_stream_kib:.1} KiB more per idle stream"
    );
    let series: Vec<String> = rss_series.iter().map(|r| format!("{r:.1}")).collect();
    let per_client = |bytes: u64| bytes as f64 / 1024.0 / slow.max(1) as f64;
    println!(
        "{slow} clients never reading: their connections' kernel buffers were full after {filled_in:.1?} \
         ({:.0} KiB per connection in the server's send buffer, {:.0} KiB in the client's receive buffer; \
         {:.0} and {:.0} at the end)",
        per_client(queued.0),
        per_client(queued.1),
        per_client(queued_end.0),
        per_client(queued_end.1)
    );
    println!(
        "server RSS (MiB) {rss_before_slow:.1} before they connected, then each second while they did not read: {}",
        series.join(" ")
    );
    let latest = drained
        .iter()
        .filter(|(f, seen)| seen.markers.last() == Some(&after[*f].0))
        .count();
    let (received, applied) = drained
        .iter()
        .map(|(f, seen)| {
            let newer = seen.markers.iter().filter(|m| **m >= stalled_since).count() as u64;
            (newer, after[*f].1 - before[*f].1)
        })
        .fold((0, 0), |(r, a), (x, y)| (r + x, a + y));
    let backlog = drained.iter().map(|(_, seen)| seen.events).sum::<u64>() - received;
    println!(
        "once they read: {latest} of {} ended on their fleet's latest state; of the {applied} changes made to \
         their fleets while they were stalled they received {received}, the others were skipped \
         (before those, {:.0} older events each, from the buffers)",
        drained.len(),
        backlog as f64 / drained.len().max(1) as f64
    );
    drop(list_readers);
}
