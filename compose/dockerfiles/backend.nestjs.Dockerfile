# NestJS backend (pnpm monorepo, Prisma) — a template to copy into your repository.
#
#   cp compose/dockerfiles/backend.nestjs.Dockerfile apps/backend/Dockerfile
#   .env: BACKEND_CONTEXT=../   BACKEND_DOCKERFILE=apps/backend/Dockerfile
#
# Expects: pnpm-lock.yaml at the context root, the app in apps/backend with
# `build` producing dist/main.js, and prisma/schema.prisma. main.ts must call
# app.enableShutdownHooks() so SIGTERM drains in-flight requests, and serve GET /health.
ARG NODE_IMAGE=node:20-alpine

FROM ${NODE_IMAGE} AS base
ENV PNPM_HOME=/pnpm PATH=/pnpm:$PATH
RUN corepack enable
WORKDIR /repo

FROM base AS deps
COPY pnpm-lock.yaml pnpm-workspace.yaml package.json ./
COPY apps/backend/package.json apps/backend/
RUN --mount=type=cache,id=pnpm,target=/pnpm/store pnpm install --frozen-lockfile --filter backend...

FROM deps AS build
COPY apps/backend apps/backend
RUN pnpm --filter backend exec prisma generate \
 && pnpm --filter backend build \
 && pnpm --filter backend deploy --prod /out \
 && cp -r apps/backend/dist apps/backend/prisma /out/ \
 && cd /out && /repo/apps/backend/node_modules/.bin/prisma generate --schema prisma/schema.prisma

FROM ${NODE_IMAGE}
ARG APP_VERSION=dev
LABEL org.opencontainers.image.version="${APP_VERSION}"
ENV NODE_ENV=production APP_VERSION=${APP_VERSION} PORT=3000
WORKDIR /app
COPY --from=build --chown=node:node /out ./
USER node
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=4s --start-period=30s --retries=3 \
  CMD ["node", "-e", "require('http').get({host: '127.0.0.1', port: process.env.PORT, path: '/health'}, (r) => process.exit(r.statusCode === 200 ? 0 : 1)).on('error', () => process.exit(1))"]
CMD ["node", "dist/main.js"]
