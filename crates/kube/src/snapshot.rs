//! `palisade snapshot`: the cluster's objects that policy depends on, written as manifests
//! for offline work and bug reports. Loading the directory gives what reading the cluster
//! gives.

use crate::KubeError;
use crate::read::ClusterObjects;
use serde::Serialize;
use std::path::Path;

/// Writes `namespaces.yaml`, `nodes.yaml`, `pods.yaml` and `networkpolicies.yaml` into `dir`
/// (created if missing), each a stream of YAML documents; returns how many objects it wrote.
pub fn snapshot(objects: &ClusterObjects, dir: &Path) -> Result<usize, KubeError> {
    let io = |path: &Path, error| KubeError::Write {
        path: path.display().to_string(),
        error,
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let mut written = 0;
    let nodes: Vec<_> = objects.nodes.iter().map(|n| n.to_node()).collect();
    let pods: Vec<_> = objects.pods.iter().map(|p| p.to_pod()).collect();
    let mut namespaces = objects.namespaces.clone();
    let mut policies = objects.policies.clone();
    for namespace in &mut namespaces {
        namespace.metadata.managed_fields = None;
    }
    for policy in &mut policies {
        policy.metadata.managed_fields = None;
    }
    for (file, text) in [
        ("namespaces.yaml", documents(&namespaces)?),
        ("nodes.yaml", documents(&nodes)?),
        ("pods.yaml", documents(&pods)?),
        ("networkpolicies.yaml", documents(&policies)?),
    ] {
        let path = dir.join(file);
        std::fs::write(&path, text.0).map_err(|e| io(&path, e))?;
        written += text.1;
    }
    Ok(written)
}

/// Objects as one YAML stream, and how many.
fn documents<T: Serialize>(objects: &[T]) -> Result<(String, usize), KubeError> {
    let mut text = String::new();
    for object in objects {
        let document = serde_saphyr::to_string(object).map_err(|e| KubeError::Write {
            path: "YAML".to_string(),
            error: std::io::Error::other(e.to_string()),
        })?;
        text.push_str("---\n");
        text.push_str(&document);
        if !document.ends_with('\n') {
            text.push('\n');
        }
    }
    Ok((text, objects.len()))
}
