//! Conformance suite for the engine, in the style of the upstream Kubernetes e2e netpol suite
//! (`test/e2e/network/netpol/network_policy.go`): namespaces x, y, z with pods a, b, c; every
//! case writes its expected truth table from the documented semantics and checks all of it —
//! every ordered pair, ports 80 and 81, TCP, UDP and SCTP — against `Analysis::decide`, and
//! `Analysis::allowed_ports` against `decide`.

mod conformance {
    mod egress;
    mod harness;
    mod ingress;
    mod ip_blocks;
    mod outside_and_special;
    mod policy_types;
    mod ports;
    mod properties;
    mod updates;
    mod verdicts;
}
