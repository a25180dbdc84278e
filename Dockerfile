# Multi-stage: a static binary on a distroless non-root base (no shell, no package manager).
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/presenced ./cmd/presenced

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/presenced /presenced
USER nonroot:nonroot
# 8080: WebSockets at /ws. 9090: /healthz, /readyz, /metrics; it listens on all interfaces in the
# container so that probes and scrapers reach it (keep it off public load balancers).
EXPOSE 8080 9090
ENV PRESENCED_INTERNAL_LISTEN=:9090
# No shell here: the binary checks itself (GET http://127.0.0.1:9090/healthz, its default, exit 0
# or 1). Docker's timeout is longer than the check's own 3 s, so a hung probe reports why.
HEALTHCHECK --interval=10s --timeout=4s --start-period=10s --retries=3 CMD ["/presenced", "healthcheck"]
ENTRYPOINT ["/presenced"]
CMD ["--log-format", "json"]
