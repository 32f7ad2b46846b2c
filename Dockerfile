# serve-gateway container image.
#   docker build -t serve-gateway .
#   docker run --rm -p 8000:8000 -v $PWD/my-gateway.yaml:/etc/serve-gateway/gateway.yaml serve-gateway
# The config inside the container must listen on 0.0.0.0 (data plane and,
# for Kubernetes probes, admin) — see docs/configuration.md.
# State (traffic state, audit log, kubernetes.last_known_good) goes to the
# volume /var/lib/serve-gateway: SERVE_GATEWAY_STATE_DIR makes it the default
# state_dir and the base of relative state paths, so a config with
# `state_dir: ./var` writes /var/lib/serve-gateway/var, not next to the
# read-only config. A state dir that cannot be written stops the gateway with
# one line. The Helm chart (charts/serve-gateway) mounts an emptyDir there.
# .dockerignore keeps tests and fixtures out; test/container-image.test.ts runs
# the CLI as ENTRYPOINT/CMD below do, with this ENV.

FROM node:24-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# Runtime dependencies only; the image's own Node 24 runs the TypeScript sources
# directly (type stripping), so neither node@24 nor TypeScript is installed.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM node:24-slim
ENV NODE_ENV=production
ENV SERVE_GATEWAY_STATE_DIR=/var/lib/serve-gateway
# V8's young generation capped (two 4 MiB semi-spaces), as bin/serve-gateway does: 19-37 KiB instead
# of ~70 KiB of RSS per open stream, no measurable CPU cost (docs/benchmarks.md). A pod env
# NODE_OPTIONS replaces it.
ENV NODE_OPTIONS=--max-semi-space-size=4
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY src ./src
COPY config ./config
RUN mkdir -p /var/lib/serve-gateway && chown node:node /var/lib/serve-gateway
VOLUME ["/var/lib/serve-gateway"]
# node (uid/gid 1000 in the node images); the chart's securityContext uses these ids.
USER node
EXPOSE 8000 9901
# The gateway handles SIGTERM itself: readyz fails at once, the listener closes
# after shutdown.drain_delay, in-flight streams get shutdown.grace_period.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9901/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "src/cli/main.ts"]
CMD ["start", "--config", "/etc/serve-gateway/gateway.yaml"]
