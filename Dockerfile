# syntax=docker/dockerfile:1
# Builds both services into one small image; docker-compose.yml picks the
# binary per service. Stages:
#   chef     - the pinned toolchain with cargo-chef
#   planner  - computes the dependency "recipe" from the manifests
#   builder  - builds dependencies first (a layer cached until Cargo.toml or
#              Cargo.lock change), then the workspace
#   runtime  - Debian slim, CA certificates for TLS to managed Redis, curl for
#              health checks, a non-root user

FROM rust:1.95.0-slim-bookworm AS chef
RUN cargo install cargo-chef --locked --version 0.1.71
WORKDIR /app

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /app/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json -p auth-broker -p main-api
COPY . .
RUN cargo build --release --locked -p auth-broker -p main-api

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home app
COPY --from=builder /app/target/release/auth-broker /app/target/release/main-api /usr/local/bin/
USER app
ENV LOG_FORMAT=json RUST_LOG=info
