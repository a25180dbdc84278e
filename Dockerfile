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
EXPOSE 8080
ENTRYPOINT ["/presenced"]
CMD ["--log-format", "json"]
