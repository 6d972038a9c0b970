//! Which chart an enablement installs: its `spec.chart`, with what it leaves out taken from the
//! controller's `--default-chart-*` flags.

use crate::api::{Chart, ChartProfile};

/// `--default-chart-repository`: the Karmada project's chart repository.
pub const DEFAULT_CHART_REPOSITORY: &str =
    "https://raw.githubusercontent.com/karmada-io/karmada/master/charts";
/// `--default-chart-name`.
pub const DEFAULT_CHART_NAME: &str = "karmada";
/// `--default-chart-version`: pinned, so that an upgrade of Karmada is a decision.
pub const DEFAULT_CHART_VERSION: &str = "v1.18.1";

/// The chart installed where `spec.chart` names none (the `--default-chart-*` flags).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChartDefaults {
    pub repository: String,
    pub name: String,
    pub version: String,
}

impl Default for ChartDefaults {
    fn default() -> Self {
        ChartDefaults {
            repository: DEFAULT_CHART_REPOSITORY.to_string(),
            name: DEFAULT_CHART_NAME.to_string(),
            version: DEFAULT_CHART_VERSION.to_string(),
        }
    }
}

/// The chart an enablement installs, every part filled in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResolvedChart<'a> {
    pub profile: ChartProfile,
    pub repository: &'a str,
    pub name: &'a str,
    pub version: &'a str,
}

impl ChartDefaults {
    /// `chart` with the defaults filled in; the version is the one a run starting now installs.
    pub fn resolve<'a>(&'a self, chart: &'a Chart) -> ResolvedChart<'a> {
        ResolvedChart {
            profile: chart.resolved_profile(),
            repository: self.repository(chart),
            name: chart.name.as_deref().unwrap_or(&self.name),
            version: chart.version.as_deref().unwrap_or(&self.version),
        }
    }

    /// `chart.repository`, or the default repository.
    pub fn repository<'a>(&'a self, chart: &'a Chart) -> &'a str {
        chart.repository.as_deref().unwrap_or(&self.repository)
    }

    /// What the current run installs: as [`resolve`](Self::resolve), but with the version the
    /// run pinned when InstallFederationChart started, so a new default never changes it.
    pub fn for_run<'a>(&'a self, chart: &'a Chart, pinned: Option<&'a str>) -> ResolvedChart<'a> {
        let resolved = self.resolve(chart);
        ResolvedChart {
            version: pinned.unwrap_or(resolved.version),
            ..resolved
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{EXTEND_PARAM_CHART_VERSION, FederationEnablementStatus};
    use serde_json::json;

    fn chart(value: serde_json::Value) -> Chart {
        serde_json::from_value(value).expect("chart")
    }

    #[test]
    fn an_empty_chart_is_the_default_karmada_chart() {
        let defaults = ChartDefaults::default();
        let empty = Chart::default();
        let resolved = defaults.resolve(&empty);
        assert_eq!(
            resolved,
            ResolvedChart {
                profile: ChartProfile::Karmada,
                repository: "https://raw.githubusercontent.com/karmada-io/karmada/master/charts",
                name: "karmada",
                version: "v1.18.1",
            }
        );
    }

    #[test]
    fn what_the_spec_names_wins_over_the_defaults() {
        let defaults = ChartDefaults::default();
        let named =
            chart(json!({"repository": "oci://r.example/c", "name": "fed", "version": "1.0.0"}));
        let resolved = defaults.resolve(&named);
        assert_eq!(resolved.profile, ChartProfile::Generic);
        assert_eq!(
            (resolved.repository, resolved.name, resolved.version),
            ("oci://r.example/c", "fed", "1.0.0")
        );
        let only_version = chart(json!({"version": "v1.17.0"}));
        assert_eq!(defaults.resolve(&only_version).version, "v1.17.0");
        assert_eq!(defaults.resolve(&only_version).name, "karmada");
    }

    #[test]
    fn a_run_keeps_the_version_it_pinned() {
        let defaults = ChartDefaults {
            version: "v9.9.9".into(),
            ..ChartDefaults::default()
        };
        let status: FederationEnablementStatus = serde_json::from_value(json!({
            "subJobs": [{"type": "InstallFederationChart", "uid": "u", "phase": "Running",
                "extendParam": {EXTEND_PARAM_CHART_VERSION: "v1.18.1"}}],
        }))
        .expect("status");
        let empty = Chart::default();
        let pinned = status.pinned_chart_version();
        assert_eq!(pinned, Some("v1.18.1"), "the pin is read from the status");
        assert_eq!(defaults.for_run(&empty, pinned).version, "v1.18.1");
        let fresh = FederationEnablementStatus::default();
        assert_eq!(
            defaults
                .for_run(&empty, fresh.pinned_chart_version())
                .version,
            "v9.9.9"
        );
    }
}
