# syntax=docker/dockerfile:1
#
# token-vault image (DESIGN §10). Two stages from the same base:
#   build       npm ci (with devDependencies) and npm run build: TypeScript to dist/, Lua scripts copied
#   production  runtime dependencies only (npm ci --omit=dev --ignore-scripts) and dist/; runs as the
#               non-root `node` user; every file belongs to root, so the process cannot change its
#               own code, and the root filesystem can be mounted read-only (the vault writes nothing
#               to disk in production: logs go to stdout, state to Redis).
#
#   docker build -t token-vault:0.1.0 .
#   docker run --rm -p 8080:8080 --read-only \
#     -v "$PWD/token-vault.yaml:/etc/token-vault/token-vault.yaml:ro" \
#     -v "$PWD/keyring.json:/etc/token-vault/keyring/keyring.json:ro" \
#     -e TOKEN_VAULT_KEYRING=/etc/token-vault/keyring/keyring.json -e REDIS_URL=redis://redis:6379 \
#     token-vault:0.1.0
#
# No build argument and no secret goes into any layer: configuration, keyring and API keys are
# mounted or passed in the environment when the container starts.

FROM node:20.20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# The cache mount keeps npm's download cache out of the layers and across builds (BuildKit).
RUN --mount=type=cache,target=/root/.npm npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM node:20.20-bookworm-slim AS production
ENV NODE_ENV=production \
    TOKEN_VAULT_CONFIG=/etc/token-vault/token-vault.yaml
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: no dependency runs code at install time; the runtime ones need none.
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev --ignore-scripts --no-audit --no-fund
COPY --from=build /app/dist ./dist
# `token-vault` (the ops CLI: keys, rewrap, check-config) on PATH for `kubectl exec`.
RUN ln -s /app/dist/cli/main.js /usr/local/bin/token-vault
USER node
EXPOSE 8080
# For `docker run` and Compose; Kubernetes ignores it and uses the chart's probes. No curl in the
# image: Node's own fetch. Plain HTTP on PORT (8080): adjust when server.tls or server.port is set.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# node as PID 1 is fine here: the vault handles SIGTERM and SIGINT itself (graceful drain) and
# spawns no child process in production.
CMD ["node","dist/main.js"]
