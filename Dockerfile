# gort as a sidecar image. Build: podman build -t gort .  (or docker build)
# Run next to a Go service, in a pid namespace both share and whose pid 1 is
# neither (a pod's pause container: the kernel kills a namespace with its
# pid 1), with the capabilities gort needs (README, "Running as a sidecar"):
#   podman run --pid=container:pod --network=container:pod --cap-drop ALL --cap-add SYS_ADMIN \
#     --cap-add SYS_PTRACE --read-only gort run --exe /app/server
# (--exe names the executable as the service sees it in its own image.)
#
# Build arguments, for builds that cannot pull the public images:
#   BUILDER_IMAGE  where gort is compiled (default: the official Rust image)
#   RUNTIME_IMAGE  what the image is made from (default: Debian slim)
#   GORT_FROM      "build" compiles gort from this source; "prebuilt" takes
#                  the binary at prebuilt/gort in the build context instead
#                  (a release build made outside; the tests do this).
ARG BUILDER_IMAGE=docker.io/library/rust:1-bookworm
ARG RUNTIME_IMAGE=docker.io/library/debian:bookworm-slim
ARG GORT_FROM=build

FROM ${BUILDER_IMAGE} AS build
WORKDIR /src
COPY . .
# scripts/setup installs the pinned toolchains and builds bpf-linker against
# the probes' nightly libLLVM; the image does not need Go.
RUN GORT_SETUP_GO=0 bash scripts/setup \
 && cargo build --release -p gort \
 && mkdir -p /out && cp target/release/gort /out/gort

FROM scratch AS prebuilt
COPY prebuilt/gort /out/gort

FROM ${GORT_FROM} AS binary

FROM ${RUNTIME_IMAGE}
# gort runs as a non-root user, and such a process holds only the
# capabilities its binary carries (Kubernetes grants no ambient ones). They
# must be exactly those the container is given (--cap-add,
# capabilities.add): a file capability outside the bounding set makes exec
# fail. For Linux 5.8 to 6.15, use cap_bpf,cap_perfmon,cap_sys_ptrace here
# and in the manifests. setcap comes from libcap2-bin, installed for the
# purpose and removed again when the base image lacks it. The binary is
# copied and given its capabilities in one step: a setcap after a COPY
# would store the 16 MB binary in the image twice.
RUN --mount=type=bind,from=binary,source=/out,target=/mnt/gort \
    install -m 0755 /mnt/gort/gort /usr/local/bin/gort \
 && if command -v setcap >/dev/null; then \
      setcap cap_sys_admin,cap_sys_ptrace+ep /usr/local/bin/gort; \
    else \
      apt-get update && apt-get install -y --no-install-recommends libcap2-bin \
      && setcap cap_sys_admin,cap_sys_ptrace+ep /usr/local/bin/gort \
      && apt-get purge -y libcap2-bin && apt-get autoremove -y && rm -rf /var/lib/apt/lists/*; \
    fi
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/gort"]
