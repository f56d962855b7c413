//! Compile + apply time at scale: `cargo run --release -p palisade-dataplane --example scale --
//! [PODS] [POLICIES] [PODS ON THE NODE]` (root, nft). By default every pod is on the one node,
//! the worst case for the table. After the cold load, two everyday changes (a policy's port,
//! a new pod) are compiled and applied as changes to the table in force.
//! The table is loaded into a fresh network namespace, never the machine's own. With
//! `SCALE_DUMP=FILE` the transaction is also written to FILE (to profile `nft -f FILE`).

use palisade_dataplane::{Netns, Nft, RenderOptions, Ruleset, render};
use palisade_engine::{
    Analysis, Cluster, ContainerPort, Endpoint, EndpointId, IpBlock, LabelSelector, Labels,
    NamespaceScope, NetworkPolicy, NodeProgram, Peer, PolicyTypes, PortRef, PortRule, Protocol,
    Rule,
};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>());
    let pods = args.next().transpose()?.unwrap_or(10_000);
    let policies = args.next().transpose()?.unwrap_or(1_000);
    let on_node = args.next().transpose()?.unwrap_or(pods);
    let apps = 200;
    let app = |i: usize| Labels::from([("app".to_string(), format!("a{}", i % apps))]);
    let mut cluster = Cluster::default();
    for i in 0..pods {
        let mut pod = Endpoint::pod(format!("ns{}", i % 50), format!("p{i}"), app(i));
        pod.ips = vec![format!("10.{}.{}.{}", 100 + i / 65536, (i / 256) % 256, i % 256).parse()?];
        pod.ports = vec![ContainerPort {
            name: Some("http".into()),
            port: 8080,
            protocol: Protocol::Tcp,
        }];
        cluster.endpoints.push(pod);
    }
    for j in 0..policies {
        let selector =
            |i: usize| LabelSelector::with_labels([("app".to_string(), format!("a{}", i % apps))]);
        cluster.policies.push(NetworkPolicy {
            namespace: format!("ns{}", j % 50),
            name: format!("np{j}"),
            pod_selector: selector(j),
            policy_types: PolicyTypes {
                ingress: true,
                egress: true,
            },
            ingress: vec![Rule {
                peers: vec![
                    Peer::Pods {
                        namespaces: NamespaceScope::Selected(LabelSelector::everything()),
                        pods: selector(j + 1),
                    },
                    Peer::IpBlock(IpBlock {
                        cidr: format!("172.{}.0.0/16", 16 + j % 16).parse()?,
                        except: vec![],
                    }),
                ],
                ports: vec![PortRule {
                    protocol: Protocol::Tcp,
                    port: Some(PortRef::Number(80)),
                    end_port: None,
                }],
            }],
            egress: vec![Rule {
                peers: vec![Peer::Pods {
                    namespaces: NamespaceScope::PolicyNamespace,
                    pods: selector(j + 2),
                }],
                ports: vec![PortRule {
                    protocol: Protocol::Tcp,
                    port: Some(PortRef::Named("http".into())),
                    end_port: None,
                }],
            }],
        });
    }
    let options = RenderOptions {
        audit: false,
        log_group: 100,
    };
    let compile = |cluster: Cluster| {
        let started = Instant::now();
        let analysis = Analysis::new(cluster);
        let analysed = started.elapsed();
        let local: Vec<_> = palisade_engine::every_pod_local(analysis.cluster())
            .into_iter()
            .take(on_node)
            .collect();
        let program = NodeProgram::compile(&analysis, &local);
        let compiled = started.elapsed();
        let ruleset = render(&analysis, &program, options);
        let rendered = started.elapsed();
        (
            analysis,
            program,
            ruleset,
            [analysed, compiled - analysed, rendered - compiled],
        )
    };
    let (analysis, program, ruleset, [analysed, programmed, rendered]) = compile(cluster.clone());
    drop(analysis);
    if let Some(path) = std::env::var_os("SCALE_DUMP") {
        std::fs::write(path, ruleset.text(1))?;
    }
    let ns = Netns::create("palisade-scale")?;
    let nft = Nft::new(ns.runner());
    let timed = |ruleset: &Ruleset, generation: u32, in_force: Option<&Ruleset>| {
        let started = Instant::now();
        let applied = nft.apply(ruleset, generation, in_force)?;
        Ok::<_, palisade_dataplane::Error>((started.elapsed(), applied))
    };
    let (first_load, _) = timed(&ruleset, 1, None)?;
    let (replace, _) = timed(&ruleset, 2, None)?;
    println!(
        "{pods} pods ({} on the node), {policies} policies: {} chains, {} rules, {} set elements\n\
         cold: analysis {analysed:?}, program {programmed:?}, render {rendered:?}, \
         nft load {first_load:?}, atomic replace {replace:?}; compile + render + replace {:?}",
        program.locals.len(),
        program.chains.len(),
        ruleset.rules(),
        ruleset.set_elements(),
        analysed + programmed + rendered + replace,
    );
    // Changes the agent meets every day, applied as changes to the table in force.
    let mut one_policy = cluster.clone();
    if let Some(policy) = one_policy.policies.first_mut() {
        policy.ingress[0].ports[0].port = Some(PortRef::Number(8443));
    }
    let mut one_pod = cluster.clone();
    let mut pod = Endpoint::pod("ns0", "new-pod", app(0));
    pod.ips = vec!["10.99.0.1".parse()?];
    one_pod.endpoints.insert(EndpointId::from(0), pod);
    let mut in_force = ruleset;
    for (generation, (change, changed)) in (3..).zip([
        ("one policy changed", one_policy),
        ("one pod added", one_pod),
    ]) {
        let (_, _, next, [analysed, programmed, rendered]) = compile(changed);
        let (took, applied) = timed(&next, generation, Some(&in_force))?;
        println!(
            "{change}: analysis {analysed:?}, program {programmed:?}, render {rendered:?}, \
             apply {took:?} ({applied:?}); compile + render + apply {:?}",
            analysed + programmed + rendered + took
        );
        in_force = next;
    }
    Ok(())
}
