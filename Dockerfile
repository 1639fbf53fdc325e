# syntax=docker/dockerfile:1
#
# Image of the valmetal engine: the `valmetal` binary with the dashboard, alarm rules and demo
# data compiled in. Build it with the commit SHA as tag and VERSION:
#   docker build --build-arg VERSION="$(git rev-parse HEAD)" -t valmetal:"$(git rev-parse HEAD)" .
# Configuration comes from VALMETAL_* environment variables (docs/configuration.md).

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS builder
WORKDIR /build
COPY . .
# The cache mounts keep the crate registry and incremental build output between builds on one
# builder; the binary is copied out of the cached target directory.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/build/target,sharing=locked \
    cargo build --release --locked -p valmetal-engine --bin valmetal \
    && install -D -m 0755 target/release/valmetal /out/valmetal

# The runtime matches the builder's Debian release, so the binary finds the glibc it was
# linked against.
FROM debian:${DEBIAN_RELEASE}-slim AS runtime
ARG VERSION=unknown
LABEL org.opencontainers.image.title="valmetal" \
      org.opencontainers.image.description="Real-time farm-equipment telemetry engine" \
      org.opencontainers.image.revision="${VERSION}" \
      org.opencontainers.image.licenses="MIT"

# wget serves the health check; the binary has no health subcommand. Debian's security
# updates replace package versions, so pinning them would break rebuilds.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends wget \
    && rm -rf /var/lib/apt/lists/*

# UID and GID 10001 match the ECS task definition's `user`.
RUN groupadd --system --gid 10001 valmetal \
    && useradd --system --uid 10001 --gid valmetal --home-dir /var/lib/valmetal \
       --no-create-home --shell /usr/sbin/nologin valmetal \
    && install -d -o valmetal -g valmetal -m 0750 /var/lib/valmetal /var/lib/valmetal/tmp

COPY --from=builder /out/valmetal /usr/local/bin/valmetal

# The engine listens on loopback by default; a container must listen on all interfaces.
# TMPDIR keeps SQLite's temporary files on the writable volume when the root is read-only.
ENV VALMETAL_HTTP__ADDR=0.0.0.0:8080 \
    VALMETAL_STORAGE__DATA_DIR=/var/lib/valmetal \
    TMPDIR=/var/lib/valmetal/tmp

USER 10001:10001
WORKDIR /var/lib/valmetal
# On ECS Fargate a bind mount at this path starts with the directory's contents and owner.
VOLUME ["/var/lib/valmetal"]
EXPOSE 8080

# ECS ignores this and uses the task definition's health check, which runs the same command.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/bin/sh", "-c", "wget -q -O /dev/null http://127.0.0.1:8080/healthz || exit 1"]

ENTRYPOINT ["/usr/local/bin/valmetal"]
CMD ["serve"]
