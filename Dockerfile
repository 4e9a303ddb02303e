# dockgate as a sidecar image: the gate in front of the Docker socket it is given.
#
#   docker build -t dockgate .
#   docker run -d --name dockgate -p 2376:2376 \
#     -v /var/run/docker.sock:/var/run/docker.sock -v dockgate-certs:/certs \
#     --group-add "$(stat -c %g /var/run/docker.sock)" --read-only --tmpfs /tmp dockgate
#
# NODE_IMAGE swaps the base (any Node >= 20 image with a POSIX shell); the tests build on a local one.
ARG NODE_IMAGE=node:20-bookworm-slim

# --- build: every dependency, compile, then drop the dev ones --------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /build
COPY package.json package-lock.json ./
# --ignore-scripts: the package's own "prepare" would compile before the sources are here.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npx --no-install tsc -p tsconfig.json \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund \
 && chmod 0755 dist/cli/main.js

# --- run: production dependencies and dist/ only, as a user that owns nothing but /certs -----------
FROM ${NODE_IMAGE}
ARG DOCKGATE_UID=10001
# The user is written into passwd/group by hand: useradd is not in every base image.
RUN echo "dockgate:x:${DOCKGATE_UID}:${DOCKGATE_UID}:dockgate:/nonexistent:/sbin/nologin" >>/etc/passwd \
 && echo "dockgate:x:${DOCKGATE_UID}:" >>/etc/group \
 && mkdir -p /certs \
 && chown "${DOCKGATE_UID}:${DOCKGATE_UID}" /certs \
 && chmod 0700 /certs \
 && ln -s /app/dist/cli/main.js /usr/local/bin/dockgate \
 && mkdir -p /etc/dockgate \
 && echo "dockgate image: the first start tells how to fetch the admin bundle out of /certs" >/etc/dockgate/image
COPY --from=build /build/package.json /app/
COPY --from=build /build/node_modules /app/node_modules
COPY --from=build /build/dist /app/dist
# From /, the commands' default --dir ./certs is the volume: `docker exec ... dockgate pki client bob`.
WORKDIR /

# serve's flags as its DOCKGATE_* variables, so that `docker run IMAGE serve --san NAME` keeps them.
# An empty /certs volume gets a CA, a server certificate and the bundle clients/admin on first start.
ENV NODE_ENV=production \
    DOCKGATE_CERTS=/certs \
    DOCKGATE_HOST=tcp://0.0.0.0:2376 \
    DOCKGATE_UPSTREAM=unix:///var/run/docker.sock
VOLUME ["/certs"]
EXPOSE 2376
USER ${DOCKGATE_UID}:${DOCKGATE_UID}
# GETs /healthz on the metrics listener (127.0.0.1:9323, or DOCKGATE_METRICS_ADDR): 0 when the gate
# is up and the engine answers, 1 otherwise.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 CMD ["dockgate", "health"]
ENTRYPOINT ["dockgate"]
CMD ["serve"]
