# Multi-stage build of Tessera and the example sibling service: binaries (libpq, SQLite, OpenSSL and
# aws-lc are all compiled in) on a slim runtime image. The image runs
# Tessera by default; docker-compose.yml runs the sibling from it too.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p tessera -p tessera-sibling

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/tessera tessera \
 && mkdir -p /var/lib/tessera/keys /var/lib/tessera/data \
 && chown -R tessera /var/lib/tessera && chmod 700 /var/lib/tessera/keys
COPY --from=build /src/target/release/tessera /src/target/release/tessera-sibling /usr/local/bin/
USER tessera
WORKDIR /var/lib/tessera
# Same keys as config/default.toml; relative paths resolve against WORKDIR.
ENV TESSERA__SERVER__BIND=0.0.0.0:8080 \
    TESSERA__DATABASE__URL=sqlite://data/tessera.db \
    TESSERA__KEYS__DIR=keys
VOLUME ["/var/lib/tessera/keys", "/var/lib/tessera/data"]
EXPOSE 8080
ENTRYPOINT ["tessera"]
CMD ["serve"]
