# Build: docker build -t vod-ingest .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked && cp target/release/vod-ingest /vod-ingest

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /vod-ingest /usr/local/bin/vod-ingest
USER 65534
ENTRYPOINT ["vod-ingest"]
CMD ["run"]
