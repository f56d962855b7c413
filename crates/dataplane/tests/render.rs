mod common;

use palisade_dataplane::{ChainIndex, LogTag, Nft, RenderOptions, Runner, render};
use palisade_engine::ChainId;
use palisade_engine::{
    Analysis, Cluster, Direction, Isolation, NodeProgram, PortRef, Protocol, SideOutcome,
};
use palisade_engine::{EndpointId, PolicyId};
use std::net::IpAddr;

fn shop_ruleset(audit: bool) -> (palisade_dataplane::Ruleset, NodeProgram) {
    ruleset_of(common::shop(), audit)
}

/// The shop with its named ports written as numbers: no rule depends on the destination, so
/// every chain is one map lookup per family. db also admits web on 6432 and 7432, so its map
/// has more ports than addresses and leads with the port.
fn numbered_shop() -> Cluster {
    let mut cluster = common::shop();
    let number = |name: &str| match name {
        "http" => 80,
        "pg" => 5432,
        other => panic!("the shop has no port {other}"),
    };
    for policy in &mut cluster.policies {
        for rule in policy.ingress.iter_mut().chain(policy.egress.iter_mut()) {
            for port in &mut rule.ports {
                if let Some(PortRef::Named(name)) = &port.port {
                    port.port = Some(PortRef::Number(number(name)));
                }
            }
            if policy.name == "db" {
                rule.ports.extend([common::tcp(6432), common::tcp(7432)]);
            }
        }
    }
    cluster
}

fn ruleset_of(cluster: Cluster, audit: bool) -> (palisade_dataplane::Ruleset, NodeProgram) {
    let (_, program, ruleset) = common::compile(cluster, audit);
    (ruleset, program)
}

#[test]
fn shop_table() {
    let (ruleset, _) = shop_ruleset(false);
    insta::assert_snapshot!(ruleset.text(7));
}

#[test]
fn numbered_shop_table_has_one_lookup_per_chain_and_family() {
    let (ruleset, _) = ruleset_of(numbered_shop(), false);
    insta::assert_snapshot!(ruleset.text(7));
}

#[test]
fn shop_table_in_audit_mode_accepts_what_it_would_drop() {
    let (enforcing, _) = shop_ruleset(false);
    let (audit, _) = shop_ruleset(true);
    let (enforcing_text, audit_text) = (enforcing.text(7), audit.text(7));
    assert!(enforcing_text.contains("drop") && !audit_text.contains("drop"));
    let tag = LogTag::Audit(audit.chain_keys[ChainId::from(0)]).prefix();
    assert!(audit_text.contains(&format!("{tag}\" group 100\n\t\treturn\n")));
    assert_ne!(enforcing.digest, audit.digest);
}

/// The digest tells tables apart, the generation only stamps them. Chains are named after the
/// policies that isolate: when only what a rule admits changes, the change is set elements.
#[test]
fn digests_follow_the_content_and_chains_the_policies() {
    let analysis = Analysis::new(numbered_shop());
    let options = RenderOptions {
        audit: false,
        log_group: 100,
    };
    let web = EndpointId::from(0);
    let local = vec![(web, analysis.endpoint(web).ips.clone())];
    let program = NodeProgram::compile(&analysis, &local);
    let one = render(&analysis, &program, options);
    assert_eq!(one, render(&analysis, &program, options));
    assert_ne!(one.text(1), one.text(2));
    let restamp = one.delta(&one, 2).expect("a change of the stamp");
    assert!(
        restamp.lines().count() == 2 && restamp.lines().all(|l| l.contains(" state ")),
        "{restamp}"
    );
    let db = EndpointId::from(1);
    let fewer = NodeProgram::compile(&analysis, &[(db, analysis.endpoint(db).ips.clone())]);
    assert_ne!(one.digest, render(&analysis, &fewer, options).digest);

    // web's second rule admits one port more: another table, the same chain and rules.
    let mut cluster = numbered_shop();
    cluster.policies[PolicyId::from(0)].ingress[1].ports[0].end_port = Some(83);
    let wider = Analysis::new(cluster);
    let other = render(&wider, &NodeProgram::compile(&wider, &local), options);
    assert_ne!(one.digest, other.digest);
    assert_eq!(one.chain_keys, other.chain_keys);
    let delta = other.delta(&one, 2).expect("a change of elements");
    let statements: Vec<&str> = delta
        .lines()
        .map(|line| line.split(" inet ").next().unwrap_or(line))
        .collect();
    assert_eq!(
        statements,
        [
            "delete element",
            "add element",
            "delete element",
            "add element"
        ],
        "{delta}"
    );
}

#[test]
fn log_tags_round_trip() {
    for tag in [
        LogTag::Open(Direction::Egress),
        LogTag::Open(Direction::Ingress),
        LogTag::Admitted(0x0123_4567_89ab_cdef, 12),
        LogTag::AdmittedIn(u64::MAX),
        LogTag::Denied(3),
        LogTag::Audit(0),
    ] {
        assert_eq!(LogTag::parse(&tag.prefix()), Some(tag), "{}", tag.prefix());
    }
    for bad in [
        "",
        "pal",
        "pal x",
        "pal z0123456789abcdef",
        "pal a0123456789abcdef",
        "pal a0123456789abcdef.",
        "pal k0123",
        "pal k0123456789abcdef extra",
        "other k0123456789abcdef",
    ] {
        assert_eq!(LogTag::parse(bad), None, "{bad:?}");
    }
}

#[test]
fn counts_match_the_table() {
    let (ruleset, program) = shop_ruleset(false);
    // source check: 1; forward: 3 fixed + 4 lookups; input: 2 fixed + 2 lookups; open chains:
    // 1 each; a log and a verdict per signature chain; 8 compiled rule lines (named-port rules
    // have one per address family); one log rule per admitting rule (5).
    assert_eq!(
        ruleset.rules(),
        1 + 7 + 4 + 2 + 2 * program.chains.len() + 8 + 5
    );
    // 12 pod map entries; set elements: r0 2+2, r1 1+2, r2 2+2, r4 1 (r3, probe's egress to
    // web's http, shares r0's destination sets).
    assert_eq!(ruleset.set_elements(), 12 + 12);
}

/// `nft -c` checks the table against the kernel without loading it (needs nft, and root for
/// the kernel part): run in a fresh namespace so nothing touches the machine's own.
#[test]
#[ignore = "needs root, iproute2 and nft: as root, cargo test -- --include-ignored"]
fn nft_accepts_the_rendered_tables() {
    palisade_dataplane::require_root_tests("nft_accepts_the_rendered_tables");
    let ns = palisade_dataplane::Netns::create("palisade-t").unwrap();
    let nft = Nft::new(Runner::in_netns(ns.name()));
    for (cluster, audit) in [
        (common::shop(), false),
        (common::shop(), true),
        (numbered_shop(), false),
    ] {
        let (ruleset, _) = ruleset_of(cluster, audit);
        nft.check(&ruleset)
            .unwrap_or_else(|e| panic!("{e}\n{}", ruleset.text(1)));
    }
}

/// The index that explains a chain's set admissions names, for every peer, protocol and port,
/// the rule the program's own walk of the chain finds (and none where the walk finds none).
#[test]
fn chain_index_names_the_rule_the_program_finds() {
    let (_, program) = ruleset_of(numbered_shop(), false);
    let peers: Vec<IpAddr> = [
        "10.1.0.1",
        "10.1.0.2",
        "10.2.0.1",
        "10.99.0.1",
        "10.99.9.1",
        "10.99.200.1",
        "1.2.3.4",
        "fd01::1",
        "fd02::1",
        "2001:db8::1",
    ]
    .iter()
    .map(|ip| ip.parse().unwrap())
    .collect();
    let mut checked = 0;
    for pod in &program.locals {
        for (direction, isolation) in [
            (Direction::Ingress, pod.ingress),
            (Direction::Egress, pod.egress),
        ] {
            let Isolation::Isolated(chain) = isolation else {
                continue;
            };
            let index = ChainIndex::new(&program, chain);
            for &local in &pod.ips {
                for &peer in peers.iter().filter(|p| p.is_ipv4() == local.is_ipv4()) {
                    for protocol in Protocol::ALL {
                        for port in [0, 53, 79, 80, 81, 82, 83, 5432, 6432, 7432, 65535] {
                            let walked = match program.side(direction, local, peer, protocol, port)
                            {
                                Some(SideOutcome::Admitted(rule)) => Some(rule),
                                _ => None,
                            };
                            assert_eq!(
                                index.rule(peer, protocol, port),
                                walked,
                                "chain {chain}: {peer} {protocol:?} {port}"
                            );
                            checked += usize::from(walked.is_some());
                        }
                    }
                }
            }
        }
    }
    assert!(checked > 0, "no admission was checked");
}
