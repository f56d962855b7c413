//! "Did you mean": the closest of the names a misspelled one could have meant.

/// The candidate fewest edits away from `wanted`, within a third of its length (at least two
/// edits); ties go to the first in order.
pub fn nearest<'a>(wanted: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (wanted.chars().count() / 3).max(2);
    candidates
        .map(|c| (strsim::levenshtein(wanted, c), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::nearest;

    #[test]
    fn the_closest_name_within_a_third_of_the_length() {
        let fields = ["from", "ports", "podSelector", "policyTypes"];
        for (wanted, expected) in [
            ("fromm", Some("from")),
            ("portz", Some("ports")),
            ("podselector", Some("podSelector")),
            ("policyType", Some("policyTypes")),
            ("egress", None),
            ("x", None),
        ] {
            assert_eq!(nearest(wanted, fields.into_iter()), expected, "{wanted}");
        }
        let endpoints = ["expense/poda", "instana/daemonset/agent"];
        assert_eq!(
            nearest("expense/pod-a", endpoints.into_iter()),
            Some("expense/poda")
        );
        assert_eq!(nearest("something/else", endpoints.into_iter()), None);
    }
}
