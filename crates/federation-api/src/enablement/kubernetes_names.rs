//! The Kubernetes API conventions for label keys and values, annotation keys and DNS
//! subdomains, twice: as CEL rules for the CRD (refused at apply) and as Rust checks for the
//! controller (refused at reconcile, for objects stored before the CRD carried the rules).
//! Both follow the same regular expressions, written once here.

/// Most entries in `controlPlane.nodeSelector` and `network.annotations`: bounds the cost of
/// the CEL rules that check every key, which the API server estimates before taking the CRD.
pub const MAX_MAP_ENTRIES: u32 = 64;
/// Longest label value, and longest name part of a label or annotation key.
pub const MAX_NAME_LENGTH: usize = 63;
/// Longest DNS subdomain, and longest prefix of a label or annotation key.
pub const MAX_SUBDOMAIN_LENGTH: usize = 253;

/// A label value: empty, or letters, digits, `-`, `_` and `.`, starting and ending with a
/// letter or digit (at most 63 characters, bounded by the schema's `maxLength`).
pub const LABEL_VALUE_PATTERN: &str = "^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$";
/// A DNS subdomain (at most 253 characters, bounded by the schema's `maxLength`). `[.]`, not
/// `\.`: a CEL string literal has no `\.` escape.
pub const DNS_SUBDOMAIN_PATTERN: &str =
    "^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// A label or annotation key: an optional DNS-subdomain prefix and `/`, then a name of at most
/// 63 characters. The prefix's 253 characters are [`KEY_PREFIX_LENGTH_PATTERN`].
pub const QUALIFIED_NAME_PATTERN: &str = "^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$";
/// What comes before a key's `/` (or the whole key, when it has none) is at most 253 characters.
pub const KEY_PREFIX_LENGTH_PATTERN: &str = "^[^/]{1,253}(/|$)";

/// What a label or annotation key is, for messages.
pub const QUALIFIED_NAME_RULE: &str = "an optional DNS subdomain prefix \
    (at most 253 lower-case letters, digits, '-' and '.') and '/', then a name of at most 63 \
    letters, digits, '-', '_' and '.' that starts and ends with a letter or digit";
/// What a label value is, for messages.
pub const LABEL_VALUE_RULE: &str = "empty, or at most 63 letters, \
    digits, '-', '_' and '.' that start and end with a letter or digit (no ',' or '=')";
/// What a DNS subdomain is, for messages.
pub const DNS_SUBDOMAIN_RULE: &str = "at most 253 lower-case \
    letters, digits, '-' and '.', starting and ending with a letter or digit";

/// The CEL rule that every key of the map under validation is a label (or annotation) key.
pub fn qualified_keys_rule() -> String {
    format!(
        "self.all(k, k.matches('{QUALIFIED_NAME_PATTERN}') && k.matches('{KEY_PREFIX_LENGTH_PATTERN}'))"
    )
}

/// The CEL rule that every value of the map under validation is a label value.
pub fn label_values_rule() -> String {
    format!("self.all(k, self[k].matches('{LABEL_VALUE_PATTERN}'))")
}

/// Whether `value` is a DNS subdomain (a Secret's name, a key's prefix).
pub fn is_dns_subdomain(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_SUBDOMAIN_LENGTH
        && value.split('.').all(|part| {
            is_bounded_by_alphanumerics(part, |c| c.is_ascii_lowercase() || c.is_ascii_digit())
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
}

/// Whether `key` is a label key; annotation keys follow the same rule.
pub fn is_qualified_name(key: &str) -> bool {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    prefix.is_none_or(is_dns_subdomain) && !name.is_empty() && is_label_value(name)
}

/// Whether `value` is a label value (the empty string is one).
pub fn is_label_value(value: &str) -> bool {
    value.is_empty()
        || (value.len() <= MAX_NAME_LENGTH
            && is_bounded_by_alphanumerics(value, |c| c.is_ascii_alphanumeric())
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
}

fn is_bounded_by_alphanumerics(value: &str, alphanumeric: impl Fn(char) -> bool) -> bool {
    value.chars().next().is_some_and(&alphanumeric)
        && value.chars().last().is_some_and(alphanumeric)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_follow_the_api_conventions() {
        for good in ["", "a", "eu-west_1.b", &"v".repeat(63)] {
            assert!(is_label_value(good), "{good:?}");
        }
        for bad in ["a,b=c", "a b", "-a", "a.", "ü", &"v".repeat(64)] {
            assert!(!is_label_value(bad), "{bad:?}");
        }
    }

    #[test]
    fn label_keys_have_an_optional_subdomain_prefix_and_a_name() {
        let long_prefix = format!("{}.example", "p".repeat(245));
        for good in [
            "zone",
            "topology.kubernetes.io/zone",
            "A_b.c",
            &format!("{long_prefix}/n"),
        ] {
            assert!(is_qualified_name(good), "{good:?}");
        }
        let too_long_prefix = format!("{}.example", "p".repeat(246));
        for bad in [
            "",
            "a,b",
            "/zone",
            "zone/",
            "Example.com/zone",
            "a/b/c",
            "a=b",
            &"n".repeat(64),
            &format!("{too_long_prefix}/n"),
        ] {
            assert!(!is_qualified_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn dns_subdomains_are_lower_case_dot_separated_labels() {
        for good in ["creds", "repo-creds.v1", &"s".repeat(253)] {
            assert!(is_dns_subdomain(good), "{good:?}");
        }
        for bad in [
            "",
            "Creds",
            "a..b",
            ".a",
            "a-",
            "a_b",
            "a,b",
            &"s".repeat(254),
        ] {
            assert!(!is_dns_subdomain(bad), "{bad:?}");
        }
    }
}
