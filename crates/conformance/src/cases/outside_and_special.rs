//! Subjects beyond the nine fixture pods: outside addresses, hostNetwork pods, and workloads
//! that stand for several pods.

use crate::Cases;
use crate::harness::*;
use palisade_engine::{Endpoint, EndpointKind};

/// Outside addresses are reachable from an egress-isolated pod only through an ipBlock;
/// `namespaceSelector: {}` covers every pod and nothing else.
fn egress_to_outside_only_through_ip_blocks(c: &mut Cases) {
    let w = World::xyz()
        .external("203.0.113.9")
        .external("198.51.100.7")
        .policy(np("x", "cluster-and-one-range").select(pod("a")).egress([
            rule([namespaces(everything())], []),
            rule([ip_block("203.0.113.0/24", &[])], []),
        ]));
    let mut r = w.reachability(true);
    r.expect("x/a", "@198.51.100.7", false);
    c.add(&w, r);
}

fn ingress_from_outside(c: &mut Cases) {
    let w = World::xyz()
        .external("198.51.100.7")
        .external("203.0.113.9")
        .policy(np("x", "deny-ingress").ingress([]))
        .policy(
            np("x", "from-partner")
                .select(pod("a"))
                .ingress([rule([ip_block("198.51.100.0/24", &[])], [])]),
        );
    let mut r = w.reachability(true);
    r.expect_peer("*", "x/*", false)
        .expect("@198.51.100.7", "x/a", true);
    c.add(&w, r);
}

/// A hostNetwork pod shares the node's network: it is outside every podSelector, so its own
/// namespace's deny-all leaves it alone even though its labels match.
fn host_network_pod(namespace: &str, labels_of: &str) -> Endpoint {
    Endpoint {
        host_network: true,
        labels: labels(&[("pod", labels_of)]),
        ..standard_pod(namespace, "node", "192.168.0.10")
    }
}

fn host_network_pod_is_not_isolated_by_its_namespace_policies(c: &mut Cases) {
    let w = World::xyz()
        .endpoint(host_network_pod("x", "a"))
        .policy(np("x", "deny-all").ingress([]).egress([]));
    let mut r = w.reachability(true);
    r.expect_peer("*", "x/*", false)
        .expect_peer("x/*", "*", false)
        .expect_peer("x/node", "y/*", true)
        .expect_peer("x/node", "z/*", true)
        .expect_peer("y/*", "x/node", true)
        .expect_peer("z/*", "x/node", true);
    c.add(&w, r);
}

/// Pod selectors (even `{}` in every namespace) do not match a hostNetwork pod; its address in
/// an ipBlock does.
fn host_network_pod_is_matched_only_by_ip_blocks(c: &mut Cases) {
    let w = World::xyz()
        .endpoint(host_network_pod("y", "b"))
        .policy(
            np("x", "from-every-pod")
                .select(pod("a"))
                .ingress([rule([pods_in(everything(), everything())], [])]),
        )
        .policy(
            np("x", "from-nodes")
                .select(pod("b"))
                .ingress([rule([ip_block("192.168.0.0/24", &[])], [])]),
        )
        .policy(
            np("y", "b-only-from-y-b")
                .select(pod("b"))
                .ingress([rule([pods(pod("b"))], [])]),
        );
    let mut r = w.reachability(true);
    r.expect("y/node", "x/a", false)
        .expect_all_ingress("x/b", false)
        .expect("y/node", "x/b", true)
        // y/node carries pod=b but is not one of y's pods for either selector.
        .expect_all_ingress("y/b", false);
    c.add(&w, r);
}

fn workload(kind: &str, name: &str, replicas: u32, ip: &str) -> Endpoint {
    Endpoint {
        kind: EndpointKind::Workload {
            kind: kind.to_string(),
        },
        replicas,
        ..standard_pod("x", name, ip)
    }
}

/// Three replicas of `web` talking to each other are three pods: policy applies. A single
/// replica talking to itself is loopback.
fn replicated_workload_to_itself_is_evaluated_by_policy(c: &mut Cases) {
    let w = World::xyz()
        .endpoint(workload("Deployment", "web", 3, "10.0.1.10"))
        .endpoint(workload("StatefulSet", "db", 1, "10.0.1.20"))
        .policy(np("x", "deny-ingress").ingress([]));
    let mut r = w.reachability(true);
    r.expect_peer("*", "x/*", false);
    c.add(&w, r);
}

fn replicated_workload_admitted_by_its_own_selector(c: &mut Cases) {
    let w = World::xyz()
        .endpoint(workload("Deployment", "web", 3, "10.0.1.10"))
        .policy(np("x", "deny-ingress").ingress([]))
        .policy(
            np("x", "web-peers")
                .select(pod("web"))
                .ingress([rule([pods(pod("web"))], [])]),
        );
    let mut r = w.reachability(true);
    r.expect_peer("*", "x/*", false)
        .expect("x/deployment/web", "x/deployment/web", true);
    c.add(&w, r);
}

pub(crate) fn register(c: &mut Cases) {
    c.case(
        "egress_to_outside_only_through_ip_blocks",
        egress_to_outside_only_through_ip_blocks,
    );
    c.case("ingress_from_outside", ingress_from_outside);
    c.case(
        "host_network_pod_is_not_isolated_by_its_namespace_policies",
        host_network_pod_is_not_isolated_by_its_namespace_policies,
    );
    c.case(
        "host_network_pod_is_matched_only_by_ip_blocks",
        host_network_pod_is_matched_only_by_ip_blocks,
    );
    c.case(
        "replicated_workload_to_itself_is_evaluated_by_policy",
        replicated_workload_to_itself_is_evaluated_by_policy,
    );
    c.case(
        "replicated_workload_admitted_by_its_own_selector",
        replicated_workload_admitted_by_its_own_selector,
    );
}
