# gort as a sidecar image. Build: docker build -t gort .
# Run next to a Go service, sharing its pid namespace, with the capabilities
# gort needs (see README, "Least privilege": uprobes want CAP_SYS_ADMIN on
# Linux 6.16 and later, CAP_BPF and CAP_PERFMON before):
#   docker run --pid=container:my-service --cap-drop ALL --cap-add SYS_ADMIN \
#     --cap-add SYS_PTRACE --read-only gort run --exe /app/server
# (--exe names the executable as the service sees it in its own image.)
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
# gort runs as a non-root user, and such a process holds only the
# capabilities its binary carries (Kubernetes grants no ambient ones). They
# must be exactly those the container is given (capabilities.add): a file
# capability outside the bounding set makes exec fail. For Linux 5.8 to
# 6.15, use cap_bpf,cap_perfmon,cap_sys_ptrace here and in the manifests.
RUN apt-get update && apt-get install -y --no-install-recommends libcap2-bin \
 && setcap cap_sys_admin,cap_sys_ptrace+ep /usr/local/bin/gort \
 && apt-get purge -y libcap2-bin && apt-get autoremove -y && rm -rf /var/lib/apt/lists/*
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/gort"]
