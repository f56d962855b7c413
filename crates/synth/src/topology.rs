//! Namespaces, workloads and pods: who is in the cluster, with which labels, ports and IPs.

use crate::SynthError;
use crate::policies;
use palisade_engine::{ContainerPort, Endpoint, EndpointKind, Labels, Namespace, NetworkPolicy};
use rand::seq::IndexedRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};

/// Pod IPs are 10.0.0.1 onwards; 10.255.255.255 is left out as the broadcast address.
const MAX_PODS: usize = (1 << 24) - 2;
/// Replicas of CoreDNS in kube-system, when there are that many pods to give.
const DNS_REPLICAS: usize = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// One Pod document per replica, each with its own `status.podIP`.
    Pods,
    /// One Deployment per workload with `spec.replicas`.
    Workloads,
}

#[derive(Clone, Debug)]
pub struct Params {
    pub seed: u64,
    /// Total pods, kube-system's included.
    pub pods: usize,
    /// Total NetworkPolicies.
    pub policies: usize,
    /// Application namespaces; `None`: pods/1000, at least 3.
    pub namespaces: Option<usize>,
    pub mode: Mode,
}

impl Params {
    pub fn namespace_count(&self) -> usize {
        self.namespaces.unwrap_or((self.pods / 1000).max(3))
    }
}

#[derive(Clone, Debug)]
pub struct Pod {
    pub name: String,
    pub ip: Ipv4Addr,
}

/// Pods that share a template: the same labels and container ports.
#[derive(Clone, Debug)]
pub struct Workload {
    pub name: String,
    /// The pod template's labels (a Pod also carries `pod-template-hash`).
    pub labels: Labels,
    pub template_hash: String,
    pub image: String,
    pub ports: Vec<ContainerPort>,
    /// One per replica.
    pub pods: Vec<Pod>,
}

impl Workload {
    /// A Pod's labels: the template's plus `pod-template-hash`, as a ReplicaSet stamps them.
    pub fn pod_labels(&self) -> Labels {
        let mut labels = self.labels.clone();
        labels.insert("pod-template-hash".into(), self.template_hash.clone());
        labels
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }
}

#[derive(Clone, Debug)]
pub struct GeneratedNamespace {
    pub namespace: Namespace,
    pub workloads: Vec<Workload>,
    pub policies: Vec<NetworkPolicy>,
}

impl GeneratedNamespace {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.namespace.labels.get(key).map(String::as_str)
    }
}

#[derive(Clone, Debug)]
pub struct Generated {
    pub mode: Mode,
    /// kube-system first, then the application namespaces.
    pub namespaces: Vec<GeneratedNamespace>,
}

impl Generated {
    pub fn pod_count(&self) -> usize {
        self.workloads().map(|w| w.pods.len()).sum()
    }

    pub fn policy_count(&self) -> usize {
        self.namespaces.iter().map(|ns| ns.policies.len()).sum()
    }

    pub fn workloads(&self) -> impl Iterator<Item = &Workload> {
        self.namespaces.iter().flat_map(|ns| &ns.workloads)
    }

    /// The endpoints a loader must read from the output, in document order.
    pub fn endpoints(&self) -> Vec<Endpoint> {
        let mut endpoints = Vec::new();
        for ns in &self.namespaces {
            let namespace = &ns.namespace.name;
            for w in &ns.workloads {
                match self.mode {
                    Mode::Pods => endpoints.extend(w.pods.iter().map(|pod| {
                        let mut ep = Endpoint::pod(namespace, &pod.name, w.pod_labels());
                        ep.ips = vec![IpAddr::V4(pod.ip)];
                        ep.ports = w.ports.clone();
                        ep
                    })),
                    Mode::Workloads => {
                        let mut ep = Endpoint::pod(namespace, &w.name, w.labels.clone());
                        ep.kind = EndpointKind::Workload {
                            kind: "Deployment".into(),
                        };
                        ep.replicas = u32::try_from(w.pods.len()).unwrap_or(u32::MAX);
                        ep.ports = w.ports.clone();
                        endpoints.push(ep);
                    }
                }
            }
        }
        endpoints
    }
}

pub fn generate(params: &Params) -> Result<Generated, SynthError> {
    let namespace_count = params.namespace_count();
    if namespace_count == 0 {
        return Err(SynthError::NoNamespaces);
    }
    if params.pods > MAX_PODS {
        return Err(SynthError::TooManyPods {
            pods: params.pods,
            max: MAX_PODS,
        });
    }
    let mut generator = Generator {
        rng: ChaCha8Rng::seed_from_u64(params.seed),
        next_ip: 1,
    };
    let dns_pods = params.pods.min(DNS_REPLICAS);
    let mut namespaces = vec![generator.kube_system(dns_pods)];
    let weights: Vec<u64> = (0..namespace_count)
        .map(|_| generator.rng.random_range(50..=150))
        .collect();
    let budgets = apportion(params.pods - dns_pods, &weights);
    for (index, budget) in budgets.into_iter().enumerate() {
        namespaces.push(generator.app_namespace(index, budget));
    }
    policies::assign(&mut namespaces[1..], params.policies, &mut generator.rng);
    Ok(Generated {
        mode: params.mode,
        namespaces,
    })
}

/// Splits `total` in proportion to `weights` (largest remainder, ties to the lower index), so
/// the parts add up exactly. All-zero weights split evenly.
pub(crate) fn apportion(total: usize, weights: &[u64]) -> Vec<usize> {
    let even;
    let weights = if weights.iter().all(|&w| w == 0) {
        even = vec![1; weights.len()];
        &even
    } else {
        weights
    };
    let sum: u128 = weights.iter().map(|&w| u128::from(w)).sum();
    if sum == 0 {
        return Vec::new();
    }
    let total = total as u128;
    let mut parts: Vec<usize> = Vec::with_capacity(weights.len());
    let mut remainders: Vec<(u128, usize)> = Vec::with_capacity(weights.len());
    for (i, &w) in weights.iter().enumerate() {
        let exact = total * u128::from(w);
        parts.push((exact / sum) as usize);
        remainders.push((exact % sum, i));
    }
    let given: usize = parts.iter().sum();
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(_, i) in remainders.iter().take(total as usize - given) {
        parts[i] += 1;
    }
    parts
}

/// `platform` first: the team whose namespaces scrape metrics everywhere.
pub(crate) const TEAMS: [&str; 12] = [
    "platform",
    "payments",
    "orders",
    "search",
    "identity",
    "catalog",
    "shipping",
    "analytics",
    "messaging",
    "billing",
    "reviews",
    "inventory",
];
pub(crate) const ENVS: [&str; 3] = ["prod", "staging", "dev"];
const NOUNS: [&str; 20] = [
    "checkout",
    "cart",
    "orders",
    "users",
    "auth",
    "catalog",
    "search",
    "inventory",
    "shipping",
    "billing",
    "reviews",
    "notify",
    "ledger",
    "gateway",
    "profile",
    "media",
    "pricing",
    "recommend",
    "session",
    "audit",
];
/// What Kubernetes draws pod-template-hash and pod name suffixes from (no vowels, no 0/1/3).
const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tier {
    Web,
    Api,
    Db,
    Cache,
    Worker,
}

impl Tier {
    pub(crate) const ALL: [Tier; 5] = [Tier::Web, Tier::Api, Tier::Db, Tier::Cache, Tier::Worker];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Tier::Web => "web",
            Tier::Api => "api",
            Tier::Db => "db",
            Tier::Cache => "cache",
            Tier::Worker => "worker",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Tier> {
        Tier::ALL.into_iter().find(|t| t.as_str() == text)
    }

    /// Percent of workloads: many APIs and workers, fewer frontends and stores.
    fn sample(rng: &mut ChaCha8Rng) -> Tier {
        match rng.random_range(0..100) {
            0..15 => Tier::Web,
            15..50 => Tier::Api,
            50..60 => Tier::Db,
            60..70 => Tier::Cache,
            _ => Tier::Worker,
        }
    }

    /// Container ports as such workloads declare them: named, mostly TCP, some UDP and SCTP.
    fn ports(self, rng: &mut ChaCha8Rng) -> Vec<ContainerPort> {
        use palisade_engine::Protocol::{Sctp, Tcp, Udp};
        let p = |name: &str, port, protocol| ContainerPort {
            name: Some(name.to_string()),
            port,
            protocol,
        };
        match self {
            Tier::Web => vec![p("http", 8080, Tcp), p("metrics", 9090, Tcp)],
            Tier::Api => {
                let mut ports = vec![
                    p("http", 8080, Tcp),
                    p("grpc", 9000, Tcp),
                    p("metrics", 9090, Tcp),
                ];
                if rng.random_bool(0.25) {
                    ports.push(p("diameter", 3868, Sctp));
                }
                ports
            }
            Tier::Db => {
                if rng.random_bool(0.6) {
                    vec![p("postgres", 5432, Tcp), p("metrics", 9187, Tcp)]
                } else {
                    vec![p("mysql", 3306, Tcp), p("metrics", 9104, Tcp)]
                }
            }
            Tier::Cache => {
                if rng.random_bool(0.6) {
                    vec![p("redis", 6379, Tcp), p("metrics", 9121, Tcp)]
                } else {
                    vec![
                        p("memcache", 11211, Tcp),
                        p("memcache-udp", 11211, Udp),
                        p("metrics", 9150, Tcp),
                    ]
                }
            }
            Tier::Worker => {
                let mut ports = vec![p("metrics", 9090, Tcp)];
                if rng.random_bool(0.5) {
                    ports.push(p("statsd", 8125, Udp));
                }
                ports
            }
        }
    }
}

struct Generator {
    rng: ChaCha8Rng,
    /// Offset of the next pod IP in 10.0.0.0/8.
    next_ip: u32,
}

impl Generator {
    fn kube_system(&mut self, replicas: usize) -> GeneratedNamespace {
        use palisade_engine::Protocol::{Tcp, Udp};
        let port = |name: &str, port, protocol| ContainerPort {
            name: Some(name.to_string()),
            port,
            protocol,
        };
        let labels = Labels::from([("k8s-app".to_string(), "kube-dns".to_string())]);
        let coredns = self.workload(
            "coredns".into(),
            labels,
            "registry.k8s.io/coredns/coredns:v1.11.3".into(),
            vec![
                port("dns", 53, Udp),
                port("dns-tcp", 53, Tcp),
                port("metrics", 9153, Tcp),
            ],
            replicas,
        );
        GeneratedNamespace {
            namespace: Namespace::new("kube-system", Labels::new()),
            workloads: vec![coredns],
            policies: Vec::new(),
        }
    }

    /// Namespace `index`: team and env vary so that the first 36 pairs are all distinct.
    fn app_namespace(&mut self, index: usize, pods: usize) -> GeneratedNamespace {
        let team = TEAMS[index % TEAMS.len()];
        let env = ENVS[(index + index / TEAMS.len()) % ENVS.len()];
        let round = index / (TEAMS.len() * ENVS.len());
        let name = if round == 0 {
            format!("{team}-{env}")
        } else {
            format!("{team}-{env}-{round}")
        };
        let labels = Labels::from([
            ("team".to_string(), team.to_string()),
            ("env".to_string(), env.to_string()),
        ]);
        let mut workloads = Vec::new();
        let mut names = HashSet::new();
        let mut left = pods;
        while left > 0 {
            let replicas = self.replicas().min(left);
            left -= replicas;
            let tier = Tier::sample(&mut self.rng);
            let noun = NOUNS.choose(&mut self.rng).copied().unwrap_or("app");
            let name = unique(format!("{noun}-{}", tier.as_str()), &mut names);
            let version = match self.rng.random_range(0..10) {
                0..2 => None,
                n => Some(format!("v{}", 1 + n % 3)),
            };
            let mut labels = Labels::from([
                ("app".to_string(), name.clone()),
                ("tier".to_string(), tier.as_str().to_string()),
                ("team".to_string(), team.to_string()),
                ("env".to_string(), env.to_string()),
            ]);
            if let Some(v) = &version {
                labels.insert("version".into(), v.clone());
            }
            let image = format!(
                "registry.example.com/{team}/{name}:{}",
                version.as_deref().unwrap_or("latest")
            );
            let ports = tier.ports(&mut self.rng);
            workloads.push(self.workload(name, labels, image, ports, replicas));
        }
        GeneratedNamespace {
            namespace: Namespace::new(name, labels),
            workloads,
            policies: Vec::new(),
        }
    }

    fn workload(
        &mut self,
        name: String,
        labels: Labels,
        image: String,
        ports: Vec<ContainerPort>,
        replicas: usize,
    ) -> Workload {
        let template_hash = self.token(10);
        let mut suffixes = HashSet::with_capacity(replicas);
        let pods = (0..replicas)
            .map(|_| {
                let suffix = loop {
                    let candidate = self.token(5);
                    if suffixes.insert(candidate.clone()) {
                        break candidate;
                    }
                };
                let ip = Ipv4Addr::from(0x0A00_0000 + self.next_ip);
                self.next_ip += 1;
                Pod {
                    name: format!("{name}-{template_hash}-{suffix}"),
                    ip,
                }
            })
            .collect();
        Workload {
            name,
            labels,
            template_hash,
            image,
            ports,
            pods,
        }
    }

    /// Mostly small workloads, a few large ones: 1–3 (60%), 4–8 (30%), 9–20 (10%).
    fn replicas(&mut self) -> usize {
        match self.rng.random_range(0..10) {
            0..6 => self.rng.random_range(1..=3),
            6..9 => self.rng.random_range(4..=8),
            _ => self.rng.random_range(9..=20),
        }
    }

    fn token(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| char::from(*NAME_ALPHABET.choose(&mut self.rng).unwrap_or(&b'x')))
            .collect()
    }
}

/// `base`, or `base-2`, `base-3`, … when taken.
pub(crate) fn unique(base: String, taken: &mut HashSet<String>) -> String {
    if taken.insert(base.clone()) {
        return base;
    }
    (2..)
        .map(|n| format!("{base}-{n}"))
        .find(|candidate| taken.insert(candidate.clone()))
        .unwrap_or(base)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn apportion_examples() {
        let table: [(usize, &[u64], &[usize]); 5] = [
            (10, &[1, 1, 1], &[4, 3, 3]),
            (7, &[100, 50, 50], &[3, 2, 2]),
            (0, &[3, 5], &[0, 0]),
            (5, &[0, 0], &[3, 2]),
            (3, &[0, 7, 0], &[0, 3, 0]),
        ];
        for (total, weights, expected) in table {
            assert_eq!(
                apportion(total, weights),
                expected,
                "{total} over {weights:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn apportion_adds_up_and_stays_within_one_of_exact(
            total in 0usize..100_000,
            weights in proptest::collection::vec(0u64..200, 1..40),
        ) {
            let parts = apportion(total, &weights);
            prop_assert_eq!(parts.iter().sum::<usize>(), total);
            let sum: u64 = weights.iter().sum();
            if sum > 0 {
                for (part, w) in parts.iter().zip(&weights) {
                    let exact = total as f64 * *w as f64 / sum as f64;
                    prop_assert!((*part as f64 - exact).abs() < 1.0);
                }
            }
        }
    }

    #[test]
    fn unique_appends_the_first_free_number() {
        let mut taken = HashSet::new();
        let names: Vec<String> = (0..3)
            .map(|_| unique("cart-api".into(), &mut taken))
            .collect();
        assert_eq!(names, ["cart-api", "cart-api-2", "cart-api-3"]);
    }
}
