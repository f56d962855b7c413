//! Compile + apply time at scale: `cargo run --release -p palisade-dataplane --example scale --
//! [PODS] [POLICIES]` (root, nft). Every pod is on the one node, the worst case for the table.
//! The table is loaded into a fresh network namespace, never the machine's own. With
//! `SCALE_DUMP=FILE` the transaction is also written to FILE (to profile `nft -f FILE`).

use palisade_dataplane::{Netns, Nft, RenderOptions, render};
use palisade_engine::{
    Analysis, Cluster, ContainerPort, Endpoint, IpBlock, LabelSelector, Labels, NamespaceScope,
    NetworkPolicy, NodeProgram, Peer, PolicyTypes, PortRef, PortRule, Protocol, Rule,
};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>());
    let pods = args.next().transpose()?.unwrap_or(10_000);
    let policies = args.next().transpose()?.unwrap_or(1_000);
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
    let started = Instant::now();
    let analysis = Analysis::new(cluster);
    let analysed = started.elapsed();
    let local = palisade_engine::every_pod_local(analysis.cluster());
    let program = NodeProgram::compile(&analysis, &local);
    let compiled = started.elapsed();
    let ruleset = render(
        &analysis,
        &program,
        RenderOptions {
            generation: 1,
            audit: false,
            log_group: 100,
        },
    );
    let rendered = started.elapsed();
    if let Some(path) = std::env::var_os("SCALE_DUMP") {
        std::fs::write(path, Nft::transaction(&ruleset))?;
    }
    let ns = Netns::create("palisade-scale")?;
    let nft = Nft::new(ns.runner());
    let apply_start = Instant::now();
    nft.apply(&ruleset)?;
    let first_apply = apply_start.elapsed();
    let replace_start = Instant::now();
    nft.apply(&ruleset)?;
    let replace = replace_start.elapsed();
    println!(
        "{pods} pods, {policies} policies: {} chains, {} rules, {} set elements, {} bytes\n\
         analysis {analysed:?}, program {:?}, render {:?}, nft load {first_apply:?}, atomic replace {replace:?}; \
         compile + render + replace {:?}",
        program.chains.len(),
        ruleset.rules,
        ruleset.set_elements,
        ruleset.text.len(),
        compiled - analysed,
        rendered - compiled,
        rendered + replace,
    );
    Ok(())
}
