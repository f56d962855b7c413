//! `matrix -o summary`: the whole matrix folded into counts, for clusters far too large to list
//! pair by pair. Every ordered pod pair is counted (workloads by their replicas); a pair counts
//! as allowed when at least one port is open.

use palisade_engine::{
    Analysis, ClassId, Connectivity, DestinationKey, Direction, PortSetId, SourceKey, TiVec, Vertex,
};
use rustc_hash::FxHashMap;
use std::io::Write;

struct ClassInfo {
    name: String,
    namespace: usize,
    pods: u64,
    isolated: [bool; 2],
}

/// Pod pairs counted between two groups of pods (namespaces; nodes of the web page).
#[derive(Default, Clone)]
pub(crate) struct Tally {
    pub allowed: u64,
    pub total: u64,
    /// (port set, pod pairs) for allowed pairs; few distinct sets per namespace pair.
    pub sets: Vec<(PortSetId, u64)>,
    /// Pods to themselves: always allowed, whatever their siblings may do.
    pub loopback: u64,
}

/// Classes of one namespace that share a source (or destination) key.
struct KeyGroup<K> {
    key: K,
    namespace: usize,
    pods: u64,
}

fn group_index<K: Copy + Eq + std::hash::Hash>(
    groups: &mut Vec<KeyGroup<K>>,
    index: &mut FxHashMap<(usize, K), usize>,
    class: &ClassInfo,
    key: K,
) -> usize {
    let i = *index.entry((class.namespace, key)).or_insert_with(|| {
        groups.push(KeyGroup {
            key,
            namespace: class.namespace,
            pods: 0,
        });
        groups.len() - 1
    });
    groups[i].pods += class.pods;
    i
}

impl Tally {
    /// Takes back `pairs` counted as allowed under `id` (the summary counts them as loopback).
    pub fn remove(&mut self, id: PortSetId, pairs: u64) {
        if let Some(entry) = self.sets.iter_mut().find(|(known, _)| *known == id) {
            entry.1 -= pairs;
        }
        self.sets.retain(|(_, n)| *n > 0);
    }

    pub fn add(&mut self, id: PortSetId, allowed_pairs: u64, total: u64) {
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

/// One line of NAMESPACE PAIRS.
fn write_pair(
    out: &mut dyn Write,
    connectivity: &Connectivity,
    (from, to): (&str, &str),
    tally: &Tally,
    width: usize,
) -> std::io::Result<()> {
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
    )
}

pub fn write(
    out: &mut dyn Write,
    analysis: &Analysis,
    connectivity: &Connectivity,
    with_externals: bool,
) -> std::io::Result<()> {
    let cluster = analysis.cluster();
    let namespaces: Vec<&str> = cluster.namespaces.iter().map(|n| n.name.as_str()).collect();
    let namespace_ids: FxHashMap<&str, usize> = namespaces
        .iter()
        .enumerate()
        .map(|(i, n)| (*n, i))
        .collect();
    let mut classes: TiVec<ClassId, Option<ClassInfo>> =
        analysis.class_ids().map(|_| None).collect();
    for (id, ep) in cluster.endpoints.iter_enumerated() {
        let info = classes[analysis.class_of(id)].get_or_insert_with(|| ClassInfo {
            name: format!("{}/{}", ep.namespace, ep.name),
            // The engine lists every namespace an endpoint is in.
            namespace: namespace_ids[ep.namespace.as_str()],
            pods: 0,
            isolated: [Direction::Ingress, Direction::Egress]
                .map(|d| !analysis.isolating_policies(id, d).is_empty()),
        });
        info.pods += u64::from(ep.replicas);
    }
    let classes: Vec<(ClassId, ClassInfo)> = classes
        .into_iter_enumerated()
        .filter_map(|(id, info)| info.map(|i| (id, i)))
        .collect();
    let total_pods: u64 = classes.iter().map(|(_, c)| c.pods).sum();
    let nonempty: Vec<bool> = (0..connectivity.port_set_count())
        .map(|id| !connectivity.port_set(id as PortSetId).is_empty())
        .collect();

    // Classes that send (receive) alike and share a namespace are counted together: the loop
    // below runs over these groups, not over classes or pods.
    let mut sources: Vec<KeyGroup<SourceKey>> = Vec::new();
    let mut destinations: Vec<KeyGroup<DestinationKey>> = Vec::new();
    let mut source_of: FxHashMap<(usize, SourceKey), usize> = FxHashMap::default();
    let mut destination_of: FxHashMap<(usize, DestinationKey), usize> = FxHashMap::default();
    let mut class_groups = Vec::with_capacity(classes.len());
    for (class, info) in &classes {
        let node = Vertex::Class(*class);
        let src = group_index(
            &mut sources,
            &mut source_of,
            info,
            connectivity.source_key(node),
        );
        let dst = group_index(
            &mut destinations,
            &mut destination_of,
            info,
            connectivity.destination_key(node),
        );
        class_groups.push((src, dst));
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

    // One source namespace at a time: its row of namespace pairs is counted, written and
    // reused, so memory grows with namespaces, not with their square.
    let n = namespaces.len();
    let mut sources_in = vec![Vec::new(); n];
    for (si, src) in sources.iter().enumerate() {
        sources_in[src.namespace].push(si);
    }
    let mut classes_in = vec![Vec::new(); n];
    for (ci, (_, info)) in classes.iter().enumerate() {
        classes_in[info.namespace].push(ci);
    }
    // Pods one pod of each group reaches / is reached by, counted over groups.
    let mut reaches = vec![0u64; sources.len()];
    let mut reached_by = vec![0u64; destinations.len()];
    let loopback_only = |class: ClassId| {
        let id = connectivity.allowed_id(Vertex::Class(class), Vertex::Class(class));
        !nonempty[id as usize]
    };
    let mut row = vec![Tally::default(); n];
    for from in 0..n {
        // A namespace without pods sends nothing: its row is empty.
        if sources_in[from].is_empty() {
            continue;
        }
        row.iter_mut().for_each(|tally| *tally = Tally::default());
        for &si in &sources_in[from] {
            let src = &sources[si];
            for (di, dst) in destinations.iter().enumerate() {
                let id = connectivity.allowed_between(src.key, dst.key);
                let total = src.pods * dst.pods;
                let open = nonempty[id as usize];
                row[dst.namespace].add(id, if open { total } else { 0 }, total);
                if open {
                    reaches[si] += dst.pods;
                    reached_by[di] += src.pods;
                }
            }
        }
        // A pod to itself is loopback: always allowed, whatever its siblings may do.
        for &ci in &classes_in[from] {
            let (class, info) = &classes[ci];
            let tally = &mut row[from];
            tally.loopback += info.pods;
            if loopback_only(*class) {
                tally.allowed += info.pods;
            } else {
                let id = connectivity.allowed_id(Vertex::Class(*class), Vertex::Class(*class));
                tally.remove(id, info.pods);
            }
        }
        for (to, tally) in row.iter().enumerate() {
            if tally.total > 0 {
                write_pair(
                    out,
                    connectivity,
                    (namespaces[from], namespaces[to]),
                    tally,
                    width,
                )?;
            }
        }
    }
    // A pod reaches itself too when only loopback lets it (no port of its own class is open).
    let per_class: Vec<(u64, u64)> = classes
        .iter()
        .zip(&class_groups)
        .map(|((class, _), &(src, dst))| {
            let me = u64::from(loopback_only(*class));
            (reaches[src] + me, reached_by[dst] + me)
        })
        .collect();

    writeln!(out)?;
    writeln!(
        out,
        "CLASSES OF IDENTICAL PODS: how many pods one of its pods reaches and is reached by, of {total_pods}"
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
    for ((class, info), (reaches, reached_by)) in classes.iter().zip(per_class) {
        let isolated = match info.isolated {
            [true, true] => "ingress+egress",
            [true, false] => "ingress",
            [false, true] => "egress",
            [false, false] => "-",
        };
        let name = match analysis.class_members(*class).len() {
            1 => info.name.clone(),
            n => format!("{} (+{} alike)", info.name, n - 1),
        };
        let outside = externals
            .iter()
            .enumerate()
            .filter(|(x, _)| {
                !connectivity
                    .allowed(Vertex::Class(*class), Vertex::External(*x))
                    .is_empty()
            })
            .count();
        writeln!(
            out,
            "{name:name_width$}  {:>7}  {isolated:15}  {:>10}  {:>10}  {outside}/{}",
            info.pods,
            reaches,
            reached_by,
            externals.len()
        )?;
    }
    Ok(())
}
