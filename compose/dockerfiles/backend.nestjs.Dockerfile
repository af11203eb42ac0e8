# NestJS backend of a pnpm workspace. Builds examples/apps/backend; to use it for your
# own API, keep the workspace layout (pnpm-lock.yaml at the root; the app in
# apps/backend, its package named "backend", `build` writing dist/main.js, and
# "files": ["dist"] in its package.json, which is what `pnpm deploy` copies) and set in
# the env file:
#
#   BACKEND_CONTEXT=../          (the workspace root, relative to compose/)
#   BACKEND_DOCKERFILE=compose/dockerfiles/backend.nestjs.Dockerfile   (relative to the context)
#
# main.ts must call app.enableShutdownHooks() (SIGTERM drains in-flight requests) and
# serve GET /health. Prisma: add `RUN pnpm --filter backend exec prisma generate` before
# the build, copy prisma/ into /out, and set migrate_command: [pnpm, prisma, migrate, deploy].
ARG NODE_IMAGE=node:20-alpine

FROM ${NODE_IMAGE} AS base
ARG PNPM_VERSION=9.15.9
RUN npm install --global --no-audit --no-fund "pnpm@${PNPM_VERSION}"
WORKDIR /repo

# Dependencies first, from the lockfile alone: this layer and the pnpm store (a build
# cache, kept across builds) are reused until the lockfile or a package.json changes.
FROM base AS deps
COPY pnpm-lock.yaml pnpm-workspace.yaml package.json ./
COPY apps/backend/package.json apps/backend/
RUN --mount=type=cache,id=pnpm-store,target=/pnpm-store \
    pnpm install --frozen-lockfile --store-dir /pnpm-store --filter backend...

# Compile, then a folder with dist/ and only the production dependencies.
FROM deps AS build
COPY apps/backend apps/backend
RUN --mount=type=cache,id=pnpm-store,target=/pnpm-store \
    pnpm --filter backend build \
 && pnpm --filter backend deploy --prod --store-dir /pnpm-store /out

FROM ${NODE_IMAGE}
ENV NODE_ENV=production PORT=3000
WORKDIR /app
# Owned by root and not writable by the app; the version comes last, so that every
# release shares the layers above.
COPY --from=build /out ./
USER node
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=4s --start-period=30s --retries=3 \
  CMD ["node", "-e", "require('http').get({host: '127.0.0.1', port: process.env.PORT, path: '/health'}, (r) => process.exit(r.statusCode === 200 ? 0 : 1)).on('error', () => process.exit(1))"]
CMD ["node", "dist/main.js"]
ARG APP_VERSION=dev
LABEL org.opencontainers.image.version="${APP_VERSION}" org.opencontainers.image.title="backend"
ENV APP_VERSION=${APP_VERSION}
