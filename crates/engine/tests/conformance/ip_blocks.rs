//! ipBlock peers: they match outside addresses and, as the upstream e2e suite expects, pods by
//! their IPs. Fixture addresses: namespace x is 10.0.1.0/24, y 10.0.2.0/24, z 10.0.3.0/24.

use super::harness::*;

/// Upstream "should allow egress access to server in CIDR block" (y/b = 10.0.2.2).
#[test]
fn egress_to_one_pod_by_its_host_prefix() {
    let w = World::xyz().policy(
        np("x", "allow-client-a-via-cidr-egress-rule")
            .select(pod("a"))
            .egress([rule([ip_block("10.0.2.2/32", &[])], [])]),
    );
    let mut r = w.reachability(true);
    r.expect_all_egress("x/a", false).expect("x/a", "y/b", true);
    w.verify(r);
}

/// Upstream "should enforce except clause while egress access to server in CIDR block"; the
/// large block is upstream's `/4` around the pod's address.
#[test]
fn egress_except_clause_excludes_a_pod() {
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
    w.verify(r);
}

/// Upstream "should ensure an IP overlapping both IPBlock.CIDR and IPBlock.Except is allowed":
/// the address one block excepts, another block (in another policy) admits.
#[test]
fn address_excepted_by_one_block_is_admitted_by_another() {
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
    w.verify(r);
}

#[test]
fn ingress_block_matches_pod_addresses_and_outside_ones() {
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
    w.verify(r);
}

/// Pod addresses inside `except` are not matched, wherever the pod lives.
#[test]
fn ingress_block_except_denies_pods_in_it() {
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
    w.verify(r);
}

/// The usual "internet but not the cluster" egress rule.
#[test]
fn egress_to_everything_but_private_range() {
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
    w.verify(r);
}

/// An IPv6 block never matches an IPv4 address, even `::/0`.
#[test]
fn ipv6_block_does_not_match_ipv4_pods() {
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
    w.verify(r);
}

/// Dual-stack pods are matched through their IPv6 address (y is fd00::2:0/112, z/c fd00::3:3).
#[test]
fn dual_stack_pods_match_ipv6_blocks() {
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
    w.verify(r);
}
