use super::*;
use crate::analysis::Subject;
use crate::decide::SideVerdict;
use crate::model::{NetworkPolicy, PortRef, Rule};
use crate::testing::{arb_cluster, block, pod, pods_peer, policy, port, web_cluster};
use proptest::prelude::*;

/// Every endpoint local, every address pair, every protocol and interesting port: each side
/// of the program must say what the engine says, naming the same first admitting rule.
fn assert_agrees(cluster: Cluster, extra_addresses: &[&str]) {
    let analysis = Analysis::new(cluster);
    let local = every_pod_local(analysis.cluster());
    let program = NodeProgram::compile(&analysis, &local);
    let mut addresses: Vec<IpAddr> = local.iter().flat_map(|(_, ips)| ips.clone()).collect();
    addresses.extend(extra_addresses.iter().map(|a| a.parse::<IpAddr>().unwrap()));
    addresses.extend(
        analysis
            .external_ranges()
            .iter()
            .flat_map(|r| [r.first, r.last]),
    );
    for &src in &addresses {
        for &dst in &addresses {
            let (s, d) = (analysis.subject_for_ip(src), analysis.subject_for_ip(dst));
            if matches!((s, d), (Subject::Endpoint(a), Subject::Endpoint(b)) if a == b) {
                continue; // a pod's traffic to itself never reaches the node
            }
            for protocol in Protocol::ALL {
                for port in [1, 53, 80, 81, 82, 443, 5432, 8080, 65535] {
                    let decision = analysis.decide(s, d, protocol, port);
                    let context = format!("{src} -> {dst} {protocol}/{port}");
                    check_side(
                        &program,
                        program.side(Direction::Egress, src, dst, protocol, port),
                        &decision.egress,
                        &context,
                    );
                    check_side(
                        &program,
                        program.side(Direction::Ingress, dst, src, protocol, port),
                        &decision.ingress,
                        &context,
                    );
                    assert_eq!(
                        program.denies(src, dst, protocol, port),
                        !decision.allowed,
                        "{context}"
                    );
                }
            }
        }
    }
}

fn check_side(
    program: &NodeProgram,
    outcome: Option<SideOutcome>,
    verdict: &SideVerdict,
    context: &str,
) {
    let agrees = match (outcome, verdict) {
        (None, SideVerdict::NotGoverned) => true,
        (Some(SideOutcome::Open), SideVerdict::NotIsolated) => true,
        (Some(SideOutcome::Admitted(rule)), SideVerdict::Admitted { by, .. }) => {
            let rule = &program.rules[rule];
            (rule.policy, rule.direction, rule.index) == (by[0].policy, by[0].direction, by[0].rule)
        }
        (Some(SideOutcome::Denied(chain)), SideVerdict::NoRuleAdmits { isolating }) => {
            program.chains[chain].policies == *isolating
        }
        _ => false,
    };
    assert!(
        agrees,
        "{context}: program says {outcome:?}, engine says {verdict:?}"
    );
}

#[test]
fn program_sides_agree_with_the_engine() {
    let named = |n: &str| Some(PortRef::Named(n.to_string()));
    let cases: Vec<(&str, Vec<NetworkPolicy>)> = vec![
        ("no policies", vec![]),
        (
            "deny all ingress",
            vec![policy("prod", "deny", &[], Some(vec![]), None)],
        ),
        (
            "named port ingress from another namespace",
            vec![policy(
                "prod",
                "web",
                &[("app", "web")],
                Some(vec![Rule {
                    peers: vec![pods_peer(Some(&[]), &[("app", "client")])],
                    ports: vec![port(Protocol::Tcp, named("http"), None)],
                }]),
                None,
            )],
        ),
        (
            "ipBlock with except, port range",
            vec![policy(
                "prod",
                "db",
                &[("app", "db")],
                Some(vec![Rule {
                    peers: vec![
                        block("10.0.0.0/16", &["10.0.1.0/24"]),
                        pods_peer(None, &[("app", "web")]),
                    ],
                    ports: vec![port(Protocol::Tcp, Some(PortRef::Number(5000)), Some(5500))],
                }]),
                None,
            )],
        ),
        (
            "egress named port to any peer plus DNS",
            vec![policy(
                "dev",
                "client",
                &[],
                None,
                Some(vec![
                    Rule {
                        peers: vec![],
                        ports: vec![
                            port(Protocol::Tcp, named("http"), None),
                            port(Protocol::Tcp, Some(PortRef::Number(443)), None),
                        ],
                    },
                    Rule {
                        peers: vec![pods_peer(Some(&[("env", "prod")]), &[])],
                        ports: vec![port(Protocol::Udp, Some(PortRef::Number(53)), None)],
                    },
                ]),
            )],
        ),
        (
            "egress ipBlock matches pods by any address",
            vec![policy(
                "prod",
                "out",
                &[("app", "web")],
                None,
                Some(vec![Rule {
                    peers: vec![
                        block("10.0.1.0/24", &[]),
                        block("192.168.0.0/16", &["192.168.5.0/24"]),
                    ],
                    ports: vec![],
                }]),
            )],
        ),
        (
            "two policies, both directions, overlapping rules",
            vec![
                policy(
                    "prod",
                    "a",
                    &[("app", "web")],
                    Some(vec![Rule {
                        peers: vec![pods_peer(Some(&[]), &[])],
                        ports: vec![port(Protocol::Udp, None, None)],
                    }]),
                    Some(vec![]),
                ),
                policy(
                    "prod",
                    "b",
                    &[],
                    Some(vec![Rule::default()]),
                    Some(vec![Rule {
                        peers: vec![pods_peer(None, &[("app", "db")])],
                        ports: vec![port(Protocol::Tcp, named("pg"), None)],
                    }]),
                ),
            ],
        ),
    ];
    for (name, policies) in cases {
        eprintln!("case: {name}");
        let mut cluster = web_cluster();
        cluster.policies = policies.into();
        assert_agrees(
            cluster,
            &[
                "10.0.1.7",
                "192.168.5.5",
                "192.168.9.9",
                "8.8.8.8",
                "2001:db8::1",
            ],
        );
    }
}

#[test]
fn pods_alike_share_one_chain_and_rules_compile_once() {
    let mut cluster = web_cluster();
    for i in 0..50u8 {
        cluster.endpoints.push(pod(
            "prod",
            &format!("w{i}"),
            &[("app", "web")],
            &[&format!("10.0.2.{i}")],
            &[],
        ));
    }
    cluster.policies = vec![
        policy(
            "prod",
            "web",
            &[("app", "web")],
            Some(vec![Rule::default(), Rule::default()]),
            None,
        ),
        policy("prod", "all", &[], Some(vec![Rule::default()]), None),
    ]
    .into();
    let analysis = Analysis::new(cluster);
    let local = every_pod_local(analysis.cluster());
    let program = NodeProgram::compile(&analysis, &local);
    // Signatures: {web, all} for web pods, {all} for db and the other namespace is open.
    assert_eq!(program.chains.len(), 2);
    assert_eq!(program.rules.len(), 3);
    assert_eq!(program.locals.len(), 54);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn random_clusters_agree_with_the_engine(cluster in arb_cluster()) {
        assert_agrees(cluster, &["10.1.0.2", "10.3.9.9", "8.8.8.8", "fd00::99"]);
    }
}
