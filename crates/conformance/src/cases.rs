//! The cases, one module per topic; each module's `register` lists its case functions.

mod egress;
mod ingress;
mod ip_blocks;
mod outside_and_special;
mod policy_types;
mod ports;
mod updates;

pub(crate) fn register(c: &mut crate::Cases) {
    ingress::register(c);
    egress::register(c);
    policy_types::register(c);
    ports::register(c);
    ip_blocks::register(c);
    outside_and_special::register(c);
    updates::register(c);
}
