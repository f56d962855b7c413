//! The node's dataplane: the engine's [`palisade_engine::NodeProgram`] as one nftables table
//! (`table inet palisade`), applied in one atomic transaction, read back, and removed.
//!
//! Layout of the table (see [`render`]): the `source_check` chain (prerouting, before
//! conntrack) drops what arrives on an interface toward the node's pods from an address not
//! routed back through it ([`pod_interfaces`] finds them): a pod cannot pass for another
//! address. The `forward` chain accepts established and related packets first, so only new
//! connections are evaluated and replies need no rule, and drops `invalid` ones; it then
//! looks up the source address in `egress_pods4/6` and the destination address in
//! `ingress_pods4/6`, verdict maps from a local pod's address to the chain of its isolation
//! signature (`c` and a hash of the isolating policies' names) or to
//! `open_egress`/`open_ingress`. A signature chain returns when one set lookup (peer address
//! . protocol . port) finds what its rules admit, or, with a named port among them, on the
//! first admitting rule; it drops otherwise — every other IP protocol (ICMP, …) included.
//! Every verdict is logged to NFLOG with a prefix [`LogTag`] maps back to the chain and rule
//! (for a set, with [`ChainIndex`]). The `input` chain sends a local pod's packets to the node
//! itself through the same egress map: the node is an address like any other. What the node
//! sends to its pods (output) is never filtered: upstream, a node always reaches its pods.
//!
//! [`Nft::apply`] loads the whole table (add + delete + the table, one transaction) or, when
//! the agent knows the table in force, only the difference: new chains and sets, element
//! deletions and additions, flushed and refilled chains, deleted chains and sets, and the
//! stamp (generation, digest) — again one transaction, so packets see the old table or the new.

pub mod conntrack;
mod links;
mod netns;
mod nft;
mod render;
mod table;

pub use links::pod_interfaces;
pub use netns::{Netns, require_root_tests, say_skipped};
pub use nft::{Applied, Error, Nft, Runner, TableState};
pub use render::{ChainIndex, ChainKey, LogTag, RenderOptions, Ruleset, render};
pub use table::{Stamp, TABLE};
