# One image for both executables, `gateway` and `worker`: the container's command
# chooses (docker-compose.yml runs `gateway` in one service and `worker` in another).
#
#   docker build -t swift-kafka-jobs .
#   docker run --rm -p 8080:8080 -e JOBS_BROKERS=kafka1:9092 -e JOBS_API_KEYS=admin:admin:<token> swift-kafka-jobs gateway
#   docker run --rm -e JOBS_BROKERS=kafka1:9092 swift-kafka-jobs worker --concurrency 32
#
# Both stages are Debian bookworm, so the binaries are built against the same
# librdkafka (Debian's 2.0.2) that they load at run time.

# ---- build -------------------------------------------------------------------
# The dependencies' manifests need Swift tools 6.2 or newer; 6.3 is the toolchain
# the package is developed and tested with.
FROM swift:6.3-bookworm AS build

RUN export DEBIAN_FRONTEND=noninteractive \
    && apt-get update \
    && apt-get install -y --no-install-recommends librdkafka-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /build

# Dependencies first, in their own layer: editing Sources/ doesn't fetch them again.
# Package.resolved is not committed; when a local one is in the context, its
# versions are used exactly.
COPY Package.* ./
RUN if [ -f Package.resolved ]; then swift package resolve --force-resolved-versions; \
    else swift package resolve; fi

# The test targets' folders must exist for the manifest to load, though nothing
# in them is built here.
COPY Sources ./Sources
COPY Tests ./Tests

# `swift build --product` takes one product, so two builds; the second reuses the
# modules the first compiled. The Swift runtime and Foundation are linked in
# statically, so the runtime image needs no Swift toolchain.
RUN swift build -c release --static-swift-stdlib --product gateway \
    && swift build -c release --static-swift-stdlib --product worker \
    && mkdir /staging \
    && bin="$(swift build -c release --static-swift-stdlib --show-bin-path)" \
    && cp "$bin/gateway" "$bin/worker" /staging/ \
    && cp -R "$bin/swift-kafka-jobs_JobsGateway.resources" /staging/ \
    && cp /usr/libexec/swift/linux/swift-backtrace-static /staging/

# ---- run ---------------------------------------------------------------------
FROM debian:bookworm-slim

# librdkafka1: the Kafka client (also brings OpenSSL, SASL and zlib, for TLS and
# SASL clusters); ca-certificates: to verify brokers' TLS certificates; tzdata:
# for Foundation's time zones; curl: for the gateway's health check (GET /ready).
RUN export DEBIAN_FRONTEND=noninteractive \
    && apt-get update \
    && apt-get install -y --no-install-recommends librdkafka1 ca-certificates tzdata curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --user-group --uid 10001 --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin jobs

COPY --from=build /staging/gateway /staging/worker /usr/local/bin/
# The gateway's OpenAPI document and dashboard: found next to the executable.
COPY --from=build /staging/swift-kafka-jobs_JobsGateway.resources /usr/local/bin/swift-kafka-jobs_JobsGateway.resources
# Readable backtraces when a process crashes.
COPY --from=build /staging/swift-backtrace-static /usr/local/libexec/swift/swift-backtrace-static
ENV SWIFT_BACKTRACE=enable=yes,sanitize=yes,threads=all,images=all,interactive=no,swift-backtrace=/usr/local/libexec/swift/swift-backtrace-static

# The gateway's default address, 127.0.0.1, is unreachable from outside a
# container; listen on every interface instead (override with JOBS_HOST or --host).
ENV JOBS_HOST=0.0.0.0

USER jobs:jobs
# The gateway's HTTP port (JOBS_PORT / --port, default 8080). Workers listen on nothing.
EXPOSE 8080

# Without a command the container runs the gateway; give `worker` to run a worker.
# Both stop gracefully on SIGTERM (a worker drains its jobs first: give it
# longer than --drain-timeout before it is killed, e.g. `docker stop -t 40`).
CMD ["gateway"]
