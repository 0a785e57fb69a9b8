# syntax=docker/dockerfile:1
# sessiongate: build once, run as a non-root user with only production dependencies.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
COPY src ./src
COPY bench ./bench
RUN npm ci --ignore-scripts && npx tsc -p tsconfig.json && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY config ./config
USER node
EXPOSE 8080 9090
# The admin listener must listen beyond localhost for this probe to reach it inside a pod network;
# the probe itself runs inside the container, so 127.0.0.1 works with the default admin.listen.
HEALTHCHECK --interval=10s --timeout=2s --start-period=5s \
  CMD node -e "fetch('http://127.0.0.1:9090/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["node", "dist/src/cli.js"]
CMD ["--config", "/etc/sessiongate/config.yaml"]
