//! A headless Chromium driven through WebDriver (chromedriver + fantoccini), for the dashboard's
//! browser tests.
//!
//! Chromium and chromedriver come from `FEDERATION_CHROMIUM` and `FEDERATION_CHROMEDRIVER`, else
//! Debian's `/usr/bin/chromium` and `/usr/bin/chromedriver` (packages `chromium` and
//! `chromium-driver`, which `.ci/run` installs). Without them a test is skipped with one loud
//! line, except under CI (`CI=true`), where that is a failure. Screenshots go to
//! `FEDERATION_ARTIFACTS_DIR`, else `target/artifacts/`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// chromium and chromedriver, or None (skip) when they are not installed.
pub fn tools() -> Option<(PathBuf, PathBuf)> {
    let find = |var: &str, default: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(default))
    };
    let chromium = find("FEDERATION_CHROMIUM", "/usr/bin/chromium");
    let driver = find("FEDERATION_CHROMEDRIVER", "/usr/bin/chromedriver");
    if chromium.exists() && driver.exists() {
        return Some((chromium, driver));
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but chromium ({}) or chromedriver ({}) is missing",
        chromium.display(),
        driver.display()
    );
    eprintln!(
        "\n!!!!! browser test SKIPPED: {} or {} is missing (apt-get install chromium \
         chromium-driver, or set FEDERATION_CHROMIUM / FEDERATION_CHROMEDRIVER) !!!!!\n",
        chromium.display(),
        driver.display()
    );
    None
}

/// Where screenshots are kept.
pub fn artifacts_dir() -> PathBuf {
    let dir = std::env::var_os("FEDERATION_ARTIFACTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/artifacts")));
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

/// A chromedriver process and one browser session; both end on drop (or `close`).
pub struct Browser {
    pub client: Client,
    _processes: Processes,
}

/// chromedriver and the Chromium it started, ended on drop.
struct Processes {
    driver: Child,
    profile: PathBuf,
}

impl Browser {
    pub async fn start(chromium: &std::path::Path, driver: &std::path::Path) -> Browser {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let logs = artifacts_dir().join(format!("chromedriver-{port}.log"));
        // A fresh profile: nothing from an earlier run, no session storage carried over.
        let profile =
            std::env::temp_dir().join(format!("federation-browser-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        // Owned from the start, so a panic while the session is made ends both processes.
        let processes = Processes {
            driver: Command::new(driver)
                .arg(format!("--port={port}"))
                .arg(format!("--log-path={}", logs.display()))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("chromedriver starts"),
            profile: profile.clone(),
        };
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_string(),
            json!({
                "binary": chromium,
                // The machine's closed network refuses Chromium's background connections.
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--window-size=1400,1000",
                    format!("--user-data-dir={}", profile.display())],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                Err(error) if Instant::now() < deadline => {
                    let _ = error;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(error) => panic!("no WebDriver session ({}): {error}", logs.display()),
            }
        };
        Browser {
            client,
            _processes: processes,
        }
    }

    /// Ends the session (closing Chromium); chromedriver ends on drop.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }

    /// Runs `script` (a function body that returns a value) until `done` holds on its result.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        script: &str,
        mut done: impl FnMut(&Value) -> bool,
    ) -> Result<Value, String> {
        let deadline = Instant::now() + timeout;
        let mut last = Value::Null;
        while Instant::now() < deadline {
            match self.client.execute(script, vec![]).await {
                Ok(value) if done(&value) => return Ok(value),
                Ok(value) => last = value,
                Err(error) => last = Value::String(error.to_string()),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!(
            "timed out after {timeout:?} waiting for {what}; last seen: {last}"
        ))
    }

    pub async fn click(&self, css: &str) -> Result<(), String> {
        let element = self
            .client
            .find(Locator::Css(css))
            .await
            .map_err(|e| format!("find {css}: {e}"))?;
        element
            .click()
            .await
            .map_err(|e| format!("click {css}: {e}"))
    }

    /// Saves a PNG of the page under the artifacts directory; returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let path = artifacts_dir().join(format!("{name}.png"));
        match self.client.screenshot().await {
            Ok(png) => std::fs::write(&path, png).expect("write screenshot"),
            Err(error) => eprintln!("no screenshot {name}: {error}"),
        }
        eprintln!("screenshot: {}", path.display());
        path
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        // Chromium outlives a killed chromedriver: end whatever runs on exactly this profile.
        let _ = Command::new("pkill")
            .args(["-f", "--"])
            .arg(format!(
                "--user-data-dir={}( |$)",
                regex_escape(&self.profile.display().to_string())
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// `text` as a literal in an extended regular expression (pkill's pattern).
fn regex_escape(text: &str) -> String {
    let mut escaped = String::new();
    for c in text.chars() {
        if r"\.^$|?*+()[]{}".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}
