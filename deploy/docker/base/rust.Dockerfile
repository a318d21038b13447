# Local stand-in for rust:1-bookworm (the builder stage of the project's Dockerfiles) where
# public images cannot be pulled: the Debian base plus a C toolchain and rustup's minimal
# profile at the version the project is tested with, plus the components rust-toolchain.toml
# names (rustfmt, clippy): the project's builds then run offline from rustup's point of view
# (otherwise rustup fetches them at every `cargo build` in the image). Built by scripts/images.sh.
ARG DEBIAN_IMAGE=localhost/mcp-gateway-base/debian:bookworm-slim
FROM ${DEBIAN_IMAGE}
ARG RUST_VERSION=1.95.0
ENV RUSTUP_HOME=/usr/local/rustup \
    CARGO_HOME=/usr/local/cargo \
    PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# host_ca: the build machine's CA bundle, for the download only (never stored in a layer).
RUN --mount=type=secret,id=host_ca \
    set -eu; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates curl gcc libc6-dev make pkg-config; \
    rm -rf /var/lib/apt/lists/*; \
    ca=/etc/ssl/certs/ca-certificates.crt; \
    if [ -f /run/secrets/host_ca ]; then ca=/run/secrets/host_ca; fi; \
    url=https://static.rust-lang.org/rustup/dist/x86_64-unknown-linux-gnu/rustup-init; \
    curl --proto '=https' --tlsv1.2 -sSf --cacert "$ca" -o /tmp/rustup-init "$url"; \
    sum=$(curl --proto '=https' --tlsv1.2 -sSf --cacert "$ca" "$url.sha256" | cut -d' ' -f1); \
    echo "$sum  /tmp/rustup-init" | sha256sum -c -; \
    chmod +x /tmp/rustup-init; \
    SSL_CERT_FILE="$ca" /tmp/rustup-init -y --no-modify-path --profile minimal --default-toolchain "$RUST_VERSION" --component rustfmt,clippy; \
    rm /tmp/rustup-init; \
    chmod -R a+w "$RUSTUP_HOME" "$CARGO_HOME"; \
    rustc --version; cargo --version
