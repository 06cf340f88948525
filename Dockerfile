# The coordinator image, also the agent's (compose.yaml): Node 24, production dependencies plus tsx.
FROM node:24-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY proto ./proto
COPY gen ./gen
COPY migrations ./migrations
COPY common ./common
COPY coordinator ./coordinator
COPY agent ./agent
COPY tui ./tui
COPY client ./client
COPY web ./web
COPY scripts/build-web.ts ./scripts/build-web.ts
RUN node_modules/.bin/tsx scripts/build-web.ts
ENV NODE_ENV=production PORT=8080 HOST=0.0.0.0 DATA_DIR=/data
VOLUME /data
EXPOSE 8080
USER node
CMD ["node_modules/.bin/tsx", "coordinator/main.ts"]
