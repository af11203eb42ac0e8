# Next.js web of a pnpm workspace, standalone output. Builds examples/apps/web; to use
# it for your own site, keep the workspace layout (the app in apps/web, its package named
# "web", next.config with
# `output: 'standalone'` and `outputFileTracingRoot` at the workspace root, a route that
# answers GET /health) and set in the env file:
#
#   WEB_CONTEXT=../              (the workspace root, relative to compose/)
#   WEB_DOCKERFILE=compose/dockerfiles/web.nextjs.Dockerfile   (relative to the context)
#
# NEXT_PUBLIC_* values are baked in at build time, so they are build arguments. Runs on
# a read-only root file system (docker-compose.prod.yml gives it a tmpfs /tmp).
ARG NODE_IMAGE=node:20-alpine

FROM ${NODE_IMAGE} AS base
ARG PNPM_VERSION=9.15.9
RUN npm install --global --no-audit --no-fund "pnpm@${PNPM_VERSION}"
ENV NEXT_TELEMETRY_DISABLED=1
WORKDIR /repo

FROM base AS deps
COPY pnpm-lock.yaml pnpm-workspace.yaml package.json ./
COPY apps/web/package.json apps/web/
RUN --mount=type=cache,id=pnpm-store,target=/pnpm-store \
    pnpm install --frozen-lockfile --store-dir /pnpm-store --filter web...

FROM deps AS build
ARG NEXT_PUBLIC_API_URL=/api
ARG NEXT_PUBLIC_APP_URL=http://localhost
ENV NEXT_PUBLIC_API_URL=${NEXT_PUBLIC_API_URL} NEXT_PUBLIC_APP_URL=${NEXT_PUBLIC_APP_URL}
COPY apps/web apps/web
# Next.js's own build cache, kept across builds like the pnpm store.
RUN --mount=type=cache,id=next-cache,target=/repo/apps/web/.next/cache \
    pnpm --filter web build

FROM ${NODE_IMAGE}
ENV NODE_ENV=production PORT=3000 HOSTNAME=0.0.0.0 NEXT_TELEMETRY_DISABLED=1
WORKDIR /app
# The standalone server with the modules it traced, its static files and public/; owned
# by root and not writable by the app. The version comes last (shared layers).
COPY --from=build /repo/apps/web/.next/standalone ./
COPY --from=build /repo/apps/web/.next/static ./apps/web/.next/static
COPY --from=build /repo/apps/web/public ./apps/web/public
USER node
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=4s --start-period=20s --retries=3 \
  CMD ["node", "-e", "require('http').get({host: '127.0.0.1', port: process.env.PORT, path: '/health'}, (r) => process.exit(r.statusCode === 200 ? 0 : 1)).on('error', () => process.exit(1))"]
CMD ["node", "apps/web/server.js"]
ARG APP_VERSION=dev
LABEL org.opencontainers.image.version="${APP_VERSION}" org.opencontainers.image.title="web"
ENV APP_VERSION=${APP_VERSION}
