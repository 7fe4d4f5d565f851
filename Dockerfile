# Gridiron in one container: restate-server, the admin API front, workerd and the deployer,
# supervised by runit and started by the same run scripts the native runit test uses (runit/).
# BASE is any Debian bookworm with Node 22 and npm: Node's official image where a registry can be
# reached, else the local base `container/base-image` makes (what `just docker-build` picks).
ARG BASE=docker.io/library/node:22-bookworm-slim
FROM ${BASE}

RUN apt-get update \
 && apt-get install -y --no-install-recommends runit curl ca-certificates \
 && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 gridiron \
 && mkdir -p /app /data /etc/gridiron/service \
 && chown gridiron:gridiron /app /data /etc/gridiron/service

USER gridiron
WORKDIR /app
ENV NPM_CONFIG_UPDATE_NOTIFIER=false \
    NPM_CONFIG_FUND=false \
    NPM_CONFIG_AUDIT=false
COPY --chown=gridiron:gridiron package.json package-lock.json ./
# `npm install` runs it (package.json `prepare`); with no sources yet, it has nothing to strip.
COPY --chown=gridiron:gridiron control/node/stripped-modules.js control/node/
# Only what the mesh runs (wrangler too, for `gridiron deploy` inside); tests and linters stay out.
RUN npm install --omit=dev && npm cache clean --force
COPY --chown=gridiron:gridiron . .
# The sources with their types stripped ahead, now that they are here.
RUN npm run prepare
RUN cp -r runit/. /etc/gridiron/service/

# runit runs one workerd (one cell, see README, Resource limits); `status` in here must know it too.
ENV GRIDIRON_HOME=/app \
    GRIDIRON_DATA_DIR=/data \
    GRIDIRON_BIND=0.0.0.0 \
    GRIDIRON_CELLS=1
VOLUME ["/data"]
# The ingress (anyone may call services, as with Restate), the admin API front (admin token) and
# the read-only ops port (metrics and health). workerd and the deployer listen on the container's
# loopback.
EXPOSE 8080 9070 9082
# Ready when restate-server, its ingress, workerd and the deployer all answer (see README, Operations).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD curl -fsS "http://127.0.0.1:${GRIDIRON_OPS_PORT:-9082}/readyz" || exit 1

ENTRYPOINT ["runsvdir", "-P", "/etc/gridiron/service"]
