//! The API server's name and value syntax checks (k8s.io/apimachinery `util/validation`). Each
//! returns the problems found, empty when the value is valid, with upstream's wording.

const DNS1123_LABEL_MAX: usize = 63;
const DNS1123_SUBDOMAIN_MAX: usize = 253;
const QUALIFIED_NAME_MAX: usize = 63;
const LABEL_VALUE_MAX: usize = 63;
const PORT_NAME_MAX: usize = 15;

fn max_len(max: usize) -> String {
    format!("must be no more than {max} characters")
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`
fn is_label_shaped(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && alnum(&b[0])
        && alnum(&b[b.len() - 1])
        && b.iter().all(|c| alnum(c) || *c == b'-')
}

pub(crate) fn dns1123_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > DNS1123_LABEL_MAX {
        errs.push(max_len(DNS1123_LABEL_MAX));
    }
    if !is_label_shaped(s) {
        errs.push(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or \
             '-', and must start and end with an alphanumeric character (e.g. 'my-name')"
                .to_string(),
        );
    }
    errs
}

pub(crate) fn dns1123_subdomain(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > DNS1123_SUBDOMAIN_MAX {
        errs.push(max_len(DNS1123_SUBDOMAIN_MAX));
    }
    if !s.split('.').all(is_label_shaped) {
        errs.push(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \
             '-' or '.', and must start and end with an alphanumeric character (e.g. \
             'example.com')"
                .to_string(),
        );
    }
    errs
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, the shape of label names and values.
fn is_qualified_shaped(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

const QUALIFIED_NAME_SHAPE: &str = "must consist of alphanumeric characters, '-', '_' or '.', and \
     must start and end with an alphanumeric character (e.g. 'MyName', 'my.name', or '123-abc')";

/// A label key: an optional DNS subdomain prefix and '/', then a name of at most 63 characters.
pub(crate) fn qualified_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = s.split('/').collect();
    let name = match parts[..] {
        [name] => name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                errs.extend(
                    dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            name
        }
        _ => {
            errs.push(format!(
                "a qualified name {QUALIFIED_NAME_SHAPE}, with an optional DNS subdomain prefix \
                 and '/' (e.g. 'example.com/MyName')"
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > QUALIFIED_NAME_MAX {
        errs.push(format!("name part {}", max_len(QUALIFIED_NAME_MAX)));
    }
    if !is_qualified_shaped(name) {
        errs.push(format!("name part {QUALIFIED_NAME_SHAPE}"));
    }
    errs
}

pub(crate) fn label_value(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > LABEL_VALUE_MAX {
        errs.push(max_len(LABEL_VALUE_MAX));
    }
    if !s.is_empty() && !is_qualified_shaped(s) {
        errs.push(
            "a valid label value must be an empty string or consist of alphanumeric \
             characters, '-', '_' or '.', and must start and end with an alphanumeric \
             character (e.g. 'MyValue', or 'my_value', or '12345')"
                .to_string(),
        );
    }
    errs
}

/// An IANA_SVC_NAME (RFC 6335), as a named port must be.
pub(crate) fn port_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > PORT_NAME_MAX {
        errs.push(max_len(PORT_NAME_MAX));
    }
    if s.is_empty()
        || !s
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if !s.bytes().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".into());
    }
    if s.contains("--") {
        errs.push("must not contain consecutive hyphens".into());
    }
    if s.starts_with('-') || s.ends_with('-') {
        errs.push("must not begin or end with a hyphen".into());
    }
    errs
}

/// A port number as a `u16`, or upstream's message.
pub(crate) fn port_number(port: i32) -> Result<u16, String> {
    match u16::try_from(port) {
        Ok(p) if p >= 1 => Ok(p),
        _ => Err("must be between 1 and 65535, inclusive".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_values_follow_upstream_syntax() {
        let long = "a".repeat(64);
        let prefixed_long = format!("example.com/{long}");
        // (checker, input, valid)
        type Check = fn(&str) -> Vec<String>;
        let table: &[(Check, &str, bool)] = &[
            (dns1123_label, "web-1", true),
            (dns1123_label, "Web", false),
            (dns1123_label, "-web", false),
            (dns1123_label, "a.b", false),
            (dns1123_label, &long, false),
            (dns1123_subdomain, "allow.web-1", true),
            (dns1123_subdomain, "allow..web", false),
            (dns1123_subdomain, "allow_web", false),
            (dns1123_subdomain, "", false),
            (qualified_name, "app", true),
            (qualified_name, "App_Name.v2", true),
            (qualified_name, "app.kubernetes.io/name", true),
            (qualified_name, "/name", false),
            (qualified_name, "Example.com/name", false),
            (qualified_name, "a/b/c", false),
            (qualified_name, "app-", false),
            (qualified_name, "", false),
            (qualified_name, &prefixed_long, false),
            (label_value, "", true),
            (label_value, "v1.2_3-x", true),
            (label_value, "-x", false),
            (label_value, "a b", false),
            (label_value, &long, false),
            (port_name, "http", true),
            (port_name, "web-8080", true),
            (port_name, "8080", false),
            (port_name, "HTTP", false),
            (port_name, "we--b", false),
            (port_name, "-web", false),
            (port_name, "a-very-long-port-name", false),
            (port_name, "", false),
        ];
        for (check, input, valid) in table {
            let errs = check(input);
            assert_eq!(errs.is_empty(), *valid, "{input:?}: {errs:?}");
        }
        assert_eq!(port_number(1), Ok(1));
        assert_eq!(port_number(65535), Ok(65535));
        assert!(port_number(0).is_err() && port_number(65536).is_err() && port_number(-1).is_err());
    }
}
