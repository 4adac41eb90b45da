# Build: docker build -t vod-ingest .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked && cp target/release/vod-ingest /vod-ingest

# The upload page's one third-party asset, the official OSS browser SDK, from npm.
FROM node:20-bookworm-slim AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /vod-ingest /usr/local/bin/vod-ingest
COPY --from=web /web/node_modules/ali-oss/dist /usr/share/vod-ingest/web/node_modules/ali-oss/dist
ENV VOD_INGEST_WEB_DIR=/usr/share/vod-ingest/web
USER 65534
ENTRYPOINT ["vod-ingest"]
CMD ["run"]
