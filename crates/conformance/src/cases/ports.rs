//! Port entries: numbers, protocols, `endPort` ranges and named ports (resolved on the
//! destination pod by name AND protocol).

use crate::Cases;
use crate::harness::*;

/// Upstream "should enforce policy based on Ports" (TCP, and its UDP and SCTP twins).
fn single_port_from_a_namespace(c: &mut Cases) {
    for protocol in [Tcp, Udp, Sctp] {
        let w = World::xyz().policy(
            np("x", "allow-port-81-from-y")
                .select(pod("a"))
                .ingress([rule([namespaces(ns_name("y"))], [port(protocol, 81)])]),
        );
        let mut r = w.reachability(true);
        r.expect_all_ingress("x/a", false)
            .on(at(protocol, 81), |r| {
                r.expect_peer("y/*", "x/a", true);
            });
        c.add(&w, r);
    }
}

/// Upstream "should enforce multiple, stacked policies with overlapping podSelectors".
fn stacked_policies_add_their_ports(c: &mut Cases) {
    let from_y_on = |number| rule([namespaces(ns_name("y"))], [port(Tcp, number)]);
    let w = World::xyz()
        .policy(
            np("x", "allow-81")
                .select(pod("a"))
                .ingress([from_y_on(81)]),
        )
        .policy(
            np("x", "allow-80")
                .select(pod("a"))
                .ingress([from_y_on(80)]),
        );
    let mut r = w.reachability(true);
    r.expect_all_ingress("x/a", false)
        .on(at_protocol(Tcp), |r| {
            r.expect_peer("y/*", "x/a", true);
        });
    c.add(&w, r);
}

fn several_ports_in_one_rule(c: &mut Cases) {
    let w = World::xyz().policy(
        np("x", "tcp-80-udp-81")
            .select(pod("a"))
            .ingress([rule([], [port(Tcp, 80), port(Udp, 81)])]),
    );
    let mut r = w.reachability(true);
    r.expect_all_ingress("x/a", false)
        .on([at(Tcp, 80), at(Udp, 81)].concat(), |r| {
            r.expect_all_ingress("x/a", true);
        });
    c.add(&w, r);
}

/// A port written without a protocol is TCP after API defaulting (done by the loader, so the
/// model always carries it): the same port over UDP and SCTP stays closed.
fn port_with_defaulted_protocol_admits_tcp_only(c: &mut Cases) {
    let w =
        World::xyz().policy(np("x", "allow-ingress-port-80").ingress([rule([], [port(Tcp, 80)])]));
    let mut r = w.reachability(true);
    r.expect_peer("*", "x/*", false).on(at(Tcp, 80), |r| {
        r.expect_peer("*", "x/*", true);
    });
    c.add(&w, r);
}

/// Upstream "should enforce ingress policy allowing any port traffic to a server on a specific
/// protocol".
fn protocol_without_port_admits_every_port_of_it(c: &mut Cases) {
    let w = World::xyz().policy(
        np("x", "allow-ingress-by-proto")
            .select(pod("a"))
            .ingress([rule([], [every_port(Tcp)])]),
    );
    let mut r = w.reachability(true);
    r.expect_all_ingress("x/a", false)
        .on(at_protocol(Tcp), |r| {
            r.expect_all_ingress("x/a", true);
        });
    c.add(&w, r);
}

/// Upstream "should not allow access by TCP when a policy specifies only UDP".
fn udp_only_rule_admits_no_tcp(c: &mut Cases) {
    let w = World::xyz().policy(
        np("x", "allow-only-udp-ingress-on-port-81")
            .select(pod("a"))
            .ingress([rule([], [port(Udp, 81)])]),
    );
    let mut r = w.reachability(true);
    r.expect_all_ingress("x/a", false).on(at(Udp, 81), |r| {
        r.expect_all_ingress("x/a", true);
    });
    c.add(&w, r);
}

/// Upstream "should not mistakenly treat 'protocol: SCTP' as 'protocol: TCP'".
fn sctp_is_not_tcp(c: &mut Cases) {
    let w = World::xyz()
        .policy(np("x", "deny-ingress").ingress([]))
        .policy(
            np("x", "allow-only-sctp-ingress-on-port-81")
                .select(pod("a"))
                .ingress([rule([], [port(Sctp, 81)])]),
        );
    let mut r = w.reachability(true);
    r.expect_peer("*", "x/*", false).on(at(Sctp, 81), |r| {
        r.expect_all_ingress("x/a", true);
    });
    c.add(&w, r);
}

/// Upstream "should properly isolate pods that are selected by a policy allowing SCTP".
fn sctp_only_rule_still_isolates(c: &mut Cases) {
    let w = World::xyz().policy(
        np("x", "allow-only-sctp-ingress-on-port-80")
            .select(pod("a"))
            .ingress([rule([], [port(Sctp, 80)])]),
    );
    let mut r = w.reachability(true);
    r.expect_all_ingress("x/a", false).on(at(Sctp, 80), |r| {
        r.expect_all_ingress("x/a", true);
    });
    c.add(&w, r);
}

fn end_port_range_covering_both_ports(c: &mut Cases) {
    let w = World::xyz().policy(
        np("x", "allow-80-81-from-y")
            .select(pod("a"))
            .ingress([rule([namespaces(ns_name("y"))], [port_range(Tcp, 80, 81)])]),
    );
    let mut r = w.reachability(true);
    r.expect_all_ingress("x/a", false)
        .on(at_protocol(Tcp), |r| {
            r.expect_peer("y/*", "x/a", true);
        });
    c.add(&w, r);
}

/// Ranges are inclusive at both ends and nothing beyond: 79-80 has 80 not 81, 82-90 has neither.
fn end_port_ranges_that_miss_81(c: &mut Cases) {
    let w = World::xyz().policy(np("x", "ranges").select(pod("a")).ingress([rule(
        [],
        [
            port_range(Tcp, 79, 80),
            port_range(Udp, 82, 90),
            port_range(Sctp, 1, 80),
        ],
    )]));
    let mut r = w.reachability(true);
    r.expect_all_ingress("x/a", false)
        .on([at(Tcp, 80), at(Sctp, 80)].concat(), |r| {
            r.expect_all_ingress("x/a", true);
        });
    c.add(&w, r);
}

/// Upstream "should allow ingress access on one named port".
fn named_port_on_every_pod_of_a_namespace(c: &mut Cases) {
    let w = World::xyz()
        .policy(np("x", "allow-all").ingress([rule([], [named_port(Tcp, "serve-81-tcp")])]));
    let mut r = w.reachability(true);
    r.expect_peer("*", "x/*", false).on(at(Tcp, 81), |r| {
        r.expect_peer("*", "x/*", true);
    });
    c.add(&w, r);
}

/// Upstream "should allow ingress access from namespace on one named port".
fn named_port_from_a_namespace(c: &mut Cases) {
    let w = World::xyz().policy(
        np("x", "allow-client-a-via-ns-selector-80")
            .select(pod("a"))
            .ingress([rule(
                [namespaces(ns_name("y"))],
                [named_port(Tcp, "serve-80-tcp")],
            )]),
    );
    let mut r = w.reachability(true);
    r.expect_all_ingress("x/a", false).on(at(Tcp, 80), |r| {
        r.expect_peer("y/*", "x/a", true);
    });
    c.add(&w, r);
}

/// A named port needs the name AND the protocol on the destination: `serve-80-tcp` over UDP
/// names nothing, `serve-81-sctp` over SCTP names SCTP port 81.
fn named_port_matches_name_and_protocol(c: &mut Cases) {
    let w = World::xyz().policy(np("x", "named").select(pod("a")).ingress([rule(
        [],
        [
            named_port(Udp, "serve-80-tcp"),
            named_port(Sctp, "serve-81-sctp"),
        ],
    )]));
    let mut r = w.reachability(true);
    r.expect_all_ingress("x/a", false).on(at(Sctp, 81), |r| {
        r.expect_all_ingress("x/a", true);
    });
    c.add(&w, r);
}

fn named_port_the_destination_does_not_declare_admits_nothing(c: &mut Cases) {
    let w = World::xyz().policy(
        np("x", "named-unknown")
            .select(pod("a"))
            .ingress([rule([], [named_port(Tcp, "serve-443-tcp")])]),
    );
    let mut r = w.reachability(true);
    r.expect_all_ingress("x/a", false);
    c.add(&w, r);
}

/// One policy, one name, three destinations: `web` is 80 on x/a, 81 on x/b, absent on x/c.
fn named_port_resolves_on_each_destination_pod(c: &mut Cases) {
    let w = World::xyz()
        .container_port("x/a", "web", 80, Tcp)
        .container_port("x/b", "web", 81, Tcp)
        .policy(np("x", "web").ingress([rule([], [named_port(Tcp, "web")])]));
    let mut r = w.reachability(true);
    r.expect_peer("*", "x/*", false)
        .on(at(Tcp, 80), |r| {
            r.expect_all_ingress("x/a", true);
        })
        .on(at(Tcp, 81), |r| {
            r.expect_all_ingress("x/b", true);
        });
    c.add(&w, r);
}

/// Upstream "should allow egress access on one named port": resolved on each destination,
/// and an outside address declares no ports at all.
fn named_port_in_egress(c: &mut Cases) {
    let w = World::xyz()
        .external("203.0.113.9")
        .policy(np("x", "allow-egress").egress([rule([], [named_port(Tcp, "serve-80-tcp")])]));
    let mut r = w.reachability(true);
    r.expect_peer("x/*", "*", false).on(at(Tcp, 80), |r| {
        r.expect_peer("x/*", "*/*", true);
    });
    c.add(&w, r);
}

/// In egress the name is looked up on the peer (the destination), not on the policy's pod.
fn named_port_in_egress_resolves_on_the_peer(c: &mut Cases) {
    let w = World::xyz()
        .container_port("x/a", "web", 81, Tcp)
        .container_port("y/a", "web", 81, Tcp)
        .container_port("y/b", "web", 80, Tcp)
        .policy(
            np("x", "egress-web")
                .select(pod("a"))
                .egress([rule([], [named_port(Tcp, "web")])]),
        );
    let mut r = w.reachability(true);
    r.expect_all_egress("x/a", false)
        .on(at(Tcp, 81), |r| {
            r.expect("x/a", "y/a", true);
        })
        .on(at(Tcp, 80), |r| {
            r.expect("x/a", "y/b", true);
        });
    c.add(&w, r);
}

pub(crate) fn register(c: &mut Cases) {
    c.case("single_port_from_a_namespace", single_port_from_a_namespace);
    c.case(
        "stacked_policies_add_their_ports",
        stacked_policies_add_their_ports,
    );
    c.case("several_ports_in_one_rule", several_ports_in_one_rule);
    c.case(
        "port_with_defaulted_protocol_admits_tcp_only",
        port_with_defaulted_protocol_admits_tcp_only,
    );
    c.case(
        "protocol_without_port_admits_every_port_of_it",
        protocol_without_port_admits_every_port_of_it,
    );
    c.case("udp_only_rule_admits_no_tcp", udp_only_rule_admits_no_tcp);
    c.case("sctp_is_not_tcp", sctp_is_not_tcp);
    c.case(
        "sctp_only_rule_still_isolates",
        sctp_only_rule_still_isolates,
    );
    c.case(
        "end_port_range_covering_both_ports",
        end_port_range_covering_both_ports,
    );
    c.case("end_port_ranges_that_miss_81", end_port_ranges_that_miss_81);
    c.case(
        "named_port_on_every_pod_of_a_namespace",
        named_port_on_every_pod_of_a_namespace,
    );
    c.case("named_port_from_a_namespace", named_port_from_a_namespace);
    c.case(
        "named_port_matches_name_and_protocol",
        named_port_matches_name_and_protocol,
    );
    c.case(
        "named_port_the_destination_does_not_declare_admits_nothing",
        named_port_the_destination_does_not_declare_admits_nothing,
    );
    c.case(
        "named_port_resolves_on_each_destination_pod",
        named_port_resolves_on_each_destination_pod,
    );
    c.case("named_port_in_egress", named_port_in_egress);
    c.case(
        "named_port_in_egress_resolves_on_the_peer",
        named_port_in_egress_resolves_on_the_peer,
    );
}
