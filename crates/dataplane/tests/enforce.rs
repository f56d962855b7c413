//! Root tests: the rendered table loaded into a real (namespaced) node, probed with real
//! connections. Skipped with a message when not root or nft is missing.

mod common;

use common::topology::{Node, Proto, probe};
use palisade_dataplane::{Applied, Netns, Nft, Ruleset, conntrack};
use palisade_engine::PolicyId;
use palisade_engine::{Analysis, Protocol, Subject};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

fn require_root() {
    palisade_dataplane::require_root_tests("the enforcement tests");
}

fn shop_node(analysis: &Analysis) -> Node {
    let node = Node::hosting(analysis.cluster());
    node.serve(&[80, 81, 5432], &[53, 81]);
    node
}

/// The shop's pods serving on a node, with the shop's table applied (generation 1).
fn enforced_shop() -> (Analysis, Ruleset, Node, Nft) {
    let (analysis, _, ruleset) = common::compile(common::shop(), false);
    let node = shop_node(&analysis);
    let nft = Nft::new(node.node.runner());
    nft.apply(&ruleset, 1, None).unwrap();
    (analysis, ruleset, node, nft)
}

#[test]
#[ignore = "needs root, iproute2 and nft: as root, cargo test -- --include-ignored"]
fn real_connections_equal_the_engine_and_replies_need_no_rule() {
    require_root();
    let (analysis, ruleset, node, nft) = enforced_shop();
    let state = nft.current().unwrap().expect("table loaded");
    assert_eq!(state.written_by_agent, Some((1, ruleset.digest)));
    assert_eq!(
        (state.rules, state.set_elements),
        (ruleset.rules(), ruleset.set_elements())
    );

    let addresses: Vec<IpAddr> = node.pods.iter().flat_map(|p| p.ips.clone()).collect();
    let cases = [
        (Proto::Tcp, 80),
        (Proto::Tcp, 81),
        (Proto::Tcp, 5432),
        (Proto::Udp, 53),
        (Proto::Udp, 81),
    ];
    let mut probes = Vec::new();
    for &src in &addresses {
        for &dst in &addresses {
            if node.pod_of(src).ns.name() == node.pod_of(dst).ns.name()
                || src.is_ipv4() != dst.is_ipv4()
            {
                continue;
            }
            for (proto, port) in cases {
                probes.push((src, dst, proto, port));
            }
        }
    }
    // Denied probes wait out their deadline, so run them all at once.
    let node = std::sync::Arc::new(node);
    let handles: Vec<_> = probes
        .iter()
        .map(|&(src, dst, proto, port)| {
            let node = node.clone();
            std::thread::spawn(move || probe(&node, src, dst, proto, port))
        })
        .collect();
    let mut allowed = 0;
    for (&(src, dst, proto, port), handle) in probes.iter().zip(handles) {
        let measured = handle.join().unwrap();
        let protocol = if proto == Proto::Tcp {
            Protocol::Tcp
        } else {
            Protocol::Udp
        };
        let expected = analysis
            .decide(
                analysis.subject_for_ip(src),
                analysis.subject_for_ip(dst),
                protocol,
                port,
            )
            .allowed;
        assert_eq!(measured, expected, "{src} -> {dst} {proto:?}/{port}");
        allowed += usize::from(measured);
    }
    // Both outcomes occur, so the comparison cannot pass by accident.
    assert!(
        allowed > 0 && allowed < probes.len(),
        "{allowed} of {}",
        probes.len()
    );
    assert!(matches!(
        analysis.subject_for_ip(addresses[0]),
        Subject::Endpoint(_)
    ));
}

/// Shop without ops/probe's egress policy: probe's egress opens (its chain goes, its pod map
/// elements change), db still admits only web.
fn shop_without_probe_policy() -> palisade_dataplane::Ruleset {
    let mut cluster = common::shop();
    cluster.policies.retain(|p| p.namespace != "ops");
    common::compile(cluster, false).2
}

#[test]
#[ignore = "needs root, iproute2 and nft: as root, cargo test -- --include-ignored"]
fn updates_under_load_leak_no_denied_connection() {
    require_root();
    let (analysis, ruleset, node, nft) = enforced_shop();
    // ops/probe may not reach shop/db: db admits only web.
    let (probe_ip, db_ip): (IpAddr, IpAddr) =
        ("10.2.0.1".parse().unwrap(), "10.1.0.2".parse().unwrap());
    assert!(
        !analysis
            .decide(
                analysis.subject_for_ip(probe_ip),
                analysis.subject_for_ip(db_ip),
                Protocol::Tcp,
                5432
            )
            .allowed
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        node.pod_of(probe_ip)
            .ns
            .enter(move || {
                std::thread::spawn(move || {
                    let (mut tries, mut leaks) = (0u32, 0u32);
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        tries += 1;
                        if TcpStream::connect_timeout(
                            &SocketAddr::new(db_ip, 5432),
                            Duration::from_millis(20),
                        )
                        .is_ok()
                        {
                            leaks += 1;
                        }
                    }
                    (tries, leaks)
                })
            })
            .unwrap()
    };
    let started = Instant::now();
    let updates = 120;
    let tables = [ruleset, shop_without_probe_policy()];
    let (mut changed, mut replaced) = (0, 0);
    for generation in 2..2 + updates {
        let (in_force, next) = (
            &tables[generation as usize % 2],
            &tables[1 - generation as usize % 2],
        );
        // Every third update replaces the whole table, the others change what differs.
        let known = (generation % 3 != 0).then_some(in_force);
        match nft.apply(next, generation, known).unwrap() {
            Applied::Changed => changed += 1,
            Applied::Replaced => replaced += 1,
            Applied::ReplacedAfterFailedChange(e) => panic!("the change failed: {e}"),
        }
    }
    let elapsed = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (tries, leaks) = load.join().unwrap();
    eprintln!(
        "{updates} updates ({changed} changes, {replaced} replaces) in {elapsed:?} ({:?} each) under {tries} denied connection attempts: {leaks} leaked",
        elapsed / updates
    );
    assert_eq!(leaks, 0);
    assert!(tries > 0);
    assert_eq!((changed, replaced), (80, 40));
    let last = &tables[1 - (1 + updates as usize) % 2];
    assert_eq!(
        nft.current().unwrap().and_then(|t| t.written_by_agent),
        Some((1 + updates, last.digest))
    );
    // Control: without the table the same connection opens, so the load could see a leak.
    nft.remove().unwrap();
    let opened = node
        .pod_of(probe_ip)
        .ns
        .enter(move || TcpStream::connect(SocketAddr::new(db_ip, 5432)).is_ok())
        .unwrap();
    assert!(opened);
}

#[test]
#[ignore = "needs root, iproute2 and nft: as root, cargo test -- --include-ignored"]
fn revocation_stops_an_established_connection() {
    require_root();
    let (_, _, node, nft) = enforced_shop();
    // ops/probe → shop/web:80 is allowed now.
    let (probe_ip, web_ip): (IpAddr, IpAddr) =
        ("10.2.0.1".parse().unwrap(), "10.1.0.1".parse().unwrap());
    let mut stream = node
        .pod_of(probe_ip)
        .ns
        .enter(move || TcpStream::connect(SocketAddr::new(web_ip, 80)).unwrap())
        .unwrap();
    stream
        .set_read_timeout(Some(common::topology::PROBE_WAIT))
        .unwrap();
    let exchange = |stream: &mut TcpStream| {
        let mut buf = [0u8; 4];
        stream.write_all(b"ping").is_ok() && stream.read_exact(&mut buf).is_ok()
    };
    assert!(exchange(&mut stream));

    // web stops admitting probe.
    let mut cluster = common::shop();
    cluster.policies[PolicyId::from(0)].ingress.remove(0);
    let started = Instant::now();
    let (analysis, program, ruleset) = common::compile(cluster, false);
    nft.apply(&ruleset, 1, None).unwrap();
    let revoked = conntrack::revoke(&node.node.runner(), &program).unwrap();
    let elapsed = started.elapsed();
    eprintln!("compile + apply + revoke: {elapsed:?}, {revoked} connection(s) revoked");
    assert!(
        !analysis
            .decide(
                analysis.subject_for_ip(probe_ip),
                analysis.subject_for_ip(web_ip),
                Protocol::Tcp,
                80
            )
            .allowed
    );
    assert!(revoked >= 1);
    assert!(
        !exchange(&mut stream),
        "the revoked connection still carries data"
    );
}

#[test]
#[ignore = "needs root, iproute2 and nft: as root, cargo test -- --include-ignored"]
fn removing_the_table_leaves_nothing() {
    require_root();
    let (_, _, ruleset) = common::compile(common::shop(), false);
    let ns = palisade_dataplane::Netns::create("palisade-t").unwrap();
    let nft = Nft::new(ns.runner());
    assert_eq!(nft.current().unwrap(), None);
    nft.apply(&ruleset, 1, None).unwrap();
    nft.apply(&ruleset, 1, None).unwrap();
    assert!(nft.current().unwrap().is_some());
    nft.remove().unwrap();
    nft.remove().unwrap();
    assert_eq!(nft.current().unwrap(), None);
}

/// The table as the kernel lists it, item by item, without handles, with sets, chains and
/// set elements sorted: two loads of one table list alike whatever order things went in.
fn listing(nft_ns: &Netns) -> Vec<String> {
    fn normalise(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                map.remove("handle");
                for (key, inner) in map.iter_mut() {
                    normalise(inner);
                    if key == "elem"
                        && let serde_json::Value::Array(items) = inner
                    {
                        items.sort_by_key(ToString::to_string);
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(normalise),
            _ => {}
        }
    }
    let text = nft_ns
        .runner()
        .run(
            "nft",
            &["-j", "list", "table", "inet", palisade_dataplane::TABLE],
            None,
        )
        .unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
    normalise(&mut value);
    // Sets and chains list in the order they were made; rules in chain order matter.
    let mut objects = Vec::new();
    let mut rules: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for item in value["nftables"].as_array().unwrap() {
        match item.get("rule") {
            Some(rule) => rules
                .entry(rule["chain"].to_string())
                .or_default()
                .push(item.to_string()),
            None => objects.push(item.to_string()),
        }
    }
    objects.sort();
    objects.extend(rules.into_values().flatten());
    objects
}

/// Every change between tables of one node (pods and policies come and go, ports and peers
/// change, audit mode toggles) leaves exactly the table that loading the new one whole does.
#[test]
#[ignore = "needs root, iproute2 and nft: as root, cargo test -- --include-ignored"]
fn changes_leave_the_table_a_replace_loads() {
    require_root();
    let mut tables: Vec<(&str, Ruleset)> = vec![("shop", common::compile(common::shop(), false).2)];
    tables.push(("no probe policy", shop_without_probe_policy()));
    let mut cluster = common::shop();
    cluster.endpoints.push(common::pod(
        "shop",
        "web2",
        "web",
        &["10.1.0.3"],
        &[("http", 8080, Protocol::Tcp)],
    ));
    tables.push((
        "a second web pod",
        common::compile(cluster.clone(), false).2,
    ));
    cluster.policies[PolicyId::from(1)].ingress[0].ports = vec![common::tcp(5433)];
    tables.push(("db on a number", common::compile(cluster.clone(), false).2));
    cluster.policies[PolicyId::from(0)].ingress.swap(0, 1);
    tables.push((
        "web rules swapped",
        common::compile(cluster.clone(), false).2,
    ));
    cluster.endpoints.remove(0.into());
    tables.push(("web pod gone", common::compile(cluster.clone(), false).2));
    tables.push(("audit", common::compile(cluster, true).2));
    tables.push(("shop again", common::compile(common::shop(), false).2));
    let changing = Netns::create("palisade-t").unwrap();
    let fresh = Netns::create("palisade-t").unwrap();
    let (nft, reference) = (Nft::new(changing.runner()), Nft::new(fresh.runner()));
    nft.apply(&tables[0].1, 1, None).unwrap();
    let mut changed = 0;
    for (generation, pair) in (2..).zip(tables.windows(2)) {
        let [(_, old), (name, new)] = pair else {
            unreachable!("windows of two")
        };
        match nft.apply(new, generation, Some(old)).unwrap() {
            Applied::Changed => changed += 1,
            Applied::Replaced => eprintln!("{name}: replaced (the change was no smaller)"),
            Applied::ReplacedAfterFailedChange(e) => panic!("{name}: the change failed: {e}"),
        }
        reference.apply(new, generation, None).unwrap();
        let (changed_items, loaded_items) = (listing(&changing), listing(&fresh));
        let only_in = |a: &[String], b: &[String]| -> Vec<String> {
            a.iter().filter(|x| !b.contains(x)).cloned().collect()
        };
        assert!(
            changed_items == loaded_items,
            "after {name}: only after the change: {:#?}\nonly after the replace: {:#?}",
            only_in(&changed_items, &loaded_items),
            only_in(&loaded_items, &changed_items)
        );
    }
    assert!(changed >= tables.len() / 2, "only {changed} changes");
}
