//! The node's dataplane: the engine's [`palisade_engine::NodeProgram`] as one nftables table
//! (`table inet palisade`), applied in one atomic transaction, read back, and removed.
//!
//! Layout of the table (see [`render`]): the `forward` chain accepts established and related
//! packets first, so only new connections are evaluated and replies need no rule; it then
//! looks up the source address in `egress_pods4/6` and the destination address in
//! `ingress_pods4/6`, verdict maps from a local pod's address to the chain of its isolation
//! signature (`c` and a hash of the isolating policies' names) or to
//! `open_egress`/`open_ingress`. A signature chain returns when one set lookup (peer address
//! . protocol . port) finds what its rules admit, or, with a named port among them, on the
//! first admitting rule; it drops otherwise. Every verdict is logged to NFLOG with a prefix
//! [`LogTag`] maps back to the chain and rule (for a set, with [`ChainIndex`]). Only the
//! `forward` hook is used: traffic between the node itself and its pods (input/output) is
//! never filtered, as upstream NetworkPolicy always allows node traffic.
//!
//! [`Nft::apply`] loads the whole table (add + delete + the table, one transaction) or, when
//! the agent knows the table in force, only the difference: new chains and sets, element
//! deletions and additions, flushed and refilled chains, deleted chains and sets, and the
//! stamp (generation, digest) — again one transaction, so packets see the old table or the new.

pub mod conntrack;
mod netns;
mod nft;
mod render;
mod table;

pub use netns::{Netns, can_run_root_tests};
pub use nft::{Applied, Error, Nft, Runner, TableState};
pub use render::{ChainIndex, ChainKey, LogTag, RenderOptions, Ruleset, render};
pub use table::TABLE;
