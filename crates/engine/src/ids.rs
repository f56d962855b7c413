//! Typed indices: each names which vector it indexes, so a class can never be used where an
//! endpoint is meant. The vectors they index are `TiVec`s keyed by them.

macro_rules! index_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
        pub struct $name(usize);

        impl $name {
            /// The position in the vector this id indexes (for bit sets and plain slices).
            pub fn index(self) -> usize {
                self.0
            }
        }

        impl From<usize> for $name {
            fn from(index: usize) -> Self {
                Self(index)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<$name> for usize {
            fn from(id: $name) -> usize {
                id.0
            }
        }
    };
}

index_id!(
    /// A policy: its position in [`crate::Cluster::policies`].
    PolicyId
);
index_id!(
    /// An endpoint: its position in [`crate::Cluster::endpoints`].
    EndpointId
);
index_id!(
    /// A class of endpoints no policy tells apart ([`crate::Analysis::class_of`]).
    ClassId
);
index_id!(
    /// A chain of a node program: its position in [`crate::NodeProgram::chains`].
    ChainId
);
index_id!(
    /// A rule of a node program: its position in [`crate::NodeProgram::rules`].
    RuleId
);
