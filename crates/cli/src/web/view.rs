//! What the graph and the matrix show: nodes at a level of detail the page can draw (pods,
//! classes of identical pods, namespaces), laid out, and the pod pairs between every two of
//! them, counted by the engine's connectivity tables: by key groups, never pod by pod.

use crate::summary::Tally;
use palisade_engine::{
    Analysis, ClassId, Connectivity, DestinationKey, Direction, EndpointId, PortSetId, Protocol,
    SourceKey, Vertex,
};
use rustc_hash::FxHashMap;
use serde::Serialize;
use serde_json::{Value, json};
use std::f64::consts::TAU;

/// How much a view draws before it folds: endpoints one by one up to `pods`, then classes
/// of identical pods up to `classes`, then namespaces.
#[derive(Clone, Copy, Debug)]
struct Limits {
    pods: usize,
    classes: usize,
}

const LIMITS: Limits = Limits {
    pods: 150,
    classes: 300,
};
/// Outside ranges drawn beside pods or classes; more would crowd the page.
const OUTSIDE_LIMIT: usize = 24;
/// Members named per node.
const NAMED_MEMBERS: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Pods,
    Classes,
    Namespaces,
}

/// One port, when the matrix is filtered to it.
#[derive(Clone, Copy, Debug)]
pub struct PortFilter {
    pub port: u16,
    pub protocol: Protocol,
}

/// A node of the page: some pods (or one outside range) counted together.
struct Unit {
    name: String,
    /// `None` for outside ranges.
    namespace: Option<String>,
    kind: &'static str,
    members: Vec<String>,
    more_members: usize,
    pods: u64,
    isolated: [bool; 2],
    ports: Vec<(u16, Protocol)>,
    /// Pods per source key and per destination key: pairs are counted between keys.
    sources: Vec<(SourceKey, u64)>,
    destinations: Vec<(DestinationKey, u64)>,
    /// Parallel to `sources` and `destinations`: an endpoint (or address) of each key, as
    /// `check` takes it: every member of a key answers as it does.
    source_names: Vec<String>,
    destination_names: Vec<String>,
    /// Pods per class, to take a pod's pair with itself back out.
    classes: Vec<(ClassId, u64)>,
    position: (f64, f64),
}

impl Unit {
    fn new(name: String, namespace: Option<String>, kind: &'static str) -> Self {
        Self {
            name,
            namespace,
            kind,
            members: Vec::new(),
            more_members: 0,
            pods: 0,
            isolated: [false; 2],
            ports: Vec::new(),
            sources: Vec::new(),
            destinations: Vec::new(),
            source_names: Vec::new(),
            destination_names: Vec::new(),
            classes: Vec::new(),
            position: (0.0, 0.0),
        }
    }

    fn add_endpoint(&mut self, analysis: &Analysis, connectivity: &Connectivity, id: EndpointId) {
        let endpoint = analysis.endpoint(id);
        let pods = u64::from(endpoint.replicas);
        if self.members.len() < NAMED_MEMBERS {
            self.members.push(endpoint.qualified_name());
        } else {
            self.more_members += 1;
        }
        if self.ports.is_empty() {
            self.ports = endpoint
                .ports
                .iter()
                .map(|p| (p.port, p.protocol))
                .collect();
        }
        for (slot, direction) in [Direction::Ingress, Direction::Egress].iter().enumerate() {
            self.isolated[slot] |= !analysis.isolating_policies(id, *direction).is_empty();
        }
        let class = analysis.class_of(id);
        self.add_part(
            connectivity,
            Vertex::Class(class),
            pods,
            &endpoint.qualified_name(),
        );
        add_count(&mut self.classes, class, pods);
    }

    /// `name`: the part as `check` names it (an endpoint, an address).
    fn add_part(&mut self, connectivity: &Connectivity, node: Vertex, pods: u64, name: &str) {
        self.pods += pods;
        if add_count(&mut self.sources, connectivity.source_key(node), pods) {
            self.source_names.push(name.to_string());
        }
        if add_count(
            &mut self.destinations,
            connectivity.destination_key(node),
            pods,
        ) {
            self.destination_names.push(name.to_string());
        }
    }
}

/// Counts `n` under `key`; true when the key is new.
fn add_count<K: PartialEq>(counts: &mut Vec<(K, u64)>, key: K, n: u64) -> bool {
    match counts.iter_mut().find(|(k, _)| *k == key) {
        Some((_, count)) => {
            *count += n;
            false
        }
        None => {
            counts.push((key, n));
            true
        }
    }
}

/// The nodes of one view, the namespace boxes around them, and the pairs between them.
pub struct View {
    level: Level,
    namespace: Option<String>,
    units: Vec<Unit>,
    boxes: Vec<Frame>,
    size: (f64, f64),
}

struct Frame {
    name: String,
    x: f64,
    y: f64,
    side: f64,
}

impl View {
    /// The whole cluster, or one namespace (`zoom`) with every other namespace as one node.
    pub fn new(
        analysis: &Analysis,
        connectivity: &Connectivity,
        zoom: Option<&str>,
    ) -> Result<Self, String> {
        Self::with_limits(analysis, connectivity, zoom, LIMITS)
    }

    fn with_limits(
        analysis: &Analysis,
        connectivity: &Connectivity,
        zoom: Option<&str>,
        limits: Limits,
    ) -> Result<Self, String> {
        let cluster = analysis.cluster();
        if let Some(name) = zoom
            && analysis.namespace(name).is_none()
        {
            return Err(format!("no namespace named {name:?}"));
        }
        let in_view: Vec<EndpointId> = cluster
            .endpoints
            .keys()
            .filter(|&id| zoom.is_none_or(|ns| cluster.endpoints[id].namespace == ns))
            .collect();
        let (level, mut units) = if in_view.len() <= limits.pods {
            let units = in_view
                .iter()
                .map(|&id| {
                    let endpoint = analysis.endpoint(id);
                    let kind = match endpoint.kind {
                        palisade_engine::EndpointKind::Pod => "pod",
                        palisade_engine::EndpointKind::Workload { .. } => "workload",
                    };
                    let mut unit = Unit::new(
                        endpoint.qualified_name(),
                        Some(endpoint.namespace.clone()),
                        kind,
                    );
                    unit.add_endpoint(analysis, connectivity, id);
                    unit
                })
                .collect();
            (Level::Pods, units)
        } else if zoom.is_some() || distinct_classes(analysis, &in_view) <= limits.classes {
            (
                Level::Classes,
                class_units(analysis, connectivity, &in_view),
            )
        } else {
            (Level::Namespaces, Vec::new())
        };
        if level == Level::Namespaces || zoom.is_some() {
            units.extend(namespace_units(analysis, connectivity, zoom));
        }
        if level != Level::Namespaces && connectivity.externals().len() <= OUTSIDE_LIMIT {
            for (i, range) in connectivity.externals().iter().enumerate() {
                let mut unit = Unit::new(range.label(), None, "outside");
                let address = range.first.to_string();
                unit.add_part(connectivity, Vertex::External(i), 1, &address);
                unit.members.push(address);
                units.push(unit);
            }
        }
        let mut view = Self {
            level,
            namespace: zoom.map(str::to_string),
            units,
            boxes: Vec::new(),
            size: (0.0, 0.0),
        };
        view.lay_out();
        Ok(view)
    }

    /// Namespaces in boxes on shelves, each box's nodes on a circle; namespace nodes (the
    /// namespace level, or the others around a zoomed one) on a ring.
    fn lay_out(&mut self) {
        let zoomed = self.namespace.is_some();
        const SPACING: f64 = 90.0;
        const MARGIN: f64 = 40.0;
        const ROW_WIDTH: f64 = 1400.0;
        let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
        let mut ring = Vec::new();
        for (i, unit) in self.units.iter().enumerate() {
            if unit.kind == "namespace" {
                ring.push(i);
                continue;
            }
            let name = unit
                .namespace
                .clone()
                .unwrap_or_else(|| "outside the cluster".to_string());
            match groups.iter_mut().find(|(n, _)| *n == name) {
                Some((_, members)) => members.push(i),
                None => groups.push((name, vec![i])),
            }
        }
        let radius_for = |n: usize| (n as f64 * SPACING / TAU).max(if n > 1 { 50.0 } else { 0.0 });
        let (mut x, mut y, mut row_height, mut width) = (MARGIN, MARGIN, 0.0f64, 0.0f64);
        for (name, members) in &groups {
            let radius = radius_for(members.len());
            let side = 2.0 * radius + 2.0 * SPACING;
            if x + side > ROW_WIDTH && x > MARGIN {
                x = MARGIN;
                y += row_height + MARGIN;
                row_height = 0.0;
            }
            let center = (x + side / 2.0, y + side / 2.0 + 10.0);
            place_on_circle(&mut self.units, members, center, radius);
            self.boxes.push(Frame {
                name: name.clone(),
                x,
                y,
                side,
            });
            x += side + MARGIN;
            width = width.max(x);
            row_height = row_height.max(side + 20.0);
        }
        let mut height = y + row_height + MARGIN;
        if !ring.is_empty() {
            // Around the zoomed namespace's boxes, or alone at the namespace level.
            let inner = if zoomed {
                (width.max(height) / 2.0) + SPACING
            } else {
                0.0
            };
            let radius = radius_for(ring.len()).max(inner).max(120.0);
            let center = if zoomed {
                (width / 2.0, height / 2.0)
            } else {
                (radius + 2.0 * MARGIN, radius + 2.0 * MARGIN)
            };
            place_on_circle(&mut self.units, &ring, center, radius);
            let shift = (
                (radius - center.0 + 2.0 * MARGIN).max(0.0),
                (radius - center.1 + 2.0 * MARGIN).max(0.0),
            );
            for unit in &mut self.units {
                unit.position.0 += shift.0;
                unit.position.1 += shift.1;
            }
            for frame in &mut self.boxes {
                frame.x += shift.0;
                frame.y += shift.1;
            }
            width = (center.0 + shift.0 + radius + 2.0 * MARGIN).max(width + shift.0);
            height = (center.1 + shift.1 + radius + 2.0 * MARGIN).max(height + shift.1);
        }
        self.size = (width.max(400.0), height.max(300.0));
    }

    /// The view as `GET /api/view` answers it: pairs counted with `filter`'s port only, when
    /// given.
    pub fn json(&self, connectivity: &Connectivity, filter: Option<PortFilter>) -> Value {
        let open: Vec<bool> = (0..connectivity.port_set_count())
            .map(|id| {
                let set = connectivity.port_set(id as PortSetId);
                match filter {
                    Some(f) => set.contains(f.protocol, f.port),
                    None => !set.is_empty(),
                }
            })
            .collect();
        let mut port_set_index: FxHashMap<PortSetId, usize> = FxHashMap::default();
        let mut port_sets = Vec::new();
        let mut cells = Vec::new();
        for (from, a) in self.units.iter().enumerate() {
            for (to, b) in self.units.iter().enumerate() {
                if a.namespace.is_none() && b.namespace.is_none() {
                    continue;
                }
                let (tally, examples) = pairs(connectivity, &open, a, b, from == to);
                if tally.total == 0 {
                    continue;
                }
                let most = tally
                    .sets
                    .iter()
                    .max_by_key(|(id, n)| (*n, std::cmp::Reverse(*id)));
                let (set_index, example) = match most {
                    Some(&(id, _)) => (
                        *port_set_index.entry(id).or_insert_with(|| {
                            port_sets.push(port_set_json(connectivity, id));
                            port_sets.len() - 1
                        }) as i64,
                        examples
                            .iter()
                            .find(|(known, _)| *known == id)
                            .map(|&(_, (i, j))| {
                                (a.source_names[i].as_str(), b.destination_names[j].as_str())
                            }),
                    ),
                    None => (-1, None),
                };
                let (src, dst) = example.unzip();
                cells.push(json!([
                    from,
                    to,
                    tally.allowed,
                    tally.total,
                    set_index,
                    src,
                    dst
                ]));
            }
        }
        json!({
            "level": self.level,
            "namespace": self.namespace,
            "width": pixels(self.size.0),
            "height": pixels(self.size.1),
            "boxes": self.boxes.iter().map(|f| json!({
                "name": f.name, "x": pixels(f.x), "y": pixels(f.y), "w": pixels(f.side), "h": pixels(f.side + 10.0),
            })).collect::<Vec<_>>(),
            "nodes": self.units.iter().enumerate().map(|(id, u)| json!({
                "id": id,
                "name": u.name,
                "namespace": u.namespace,
                "kind": u.kind,
                "pods": u.pods,
                "members": u.members,
                "more_members": u.more_members,
                "isolated": {"ingress": u.isolated[0], "egress": u.isolated[1]},
                "ports": u.ports.iter().map(|(port, protocol)| json!({"port": port, "protocol": protocol})).collect::<Vec<_>>(),
                "x": pixels(u.position.0),
                "y": pixels(u.position.1),
            })).collect::<Vec<_>>(),
            "cells": cells,
            "port_sets": port_sets,
        })
    }
}

fn pixels(value: f64) -> i64 {
    value.round() as i64
}

fn port_set_json(connectivity: &Connectivity, id: PortSetId) -> Value {
    let set = connectivity.port_set(id);
    let first = Protocol::ALL
        .into_iter()
        .find_map(|protocol| set.ranges(protocol).first().map(|&(lo, _)| (lo, protocol)));
    json!({
        "text": set.to_string(),
        "first": first.map(|(port, protocol)| json!({"port": port, "protocol": protocol})),
    })
}

/// Pod pairs from `a` to `b`: every source key of one with every destination key of the
/// other, less each pod's pair with itself when they are one node. With them, per allowed
/// port set, the first key pair (indices into `a.sources`, `b.destinations`) whose named
/// endpoints differ: a pair a reader can check.
type Examples = Vec<(PortSetId, (usize, usize))>;

fn pairs(
    connectivity: &Connectivity,
    open: &[bool],
    a: &Unit,
    b: &Unit,
    same: bool,
) -> (Tally, Examples) {
    let mut tally = Tally::default();
    let mut examples: Examples = Vec::new();
    for (i, &(src, n)) in a.sources.iter().enumerate() {
        for (j, &(dst, m)) in b.destinations.iter().enumerate() {
            let id = connectivity.allowed_between(src, dst);
            let total = n * m;
            let allowed = open[id as usize];
            tally.add(id, if allowed { total } else { 0 }, total);
            if allowed
                && a.source_names[i] != b.destination_names[j]
                && !examples.iter().any(|(known, _)| *known == id)
            {
                examples.push((id, (i, j)));
            }
        }
    }
    if same {
        for &(class, n) in &a.classes {
            let id = connectivity.allowed_id(Vertex::Class(class), Vertex::Class(class));
            tally.total -= n;
            if open[id as usize] {
                tally.allowed -= n;
                tally.remove(id, n);
            }
        }
    }
    (tally, examples)
}

fn distinct_classes(analysis: &Analysis, endpoints: &[EndpointId]) -> usize {
    let mut seen: Vec<(&str, ClassId)> = endpoints
        .iter()
        .map(|&id| {
            (
                analysis.endpoint(id).namespace.as_str(),
                analysis.class_of(id),
            )
        })
        .collect();
    seen.sort_unstable();
    seen.dedup();
    seen.len()
}

/// One node per namespace and class: pods every policy treats alike.
fn class_units(
    analysis: &Analysis,
    connectivity: &Connectivity,
    endpoints: &[EndpointId],
) -> Vec<Unit> {
    let mut index: FxHashMap<(&str, ClassId), usize> = FxHashMap::default();
    let mut units: Vec<Unit> = Vec::new();
    for &id in endpoints {
        let endpoint = analysis.endpoint(id);
        let key = (endpoint.namespace.as_str(), analysis.class_of(id));
        let i = *index.entry(key).or_insert_with(|| {
            units.push(Unit::new(
                endpoint.qualified_name(),
                Some(endpoint.namespace.clone()),
                "class",
            ));
            units.len() - 1
        });
        units[i].add_endpoint(analysis, connectivity, id);
    }
    units
}

/// One node per namespace with pods, but `zoom` (drawn in detail instead).
fn namespace_units(
    analysis: &Analysis,
    connectivity: &Connectivity,
    zoom: Option<&str>,
) -> Vec<Unit> {
    let cluster = analysis.cluster();
    let mut units: Vec<Unit> = cluster
        .namespaces
        .iter()
        .map(|ns| Unit::new(ns.name.clone(), Some(ns.name.clone()), "namespace"))
        .collect();
    let position: FxHashMap<&str, usize> = cluster
        .namespaces
        .iter()
        .enumerate()
        .map(|(i, ns)| (ns.name.as_str(), i))
        .collect();
    for (id, endpoint) in cluster.endpoints.iter_enumerated() {
        if zoom != Some(endpoint.namespace.as_str()) {
            units[position[endpoint.namespace.as_str()]].add_endpoint(analysis, connectivity, id);
        }
    }
    units.retain(|u| u.pods > 0);
    units
}

fn place_on_circle(units: &mut [Unit], members: &[usize], center: (f64, f64), radius: f64) {
    let n = members.len().max(1) as f64;
    for (k, &i) in members.iter().enumerate() {
        // From the top, clockwise: the first member where a reader starts.
        let angle = TAU * k as f64 / n - TAU / 4.0;
        units[i].position = (
            center.0 + radius * angle.cos(),
            center.1 + radius * angle.sin(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_engine::Subject;
    use palisade_manifest::{LoadOptions, load_str};
    use palisade_synth::{Mode, Params, generate};

    fn generated(pods: usize, mode: Mode) -> Analysis {
        let params = Params {
            seed: 7,
            pods,
            policies: pods / 8,
            namespaces: None,
            mode,
        };
        let mut text = Vec::new();
        generate(&params).unwrap().write_stream(&mut text).unwrap();
        let options = LoadOptions {
            default_namespace: "default".to_string(),
        };
        let loaded = load_str("generated", &String::from_utf8(text).unwrap(), &options);
        assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
        Analysis::new(loaded.cluster)
    }

    /// The node an endpoint falls in, by the level's own rule.
    fn node_of(view: &Value, analysis: &Analysis, id: EndpointId) -> Option<usize> {
        let endpoint = analysis.endpoint(id);
        let nodes = view["nodes"].as_array().unwrap();
        let zoomed = view["namespace"].as_str();
        let level = if zoomed.is_some_and(|ns| ns != endpoint.namespace) {
            "namespaces"
        } else {
            view["level"].as_str().unwrap()
        };
        let class = analysis.class_of(id);
        nodes.iter().position(|node| match level {
            "pods" => node["name"] == endpoint.qualified_name(),
            "namespaces" => node["kind"] == "namespace" && node["name"] == endpoint.namespace,
            _ => {
                node["kind"] == "class"
                    && node["members"][0]
                        .as_str()
                        .and_then(|first| analysis.find_endpoint(first))
                        .is_some_and(|first| {
                            analysis.class_of(first) == class
                                && analysis.endpoint(first).namespace == endpoint.namespace
                        })
            }
        })
    }

    /// Every cell against the engine's per-pair answer (`allowed_ports`, not the connectivity
    /// tables the view counts with), pod pairs weighted by replicas.
    fn assert_cells_agree(analysis: &Analysis, view: &Value, filter: Option<PortFilter>) {
        let open = |set: &palisade_engine::PortSet| match filter {
            Some(f) => set.contains(f.protocol, f.port),
            None => !set.is_empty(),
        };
        let mut expected: FxHashMap<(usize, usize), (u64, u64)> = FxHashMap::default();
        let endpoints = || analysis.cluster().endpoints.keys();
        for a in endpoints() {
            for b in endpoints() {
                let (ra, rb) = (
                    u64::from(analysis.endpoint(a).replicas),
                    u64::from(analysis.endpoint(b).replicas),
                );
                let pairs = if a == b { ra * (ra - 1) } else { ra * rb };
                if pairs == 0 {
                    continue;
                }
                let (from, to) = (
                    node_of(view, analysis, a).unwrap(),
                    node_of(view, analysis, b).unwrap(),
                );
                let allowed =
                    open(&analysis.allowed_ports(Subject::Endpoint(a), Subject::Endpoint(b)));
                let cell = expected.entry((from, to)).or_default();
                cell.0 += if allowed { pairs } else { 0 };
                cell.1 += pairs;
            }
        }
        let nodes = view["nodes"].as_array().unwrap();
        for (id, node) in nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n["kind"] == "outside")
        {
            let address: std::net::IpAddr = node["members"][0].as_str().unwrap().parse().unwrap();
            for endpoint in endpoints() {
                let pods = u64::from(analysis.endpoint(endpoint).replicas);
                let from = node_of(view, analysis, endpoint).unwrap();
                let (e, x) = (Subject::Endpoint(endpoint), Subject::External(address));
                for (pair, allowed) in [
                    ((from, id), open(&analysis.allowed_ports(e, x))),
                    ((id, from), open(&analysis.allowed_ports(x, e))),
                ] {
                    let cell = expected.entry(pair).or_default();
                    cell.0 += if allowed { pods } else { 0 };
                    cell.1 += pods;
                }
            }
        }
        let cells: FxHashMap<(usize, usize), (u64, u64)> = view["cells"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let n = |i: usize| c[i].as_u64().unwrap();
                ((n(0) as usize, n(1) as usize), (n(2), n(3)))
            })
            .collect();
        assert_eq!(cells, expected, "level {}", view["level"]);
        // A cell's example pair allows exactly the port set the cell shows.
        let subject = |name: &str| match name.parse() {
            Ok(address) => Subject::External(address),
            Err(_) => Subject::Endpoint(analysis.find_endpoint(name).unwrap()),
        };
        for cell in view["cells"].as_array().unwrap() {
            let (Some(src), Some(dst)) = (cell[5].as_str(), cell[6].as_str()) else {
                continue;
            };
            let shown = &view["port_sets"][cell[4].as_u64().unwrap() as usize]["text"];
            let allowed = analysis.allowed_ports(subject(src), subject(dst));
            assert_eq!(shown, &allowed.to_string(), "{src} -> {dst}");
        }
        let with_examples = view["cells"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c[5].is_string())
            .count();
        assert!(with_examples > 0);
    }

    #[test]
    fn every_level_counts_the_pod_pairs_the_engine_decides() {
        let small = Limits {
            pods: 10,
            classes: 20,
        };
        let cases: [(usize, Mode, Option<&str>, Limits, &str); 5] = [
            (60, Mode::Pods, None, LIMITS, "pods"),
            (
                60,
                Mode::Pods,
                None,
                Limits { pods: 10, ..LIMITS },
                "classes",
            ),
            (200, Mode::Pods, None, small, "namespaces"),
            (200, Mode::Workloads, None, small, "namespaces"),
            (200, Mode::Pods, Some("kube-system"), LIMITS, "pods"),
        ];
        for (pods, mode, zoom, limits, level) in cases {
            let analysis = generated(pods, mode);
            let connectivity = analysis.connectivity();
            let view = View::with_limits(&analysis, &connectivity, zoom, limits).unwrap();
            for filter in [
                None,
                Some(PortFilter {
                    port: 80,
                    protocol: Protocol::Tcp,
                }),
            ] {
                let json = view.json(&connectivity, filter);
                assert_eq!(json["level"], level, "{pods} {mode:?} {zoom:?}");
                assert_cells_agree(&analysis, &json, filter);
            }
        }
    }

    #[test]
    fn an_unknown_namespace_is_refused() {
        let analysis = generated(20, Mode::Pods);
        let connectivity = analysis.connectivity();
        let refused = View::new(&analysis, &connectivity, Some("nowhere"));
        assert_eq!(refused.err().unwrap(), "no namespace named \"nowhere\"");
    }
}
