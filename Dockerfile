# idp: OpenID Connect provider. Build: docker build -t idp .
# Node runs the TypeScript sources directly (type stripping), so there is no compile step.

FROM node:24-bookworm-slim AS dependencies
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=dependencies /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY src ./src
COPY migrations ./migrations
# Embedded mode (no DATABASE_URL) keeps its database, secrets and certificate in the home folder
# of the node user, the only place of the image that user may write to.
ENV IDP_DATA_DIR=/home/node/idp-data
# The image holds no secret: keys and passwords arrive at run time through *_FILE variables.
USER node
EXPOSE 8443 9464
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 CMD ["node", "bin/idp.js", "healthcheck"]
STOPSIGNAL SIGTERM
# A young generation of at most 3 x 16 MiB keeps the server near 175 MiB resident; Node's own
# default let it reach some 270 MiB under load. See docs/benchmarks.md.
CMD ["node", "--max-semi-space-size=16", "bin/idp.js", "serve"]
