# syntax=docker/dockerfile:1
# sessiongate: compiled in one stage, run from production dependencies only, as a numeric non-root user,
# on a read-only root filesystem. Every stage is on the same exact Node release.
# Pinned by tag only: no registry was reachable where this was written, so the digest is unverified.
# Public Dockerfiles pin this tag to the index digest
# sha256:2cf067cfed83d5ea958367df9f966191a942351a2df77d6f0193e162b5febfc0; check it with
# `docker buildx imagetools inspect node:20.20.2-bookworm-slim`, then append "@sha256:..." to each FROM.

# Production dependencies only, from the lockfile; no install scripts (none of them needs one).
FROM docker.io/library/node:20.20.2-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# The compiler and src/ only: tsconfig.build.json leaves bench/ and test/ out.
FROM docker.io/library/node:20.20.2-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY src ./src
RUN npx tsc -p tsconfig.build.json

FROM docker.io/library/node:20.20.2-bookworm-slim
ENV NODE_ENV=production \
    SESSIONGATE_CONFIG=/etc/sessiongate/config.yaml
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
# package.json: "type": "module" for dist/; config/: the shipped configs, as package.json "files" ships.
COPY package.json ./
COPY config ./config
# The official image's `node` user, by number so Kubernetes runAsNonRoot can verify it. Everything above
# is root-owned and read-only to it; the gateway writes only to stdout.
USER 1000:1000
EXPOSE 8080 9090
# Reaches the admin listener on any address it binds inside the container, when it listens on 9090.
HEALTHCHECK --interval=10s --timeout=2s --start-period=5s \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9090/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# node is PID 1 (exec form): the CLI's own SIGTERM handler drains; no shell in between to eat the signal.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "/app/dist/src/cli.js"]
