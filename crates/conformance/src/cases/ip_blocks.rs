//! ipBlock peers: they match outside addresses and, as the upstream e2e suite expects, pods by
//! their IPs. Fixture addresses: namespace x is 10.0.1.0/24, y 10.0.2.0/24, z 10.0.3.0/24.

use crate::Cases;
use crate::harness::*;

/// Upstream "should allow egress access to server in CIDR block" (y/b = 10.0.2.2).
fn egress_to_one_pod_by_its_host_prefix(c: &mut Cases) {
    let w = World::xyz().policy(
        np("x", "allow-client-a-via-cidr-egress-rule")
            .select(pod("a"))
            .egress([rule([ip_block("10.0.2.2/32", &[])], [])]),
    );
    let mut r = w.reachability(true);
    r.expect_all_egress("x/a", false).expect("x/a", "y/b", true);
    c.add(&w, r);
}

/// Upstream "should enforce except clause while egress access to server in CIDR block"; the
/// large block is upstream's `/4` around the pod's address.
fn egress_except_clause_excludes_a_pod(c: &mut Cases) {
    let w = World::xyz()
        .external("8.8.8.8")
        .external("192.0.2.1")
        .policy(
            np("x", "allow-client-a-via-cidr-egress-rule")
                .select(pod("a"))
                .egress([rule([ip_block("0.0.0.0/4", &["10.0.1.2/32"])], [])]),
        );
    let mut r = w.reachability(true);
    r.expect("x/a", "x/b", false)
        .expect("x/a", "@192.0.2.1", false);
    c.add(&w, r);
}

/// Upstream "should ensure an IP overlapping both IPBlock.CIDR and IPBlock.Except is allowed":
/// the address one block excepts, another block (in another policy) admits.
fn address_excepted_by_one_block_is_admitted_by_another(c: &mut Cases) {
    let w = World::xyz()
        .external("192.0.2.1")
        .policy(
            np("x", "large-block-without-b")
                .select(pod("a"))
                .egress([rule([ip_block("0.0.0.0/4", &["10.0.1.2/32"])], [])]),
        )
        .policy(
            np("x", "just-b")
                .select(pod("a"))
                .egress([rule([ip_block("10.0.1.2/32", &[])], [])]),
        );
    let mut r = w.reachability(true);
    r.expect("x/a", "@192.0.2.1", false);
    c.add(&w, r);
}

fn ingress_block_matches_pod_addresses_and_outside_ones(c: &mut Cases) {
    let w = World::xyz()
        .external("10.0.2.200")
        .external("10.9.9.9")
        .policy(
            np("x", "from-y-subnet")
                .select(pod("a"))
                .ingress([rule([ip_block("10.0.2.0/24", &[])], [])]),
        );
    let mut r = w.reachability(true);
    r.expect_all_ingress("x/a", false)
        .expect_peer("y/*", "x/a", true)
        .expect("@10.0.2.200", "x/a", true);
    c.add(&w, r);
}

/// Pod addresses inside `except` are not matched, wherever the pod lives.
fn ingress_block_except_denies_pods_in_it(c: &mut Cases) {
    let w = World::xyz()
        .external("10.0.3.200")
        .external("10.0.9.9")
        .external("192.0.2.1")
        .policy(
            np("x", "cluster-range-but-z")
                .select(pod("a"))
                .ingress([rule([ip_block("10.0.0.0/16", &["10.0.3.0/24"])], [])]),
        );
    let mut r = w.reachability(true);
    r.expect_all_ingress("x/a", false)
        .expect_peer("x/*", "x/a", true)
        .expect_peer("y/*", "x/a", true)
        .expect("@10.0.9.9", "x/a", true);
    c.add(&w, r);
}

/// The usual "internet but not the cluster" egress rule.
fn egress_to_everything_but_private_range(c: &mut Cases) {
    let w = World::xyz()
        .external("8.8.8.8")
        .external("10.99.0.1")
        .external("2001:db8::1")
        .policy(
            np("x", "internet-only")
                .select(pod("a"))
                .egress([rule([ip_block("0.0.0.0/0", &["10.0.0.0/8"])], [])]),
        );
    let mut r = w.reachability(true);
    r.expect_all_egress("x/a", false)
        .expect("x/a", "@8.8.8.8", true);
    c.add(&w, r);
}

/// An IPv6 block never matches an IPv4 address, even `::/0`.
fn ipv6_block_does_not_match_ipv4_pods(c: &mut Cases) {
    let w = World::xyz()
        .external("2001:db8::1")
        .external("192.0.2.1")
        .policy(
            np("x", "from-any-v6")
                .select(pod("a"))
                .ingress([rule([ip_block("::/0", &[])], [])]),
        );
    let mut r = w.reachability(true);
    r.expect_all_ingress("x/a", false)
        .expect("@2001:db8::1", "x/a", true);
    c.add(&w, r);
}

/// Dual-stack pods are matched through their IPv6 address (y is fd00::2:0/112, z/c fd00::3:3).
fn dual_stack_pods_match_ipv6_blocks(c: &mut Cases) {
    let w = World::xyz()
        .dual_stack()
        .policy(np("x", "from-v6").select(pod("a")).ingress([rule(
            [
                ip_block("fd00::2:0/112", &[]),
                ip_block("fd00::3:3/128", &[]),
            ],
            [],
        )]));
    let mut r = w.reachability(true);
    r.expect_all_ingress("x/a", false)
        .expect_peer("y/*", "x/a", true)
        .expect("z/c", "x/a", true);
    c.add(&w, r);
}

pub(crate) fn register(c: &mut Cases) {
    c.case(
        "egress_to_one_pod_by_its_host_prefix",
        egress_to_one_pod_by_its_host_prefix,
    );
    c.case(
        "egress_except_clause_excludes_a_pod",
        egress_except_clause_excludes_a_pod,
    );
    c.case(
        "address_excepted_by_one_block_is_admitted_by_another",
        address_excepted_by_one_block_is_admitted_by_another,
    );
    c.case(
        "ingress_block_matches_pod_addresses_and_outside_ones",
        ingress_block_matches_pod_addresses_and_outside_ones,
    );
    c.case(
        "ingress_block_except_denies_pods_in_it",
        ingress_block_except_denies_pods_in_it,
    );
    c.case(
        "egress_to_everything_but_private_range",
        egress_to_everything_but_private_range,
    );
    c.case(
        "ipv6_block_does_not_match_ipv4_pods",
        ipv6_block_does_not_match_ipv4_pods,
    );
    c.case(
        "dual_stack_pods_match_ipv6_blocks",
        dual_stack_pods_match_ipv6_blocks,
    );
}
