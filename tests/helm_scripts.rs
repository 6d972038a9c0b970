//! The install and uninstall scripts the helm Jobs run, against a stand-in `helm` that plays
//! one release and logs every call: a release is touched only when it is this enablement's
//! (labelled with its uid), or unlabelled and installed by it before releases were labelled.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use federation_controller::subjobs::chart::{INSTALL_SCRIPT, UNINSTALL_SCRIPT};

const UID: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";
const OWNER_LABEL: &str = "federation.fleet.dev/enablement-uid";

/// The stand-in: `helm list` and `helm status` answer for one release named `fed` according to
/// FAKE_RELEASE (`absent`, `unlabelled`, `forbidden` (no rights to look), or the uid its owner
/// label carries); every call is logged.
const FAKE_HELM: &str = r#"#!/bin/sh
echo "$*" >> "$FAKE_HELM_LOG"
case "$1" in
  list)
    selector=""
    for arg in "$@"; do case "$arg" in --selector=*) selector="${arg#--selector=}" ;; esac; done
    [ "$FAKE_RELEASE" = absent ] && exit 0
    [ "$FAKE_RELEASE" = forbidden ] && { echo "Error: secrets is forbidden" >&2; exit 1; }
    case "$selector" in
      "") echo fed ;;
      *=*) [ "${selector#*=}" = "$FAKE_RELEASE" ] && echo fed ;;
      *) [ "$FAKE_RELEASE" != unlabelled ] && echo fed ;;
    esac
    exit 0 ;;
  status)
    [ "$FAKE_RELEASE" = absent ] && { echo "Error: release: not found" >&2; exit 1; }
    [ "$FAKE_RELEASE" = forbidden ] && { echo "Error: secrets is forbidden" >&2; exit 1; }
    echo '{"info":{"status":"deployed"}}' ;;
esac
exit 0
"#;

struct Run {
    output: Output,
    calls: Vec<String>,
}

fn run(script: &str, release: &str, adopt_unlabelled: bool) -> Run {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "helm-scripts-{}-{}-{release}-{adopt_unlabelled}",
        std::process::id(),
        script.len()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let helm = dir.join("helm");
    std::fs::write(&helm, FAKE_HELM).expect("fake helm");
    make_executable(&helm);
    let log = dir.join("calls.log");
    let _ = std::fs::remove_file(&log);
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new("sh")
        .args(["-c", script])
        .env("PATH", path)
        .env("FAKE_HELM_LOG", &log)
        .env("FAKE_RELEASE", release)
        .env("RELEASE", "fed")
        .env("NAMESPACE", "team-a")
        .env("CHART_REPOSITORY", "https://charts.example")
        .env("CHART_NAME", "federation")
        .env("CHART_VERSION", "1.2.3")
        .env("TIMEOUT_SECONDS", "60")
        .env("OWNER_LABEL", OWNER_LABEL)
        .env("OWNER_UID", UID)
        .env("ADOPT_UNLABELLED", adopt_unlabelled.to_string())
        .output()
        .expect("sh runs");
    let calls = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    Run { output, calls }
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn changed(run: &Run) -> Vec<&String> {
    run.calls
        .iter()
        .filter(|c| {
            c.starts_with("upgrade") || c.starts_with("uninstall") || c.starts_with("rollback")
        })
        .collect()
}

#[test]
fn install_labels_a_new_release_with_the_enablements_uid() {
    let run = run(INSTALL_SCRIPT, "absent", false);
    assert!(run.output.status.success(), "{run:?}", run = run.output);
    let upgrades = changed(&run);
    assert_eq!(upgrades.len(), 1, "{:?}", run.calls);
    assert!(
        upgrades[0].contains(&format!("--labels={OWNER_LABEL}={UID}")),
        "{}",
        upgrades[0]
    );
}

#[test]
fn install_upgrades_its_own_release() {
    let run = run(INSTALL_SCRIPT, UID, false);
    assert!(run.output.status.success());
    assert_eq!(changed(&run).len(), 1);
}

#[test]
fn install_refuses_another_enablements_release_with_exit_code_3_and_touches_nothing() {
    for adopt in [false, true] {
        let run = run(
            INSTALL_SCRIPT,
            "11111111-2222-4333-8444-555555555555",
            adopt,
        );
        assert_eq!(run.output.status.code(), Some(3), "adopt {adopt}");
        assert!(changed(&run).is_empty(), "{:?}", run.calls);
    }
}

#[test]
fn an_unlabelled_release_is_adopted_only_by_an_enablement_that_installed_it_before() {
    let refused = run(INSTALL_SCRIPT, "unlabelled", false);
    assert_eq!(refused.output.status.code(), Some(3));
    assert!(changed(&refused).is_empty());
    let adopted = run(INSTALL_SCRIPT, "unlabelled", true);
    assert!(adopted.output.status.success());
    let upgrades = changed(&adopted);
    assert_eq!(upgrades.len(), 1);
    assert!(upgrades[0].contains(&format!("--labels={OWNER_LABEL}={UID}")));
}

#[test]
fn uninstall_removes_only_its_own_release_and_ends_at_once_for_any_other() {
    let own = run(UNINSTALL_SCRIPT, UID, false);
    assert!(own.output.status.success());
    assert_eq!(changed(&own).len(), 1, "{:?}", own.calls);
    for (release, adopt) in [
        ("11111111-2222-4333-8444-555555555555", true),
        ("unlabelled", false),
        ("absent", false),
    ] {
        let other = run(UNINSTALL_SCRIPT, release, adopt);
        assert!(other.output.status.success(), "{release}: the step ends");
        assert!(changed(&other).is_empty(), "{release}: {:?}", other.calls);
    }
    let adopted = run(UNINSTALL_SCRIPT, "unlabelled", true);
    assert_eq!(changed(&adopted).len(), 1);
}

#[test]
fn uninstall_fails_when_it_cannot_tell_whether_the_release_exists() {
    let run = run(UNINSTALL_SCRIPT, "forbidden", true);
    assert_ne!(
        run.output.status.code(),
        Some(0),
        "no rights to look is not 'no release'"
    );
    assert!(changed(&run).is_empty());
}

#[test]
fn install_fails_when_it_cannot_tell_whose_the_release_is() {
    let run = run(INSTALL_SCRIPT, "forbidden", true);
    assert_ne!(run.output.status.code(), Some(0));
    assert!(changed(&run).is_empty(), "{:?}", run.calls);
}
