# gort as a sidecar image. Build: docker build -t gort .
# Run next to a Go service, sharing its pid namespace, with the capabilities
# gort needs (see README, "Least privilege": uprobes want CAP_SYS_ADMIN on
# Linux 6.16 and later, CAP_BPF and CAP_PERFMON before):
#   docker run --pid=container:my-service --cap-add SYS_ADMIN --cap-add BPF \
#     --cap-add PERFMON --cap-add SYS_PTRACE gort run --exe /proc/1/root/app/server
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# scripts/setup installs the pinned toolchains and builds bpf-linker against
# the probes' nightly libLLVM; the image does not need Go.
RUN GORT_SETUP_GO=0 bash scripts/setup \
 && cargo build --release -p gort \
 && cp target/release/gort /usr/local/bin/gort

FROM debian:bookworm-slim
COPY --from=build /usr/local/bin/gort /usr/local/bin/gort
ENTRYPOINT ["/usr/local/bin/gort"]
