# Builds the reconcile binary (job, migrations, simulator and healthcheck in one).
#   docker build --build-arg VERSION=v1.2.3 --build-arg REVISION=$(git rev-parse HEAD) -t reconcile .
# The context has no .git (.dockerignore), so the version and revision come from these build args,
# stamped into the binary (reconcile version) and onto the image (OCI labels).
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=""
ARG REVISION=""
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X main.stampVersion=${VERSION} -X main.stampRevision=${REVISION}" \
      -o /out/reconcile ./cmd/reconcile

# No shell and no curl here: health probes use "/reconcile healthcheck URL".
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=""
ARG REVISION=""
LABEL org.opencontainers.image.title="reconcile" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /out/reconcile /reconcile
ENTRYPOINT ["/reconcile"]
