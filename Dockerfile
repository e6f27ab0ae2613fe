# parts-mcp in a container: the wheel, a non-root user, and the ledger on the /data volume.
#
#   docker build -t parts-mcp .
#
# stdio (what MCP clients start; -i keeps stdin open, no -t: the protocol is on stdout):
#   docker run -i --rm parts-mcp                          # the embedded sandbox: nothing real is ordered
#   docker run -i --rm -v parts-data:/data \
#     -v "$PWD/parts-mcp.toml:/config/parts-mcp.toml:ro" -e PARTS_MCP_CONFIG=/config/parts-mcp.toml \
#     -e SKYNET_API_KEY parts-mcp
#
# Streamable HTTP at http://HOST:8765/mcp. Inside a container the server must bind 0.0.0.0 to be
# reachable, and a non-loopback bind refuses to start (exit 2) unless the config has [server.auth]
# with allowed_hosts (README, "Exposure rule"):
#   docker run --rm -p 8765:8765 -v parts-data:/data \
#     -v "$PWD/parts-mcp.toml:/config/parts-mcp.toml:ro" -e PARTS_MCP_CONFIG=/config/parts-mcp.toml \
#     parts-mcp serve --transport http --host 0.0.0.0 --port 8765
#
# The config's ledger belongs on the volume: [store] path = "/data/parts-mcp.sqlite3" (a relative
# path lands there too: /data is the working directory). Back up the volume with its .key file.

FROM python:3.11-slim AS wheel
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY parts_mcp ./parts_mcp
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
LABEL org.opencontainers.image.title="parts-mcp" \
      org.opencontainers.image.description="MCP server for guarded parts look-up and purchase orders" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.source="https://github.com/parts-mcp/parts-mcp" \
      io.modelcontextprotocol.server.name="io.github.parts-mcp/parts-mcp"
# XDG_DATA_HOME: without a [store] path the ledger's default (the user data dir) is on the volume too.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    XDG_DATA_HOME=/data
COPY --from=wheel /wheels /tmp/wheels
# The wheel is this build's own; its dependencies resolve within pyproject.toml's ranges. With the
# PostgreSQL driver: containers are how replicas usually run ([store] url).
# hadolint ignore=DL3013
RUN wheel=$(ls /tmp/wheels/*.whl) && pip install --no-cache-dir "${wheel}[postgres]" \
    && rm -rf /tmp/wheels \
    && groupadd --system --gid 10001 parts \
    && useradd --system --uid 10001 --gid parts --no-create-home --home-dir /data parts \
    && mkdir -p /data \
    && chown parts:parts /data \
    && chmod 0700 /data
# Numeric, so a runtime that checks for a non-root user (Kubernetes runAsNonRoot) can tell.
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8765
ENTRYPOINT ["parts-mcp"]
CMD ["serve"]
