//! `matrix -o summary`: the whole matrix folded into counts, for clusters far too large to list
//! pair by pair. Every ordered pod pair is counted (workloads by their replicas); a pair counts
//! as allowed when at least one port is open.

use palisade_engine::{Analysis, ClassId, Connectivity, Direction, Node, PortSetId};
use std::io::Write;

struct ClassInfo {
    name: String,
    namespace: usize,
    pods: u64,
    isolated: [bool; 2],
}

#[derive(Default, Clone)]
struct Tally {
    allowed: u64,
    total: u64,
    /// (port set, pod pairs) for allowed pairs; few distinct sets per namespace pair.
    sets: Vec<(PortSetId, u64)>,
    /// Pods to themselves: always allowed, whatever their siblings may do.
    loopback: u64,
}

impl Tally {
    fn add(&mut self, id: PortSetId, allowed_pairs: u64, total: u64) {
        self.total += total;
        if allowed_pairs == 0 {
            return;
        }
        self.allowed += allowed_pairs;
        match self.sets.iter_mut().rev().find(|(known, _)| *known == id) {
            Some((_, n)) => *n += allowed_pairs,
            None => self.sets.push((id, allowed_pairs)),
        }
    }
}

const SHOWN_PORT_SETS: usize = 3;

pub fn write(
    out: &mut dyn Write,
    analysis: &Analysis,
    connectivity: &Connectivity,
    with_externals: bool,
) -> std::io::Result<()> {
    let cluster = analysis.cluster();
    let namespaces: Vec<&str> = cluster.namespaces.iter().map(|n| n.name.as_str()).collect();
    let namespace_id = |name: &str| namespaces.iter().position(|n| *n == name).unwrap_or(0);
    let mut classes: Vec<Option<ClassInfo>> = (0..analysis.class_count()).map(|_| None).collect();
    let mut endpoints_in_class = vec![0usize; classes.len()];
    for (id, ep) in cluster.endpoints.iter().enumerate() {
        let class = analysis.class_of(id);
        endpoints_in_class[class] += 1;
        let info = classes[class].get_or_insert_with(|| ClassInfo {
            name: format!("{}/{}", ep.namespace, ep.name),
            namespace: namespace_id(&ep.namespace),
            pods: 0,
            isolated: [Direction::Ingress, Direction::Egress]
                .map(|d| !analysis.isolating_policies(id, d).is_empty()),
        });
        info.pods += u64::from(ep.replicas);
    }
    let classes: Vec<(ClassId, ClassInfo)> = classes
        .into_iter()
        .enumerate()
        .filter_map(|(id, info)| info.map(|i| (id, i)))
        .collect();
    let total_pods: u64 = classes.iter().map(|(_, c)| c.pods).sum();
    let nonempty: Vec<bool> = (0..connectivity.port_set_count())
        .map(|id| !connectivity.port_set(id as PortSetId).is_empty())
        .collect();

    let mut pairs = vec![Tally::default(); namespaces.len() * namespaces.len()];
    // Per class: pods it reaches, pods that reach it.
    let mut reaches = vec![0u64; classes.len()];
    let mut reached_by = vec![0u64; classes.len()];
    for (si, (s, src)) in classes.iter().enumerate() {
        let row = &mut pairs[src.namespace * namespaces.len()..][..namespaces.len()];
        for (di, (d, dst)) in classes.iter().enumerate() {
            let id = connectivity.allowed_id(Node::Class(*s), Node::Class(*d));
            let loopback = if s == d { src.pods } else { 0 };
            let others = src.pods * dst.pods - loopback;
            let open = if nonempty[id as usize] { others } else { 0 };
            let tally = &mut row[dst.namespace];
            tally.add(id, open, others);
            tally.total += loopback;
            tally.allowed += loopback;
            tally.loopback += loopback;
            reaches[si] += open + loopback;
            reached_by[di] += open + loopback;
        }
    }

    let externals = if with_externals {
        connectivity.externals()
    } else {
        &[]
    };
    writeln!(
        out,
        "{total_pods} pods ({} endpoints, {} classes of identical pods) in {} namespaces, {} policies, {} outside ranges",
        cluster.endpoints.len(),
        classes.len(),
        namespaces.len(),
        cluster.policies.len(),
        externals.len()
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "NAMESPACE PAIRS: pod pairs with at least one open port, of all pod pairs"
    )?;
    let width = namespaces.iter().map(|n| n.len()).max().unwrap_or(0).max(4);
    writeln!(
        out,
        "{:width$}  {:width$}  {:>12}  {:>12}  ALLOWED PORTS (pod pairs)",
        "FROM", "TO", "ALLOWED", "DENIED"
    )?;
    for (i, tally) in pairs.iter().enumerate() {
        if tally.total == 0 {
            continue;
        }
        let (from, to) = (
            namespaces[i / namespaces.len()],
            namespaces[i % namespaces.len()],
        );
        let mut sets = tally.sets.clone();
        sets.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut shown: Vec<String> = sets
            .iter()
            .take(SHOWN_PORT_SETS)
            .map(|(id, n)| format!("{} ({n})", connectivity.port_set(*id)))
            .collect();
        if sets.len() > SHOWN_PORT_SETS {
            shown.push(format!("{} more", sets.len() - SHOWN_PORT_SETS));
        }
        if tally.loopback > 0 {
            shown.push(format!("loopback ({})", tally.loopback));
        }
        writeln!(
            out,
            "{from:width$}  {to:width$}  {:>12}  {:>12}  {}",
            tally.allowed,
            tally.total - tally.allowed,
            if shown.is_empty() {
                "-".to_string()
            } else {
                shown.join(", ")
            }
        )?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "CLASSES OF IDENTICAL PODS: pods each one reaches and is reached by, of {total_pods}"
    )?;
    let name_width = classes
        .iter()
        .map(|(_, c)| c.name.len())
        .max()
        .unwrap_or(0)
        .max(5)
        + 12;
    writeln!(
        out,
        "{:name_width$}  {:>7}  {:15}  {:>10}  {:>10}  OUTSIDE RANGES REACHED",
        "CLASS", "PODS", "ISOLATED", "REACHES", "REACHED BY"
    )?;
    for (i, (class, info)) in classes.iter().enumerate() {
        let isolated = match info.isolated {
            [true, true] => "ingress+egress",
            [true, false] => "ingress",
            [false, true] => "egress",
            [false, false] => "-",
        };
        let name = match endpoints_in_class[*class] {
            1 => info.name.clone(),
            n => format!("{} (+{} alike)", info.name, n - 1),
        };
        let outside = externals
            .iter()
            .enumerate()
            .filter(|(x, _)| {
                !connectivity
                    .allowed(Node::Class(*class), Node::External(*x))
                    .is_empty()
            })
            .count();
        writeln!(
            out,
            "{name:name_width$}  {:>7}  {isolated:15}  {:>10}  {:>10}  {outside}/{}",
            info.pods,
            reaches[i],
            reached_by[i],
            externals.len()
        )?;
    }
    Ok(())
}
