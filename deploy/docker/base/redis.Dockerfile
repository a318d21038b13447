# Local stand-in for redis:<version>-bookworm where public images cannot be pulled:
# Debian's redis-server (7.0 in bookworm). Like the official image: /data owned by uid 999
# as the working directory (AOF and RDB files land there), redis-server and redis-cli on PATH.
ARG DEBIAN_IMAGE=localhost/mcp-gateway-base/debian:bookworm-slim
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server redis-tools \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o 999 -g 999 -m 0750 /data
WORKDIR /data
VOLUME ["/data"]
EXPOSE 6379
CMD ["redis-server"]
