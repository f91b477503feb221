# Relais container image: one image for every role (`relais start --role api|worker|scheduler`)
# and for the one-shot `relais migrate`. See docs/operations.md for how to run it.
#
# Stages: `toolchain` (Node plus a C toolchain for the optional native parts of ssh2), `build`
# (all dependencies, `npm run build` into dist/), `deps` (production dependencies only) and the
# runtime image, which holds no compiler, no dev dependency and no TypeScript source.
#
# What the runtime reads besides dist/: package.json (the package root is found by walking up
# to it, platform/package-root.ts), schemas/, installers/ (the default server.installersDir)
# and config/ (the e-mail templates, the shipped example configs, the demo's samples). The
# migrations run compiled from dist/migrations/, found next to dist/platform/migrations.js.

ARG NODE_VERSION=20

FROM node:${NODE_VERSION}-bookworm-slim AS toolchain
RUN apt-get update \
  && apt-get install -y --no-install-recommends python3 make g++ \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/relais
COPY package.json package-lock.json ./

FROM toolchain AS build
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY api api
COPY bench bench
COPY billing billing
COPY cli cli
COPY config config
COPY connectors connectors
COPY licensing licensing
COPY mappings mappings
COPY migrations migrations
COPY platform platform
COPY queue queue
# bench/ imports the data generators of test/, so tsc compiles those too.
COPY test test
RUN npm run build

FROM toolchain AS deps
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM node:${NODE_VERSION}-bookworm-slim
ENV NODE_ENV=production \
  NODE_OPTIONS=--enable-source-maps
# A fixed uid/gid, so volumes and bind mounts can be prepared on the host (chown 10001).
RUN groupadd --system --gid 10001 relais \
  && useradd --system --uid 10001 --gid relais --home-dir /var/lib/relais --shell /usr/sbin/nologin relais \
  && mkdir -p /var/lib/relais/keys /opt/relais/var \
  && chown -R relais:relais /var/lib/relais /opt/relais/var \
  && chmod 0700 /var/lib/relais/keys
WORKDIR /opt/relais
COPY --from=deps /opt/relais/node_modules node_modules
COPY --from=build /opt/relais/dist dist
COPY package.json package-lock.json ./
COPY schemas schemas
COPY installers installers
COPY config/relais.yaml config/relais.yaml
COPY config/isps config/isps
COPY config/templates config/templates
COPY config/samples config/samples
USER relais
# No VOLUME: an anonymous volume would hide the keys in a place nobody backs up. Mount named
# volumes (or host folders owned by uid 10001) at /var/lib/relais and /var/lib/relais/keys; an
# empty named volume starts as a copy of the folder here, owned by relais.
EXPOSE 8080 9464
# Liveness of whichever listener the role has: the api port by default; worker and scheduler
# containers set RELAIS_HEALTH_URL to their ops port (docker-compose.yml does).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch(process.env.RELAIS_HEALTH_URL||'http://127.0.0.1:8080/healthz',{signal:AbortSignal.timeout(4000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "dist/cli/main.js"]
CMD ["start", "--role", "all"]
