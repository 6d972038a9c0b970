//! The web dashboard in a real browser (headless Chromium through WebDriver), against the
//! controller with simulated executors on the e2e test API server. A screenshot of the end state
//! is kept under the artifacts directory (see `tests/webdriver/`).

use std::time::Duration;

use serde_json::{Value, json};

use super::webdriver::{self, Browser};
use super::{Fixture, MINUTE, env};

const ROW: &str = r#"
    const row = document.querySelector(`tr[data-fleet="${FLEET}"]`);
    if (!row) return null;
    const bar = row.querySelector('[role=progressbar]');
    const reason = row.querySelector('.reason');
    return {phase: row.dataset.phase, label: row.querySelector('.meter-label').textContent,
        now: bar.getAttribute('aria-valuenow'), max: bar.getAttribute('aria-valuemax'),
        health: row.querySelector('.health').textContent,
        reason: reason ? reason.textContent : null};
"#;

const TIMELINE: &str = r#"
    if (document.getElementById('timeline').hidden) return null;
    return {title: document.getElementById('timeline-title').textContent,
        steps: [...document.querySelectorAll('#timeline-steps li.step')].map((li) => ({
            type: li.dataset.type, phase: li.dataset.phase,
            bar: li.querySelector('.track .bar') !== null,
            reason: li.querySelector('.step-reason')?.textContent ?? null,
            message: li.querySelector('.step-message')?.textContent ?? null}))};
"#;

fn row_script(fleet: &str) -> String {
    ROW.replace("${FLEET}", fleet)
}

#[test]
fn the_dashboard_follows_a_job_live_and_shows_a_failure_with_its_reason() {
    let Some(env) = env() else { return };
    let Some((chromium, driver)) = webdriver::tools() else {
        return;
    };
    let f = Fixture::new(env, "browser", &["--simulated-delay-ms=700"]);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(async {
        let browser = Browser::start(&chromium, &driver).await;
        let outcome = scenario(&f, &browser).await;
        let shot = match outcome {
            Ok(()) => "dashboard",
            Err(_) => "dashboard-failed",
        };
        browser.screenshot(shot).await;
        browser.close().await;
        if let Err(error) = outcome {
            panic!("{error}");
        }
    });
}

async fn scenario(f: &Fixture, browser: &Browser) -> Result<(), String> {
    let page = format!("http://{}/", f.http);
    browser
        .client
        .goto(&page)
        .await
        .map_err(|e| format!("open {page}: {e}"))?;
    // Whatever the page does from now on must stay within its Content-Security-Policy.
    browser
        .client
        .execute(
            "window.cspViolations = []; document.addEventListener('securitypolicyviolation', \
             (e) => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));",
            vec![],
        )
        .await
        .map_err(|e| e.to_string())?;
    browser
        .wait_for(
            "the row stream to be live",
            Duration::from_secs(20),
            "return document.getElementById('connection').dataset.state;",
            |v| v == "live",
        )
        .await?;

    // A new enablement appears and its progress bar fills up to 4/4 as the job runs.
    f.create(&f.enablement("fleet-ok", "e2e-browser-ok", json!({})));
    let mut labels_seen = Vec::new();
    let done = browser
        .wait_for(
            "e2e-browser-ok to reach 4/4",
            MINUTE,
            &row_script("e2e-browser-ok"),
            |row| {
                if let Some(label) = row["label"].as_str()
                    && labels_seen.last().map(String::as_str) != Some(label)
                {
                    labels_seen.push(label.to_string());
                }
                row["phase"] == "Success"
            },
        )
        .await?;
    if (
        done["label"].as_str(),
        done["now"].as_str(),
        done["max"].as_str(),
    ) != (Some("4/4"), Some("4"), Some("4"))
        || done["health"] != "healthy"
    {
        return Err(format!("a finished job's row: {done}"));
    }
    // Live, not only the end state: the bar was seen part-way.
    if !labels_seen.iter().any(|l| l != "4/4") {
        return Err(format!(
            "the bar never showed progress before 4/4: {labels_seen:?}"
        ));
    }

    browser.click(r#"tr[data-fleet="e2e-browser-ok"]"#).await?;
    browser
        .wait_for(
            "the timeline of e2e-browser-ok with four finished bars",
            Duration::from_secs(20),
            TIMELINE,
            |t| {
                t["title"] == "e2e-browser-ok"
                    && t["steps"].as_array().is_some_and(|steps| {
                        steps.len() == 4
                            && steps
                                .iter()
                                .all(|s| s["phase"] == "Success" && s["bar"] == true)
                    })
            },
        )
        .await?;

    // A simulated failure: the row turns Failed with its reason, the timeline shows the failed
    // subjob in red with its reason and message.
    let mut failing = f.enablement("fleet-bad", "e2e-browser-bad", json!({"backoffLimit": 0}));
    failing["metadata"]["annotations"] =
        json!({"federation.fleet.dev/simulate-failure": "CreateCert"});
    f.create(&failing);
    browser
        .wait_for(
            "e2e-browser-bad to show Failed with its reason",
            MINUTE,
            &row_script("e2e-browser-bad"),
            |row| row["phase"] == "Failed" && row["reason"] == "SimulatedFailure",
        )
        .await?;
    browser.click(r#"tr[data-fleet="e2e-browser-bad"]"#).await?;
    let timeline = browser
        .wait_for(
            "the failed CreateCert in the timeline",
            Duration::from_secs(20),
            TIMELINE,
            |t| {
                t["title"] == "e2e-browser-bad"
                    && t["steps"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|s| s["type"] == "CreateCert" && s["phase"] == "Failed")
            },
        )
        .await?;
    let cert = timeline["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["type"] == "CreateCert")
        .cloned()
        .unwrap_or(Value::Null);
    let message = cert["message"].as_str().unwrap_or_default();
    if cert["reason"] != "SimulatedFailure" || !message.contains("simulated failure of CreateCert")
    {
        return Err(format!("the failed subjob in the timeline: {cert}"));
    }
    let mut colors = Vec::new();
    for step in ["CreateCert", "CreateNode"] {
        let script = format!(
            "return getComputedStyle(document.querySelector(\
             '#timeline-steps li[data-type={step}] .bar')).backgroundColor;"
        );
        colors.push(
            browser
                .client
                .execute(&script, vec![])
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    let (color, success_color) = (&colors[0], &colors[1]);
    if color == success_color {
        return Err(format!("a failed bar looks like a succeeded one: {color}"));
    }

    // The phase filter.
    let shown = browser
        .client
        .execute(
            "const s = document.getElementById('phase-filter'); s.value = 'Failed'; \
             s.dispatchEvent(new Event('change')); \
             return [...document.querySelectorAll('#federations tbody tr')].map((r) => r.dataset.fleet);",
            vec![],
        )
        .await
        .map_err(|e| e.to_string())?;
    if shown != json!(["e2e-browser-bad"]) {
        return Err(format!("filtered on Failed, the table shows {shown}"));
    }
    browser
        .client
        .execute(
            "const s = document.getElementById('phase-filter'); s.value = ''; \
             s.dispatchEvent(new Event('change'));",
            vec![],
        )
        .await
        .map_err(|e| e.to_string())?;

    let violations = browser
        .client
        .execute("return window.cspViolations;", vec![])
        .await
        .map_err(|e| e.to_string())?;
    if violations != json!([]) {
        return Err(format!("Content-Security-Policy violations: {violations}"));
    }
    Ok(())
}
