# Palisade image: the `palisade` binary (static, musl) plus the `nft`, `conntrack` and `ip`
# tools the agent runs. deploy/ and charts/palisade/ reference it as ghcr.io/palisade/palisade:0.1.0.
#
# NOT built by CI here: the project's machines have no Docker engine, so neither this file nor
# the image is tested by the project. Build it yourself, from the repository root:
#   docker build -t ghcr.io/palisade/palisade:0.1.0 .

# --- Stage 1: build a static binary -------------------------------------------------------
FROM rust:1-bookworm AS build
# musl-tools provides musl-gcc, which C code in dependencies (e.g. ring) is compiled with.
RUN apt-get update \
    && apt-get install -y --no-install-recommends musl-tools \
    && rm -rf /var/lib/apt/lists/* \
    && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
RUN cargo build --release --locked --target x86_64-unknown-linux-musl -p palisade \
    && cp target/x86_64-unknown-linux-musl/release/palisade /palisade

# --- Stage 2: runtime ---------------------------------------------------------------------
FROM debian:bookworm-slim
# The agent installs its rules with `nft`, deletes denied connections' entries with
# `conntrack`, and reads the node's routes to its pods with `ip`.
RUN apt-get update \
    && apt-get install -y --no-install-recommends nftables conntrack iproute2 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /palisade /usr/local/bin/palisade
ENTRYPOINT ["/usr/local/bin/palisade"]
CMD ["agent"]
