# The app image: Node 24 runs the TypeScript server directly (type stripping); the SPA is built here.
FROM node:24-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# `postinstall` applies patches/ (patch-package) to the installed packages.
COPY patches ./patches
RUN npm ci --no-audit --no-fund
COPY . .
# `build` is a symlink to the versioned build in .builds/ (scripts/build.ts); the image takes the files.
RUN npm run build && cp -rL build /client

FROM node:24-slim
ENV NODE_ENV=production HOST=0.0.0.0 PORT=3000 DATA_DIR=/data STATIC_DIR=/app/build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` (svelte-kit sync) is a build-time step and its tools are dev dependencies.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund
# The packages patches/ changes, as the build stage patched them (patch-package is a dev dependency);
# tests/unit/dockerfile-patches.test.ts checks every patch has its line here.
COPY --from=build /app/node_modules/@hocuspocus/server ./node_modules/@hocuspocus/server
COPY --from=build /app/node_modules/pg ./node_modules/pg
COPY --from=build /client ./build
COPY server ./server
COPY migrations ./migrations
COPY src/lib/protocol ./src/lib/protocol
RUN mkdir -p /data && chown node:node /data
USER node
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
	CMD ["node", "-e", "fetch('http://127.0.0.1:3000/readyz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# The flags of server/node-flags.ts (a smaller young generation: shorter pauses, less memory).
CMD ["node", "--max-semi-space-size=16", "--single-threaded-gc", "server/main.ts"]
