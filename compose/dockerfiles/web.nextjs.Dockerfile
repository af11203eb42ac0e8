# Next.js web (standalone output) — a template to copy into your repository.
#
#   cp compose/dockerfiles/web.nextjs.Dockerfile apps/web/Dockerfile
#   .env: WEB_CONTEXT=../   WEB_DOCKERFILE=apps/web/Dockerfile
#
# Expects: next.config.js with `output: 'standalone'`, and a route that answers
# GET /health with 200 (e.g. app/health/route.ts). NEXT_PUBLIC_* values are baked
# in at build time, so they are build arguments. Runs on a read-only root filesystem
# (docker-compose.prod.yml gives it a tmpfs /tmp; point the image cache there).
ARG NODE_IMAGE=node:20-alpine

FROM ${NODE_IMAGE} AS base
ENV PNPM_HOME=/pnpm PATH=/pnpm:$PATH NEXT_TELEMETRY_DISABLED=1
RUN corepack enable
WORKDIR /repo

FROM base AS deps
COPY pnpm-lock.yaml pnpm-workspace.yaml package.json ./
COPY apps/web/package.json apps/web/
RUN --mount=type=cache,id=pnpm,target=/pnpm/store pnpm install --frozen-lockfile --filter web...

FROM deps AS build
ARG NEXT_PUBLIC_API_URL=/api
ARG NEXT_PUBLIC_APP_URL=http://localhost
ENV NEXT_PUBLIC_API_URL=${NEXT_PUBLIC_API_URL} NEXT_PUBLIC_APP_URL=${NEXT_PUBLIC_APP_URL}
COPY apps/web apps/web
RUN pnpm --filter web build

FROM ${NODE_IMAGE}
ARG APP_VERSION=dev
LABEL org.opencontainers.image.version="${APP_VERSION}"
ENV NODE_ENV=production APP_VERSION=${APP_VERSION} PORT=3000 HOSTNAME=0.0.0.0 NEXT_TELEMETRY_DISABLED=1
WORKDIR /app
COPY --from=build --chown=node:node /repo/apps/web/.next/standalone ./
COPY --from=build --chown=node:node /repo/apps/web/.next/static ./apps/web/.next/static
COPY --from=build --chown=node:node /repo/apps/web/public ./apps/web/public
USER node
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=4s --start-period=20s --retries=3 \
  CMD ["node", "-e", "require('http').get({host: '127.0.0.1', port: process.env.PORT, path: '/health'}, (r) => process.exit(r.statusCode === 200 ? 0 : 1)).on('error', () => process.exit(1))"]
CMD ["node", "apps/web/server.js"]
