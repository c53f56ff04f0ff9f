import { spawn } from "node:child_process";
import { once } from "node:events";
import { writeFile } from "node:fs/promises";
import { createServer, request as httpRequest } from "node:http";
import { type AddressInfo, connect } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { serveCommand } from "../../cli/serve.js";
import { type LogEntry, silentLogger } from "../../serving/app.js";
import { handleClientErrors } from "../../serving/client-errors.js";
import { ServingMetrics } from "../../serving/metrics.js";
import { startServer } from "../../serving/server.js";
import { trainTinyModel } from "../fixtures/aliccp.js";

let modelDir: string;

beforeAll(async () => {
  ({ modelDir } = await trainTinyModel());
});

function nullRow(names: readonly string[]): Record<string, null> {
  return Object.fromEntries(names.map((name) => [name, null]));
}

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

interface RawConnection {
  write(text: string): void;
  /** The raw text received until the server closed the connection. */
  received: Promise<string>;
}

/** Opens a TCP connection to the server at `url`, for requests written by hand. */
async function openConnection(url: string): Promise<RawConnection> {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  socket.setEncoding("utf8");
  let text = "";
  socket.on("data", (data: string) => (text += data));
  const received = once(socket, "close").then(() => text);
  await once(socket, "connect");
  return { write: (chunk) => socket.write(chunk), received };
}

/** Sends `request` on a new connection and returns the raw text received until the server closes it. */
async function exchange(url: string, request: string): Promise<string> {
  const connection = await openConnection(url);
  connection.write(request);
  return connection.received;
}

/** Splits raw HTTP/1.1 responses into status, headers (lowercase names) and body. */
function parseResponses(text: string): RawResponse[] {
  const responses: RawResponse[] = [];
  let rest = text;
  while (rest.length > 0) {
    const headerEnd = rest.indexOf("\r\n\r\n");
    if (headerEnd === -1) throw new Error(`incomplete response: ${JSON.stringify(rest)}`);
    const [statusLine, ...headerLines] = rest.slice(0, headerEnd).split("\r\n");
    const headers: Record<string, string> = {};
    for (const line of headerLines) {
      const colon = line.indexOf(":");
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    // Without Content-Length, the body runs to the end of the connection.
    const bodyStart = headerEnd + 4;
    const bodyEnd = headers["content-length"] === undefined ? rest.length : bodyStart + Number(headers["content-length"]);
    responses.push({ status: Number(statusLine.split(" ")[1]), headers, body: rest.slice(bodyStart, bodyEnd) });
    rest = rest.slice(bodyEnd);
  }
  return responses;
}

describe("startServer", () => {
  it("serves predictions on 127.0.0.1 and closes", async () => {
    const running = await startServer({ modelDir, port: 0, host: "127.0.0.1", logger: silentLogger, handleSignals: false });
    expect(running.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const row = nullRow(running.model.encoder.features.map((f) => f.name));

    const res = await fetch(`${running.url}/v1/models/${running.model.name}:predict`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "x-request-id": "server-test" },
      body: JSON.stringify({ instances: [row, row] }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-request-id")).toBe("server-test");
    const body = (await res.json()) as { predictions: Record<string, number>[] };
    expect(body.predictions).toHaveLength(2);
    expect(Object.keys(body.predictions[0])).toEqual(["ctr", "cvr"]);

    await running.close();
    expect(running.server.listening).toBe(false);
    expect(running.model.released).toBe(true);
    await expect(fetch(`${running.url}/healthz`)).rejects.toThrow();
  });

  it("finishes a request in flight when closed", async () => {
    const running = await startServer({ modelDir, port: 0, logger: silentLogger, handleSignals: false });
    const row = nullRow(running.model.encoder.features.map((f) => f.name));
    const body = JSON.stringify({ instances: [row] });
    const { port } = new URL(running.url);

    const response = new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = httpRequest(
        { host: "127.0.0.1", port, path: "/predict", method: "POST", headers: { "Content-Type": "application/json", "Content-Length": body.length } },
        (res) => {
          let text = "";
          res.on("data", (chunk) => (text += chunk));
          res.on("end", () => resolve({ status: res.statusCode!, text }));
        },
      );
      req.on("error", reject);
      // Send half the body now and the rest after close() has begun.
      req.write(body.slice(0, 10));
      setTimeout(() => req.end(body.slice(10)), 200);
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const closed = running.close();
    const result = await response;
    await closed;
    expect(result.status).toBe(200);
    expect(JSON.parse(result.text).predictions).toHaveLength(1);
    expect(running.model.released).toBe(true);
  });

  it("fails health checks once draining starts", async () => {
    const running = await startServer({ modelDir, port: 0, logger: silentLogger, handleSignals: false });
    const name = running.model.name;
    const row = nullRow(running.model.encoder.features.map((f) => f.name));
    const body = JSON.stringify({ instances: [row] });
    const predict = `POST /predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`;
    const checks = ["/healthz", "/v2/health/ready", `/v2/models/${name}/ready`, `/v2/models/${name}/versions/1/ready`];

    // A predict request is in flight on each connection when close() begins,
    // so the kept-alive connections stay open and carry one health check each.
    const connections = await Promise.all(checks.map(() => openConnection(running.url)));
    for (const connection of connections) connection.write(predict + body.slice(0, 10));
    await new Promise((resolve) => setTimeout(resolve, 200));
    const closed = running.close();
    for (const [k, connection] of connections.entries()) {
      connection.write(`${body.slice(10)}GET ${checks[k]} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
    }
    const received = await Promise.all(connections.map((connection) => connection.received));
    await closed;

    for (const [k, text] of received.entries()) {
      const responses = parseResponses(text);
      expect(responses.map((response) => response.status), checks[k]).toEqual([200, 503]);
      expect(JSON.parse(responses[0].body).predictions, checks[k]).toHaveLength(1);
      const check = responses[1];
      expect(check.headers.connection, checks[k]).toBe("close");
      expect(check.headers["content-type"], checks[k]).toMatch(/^application\/json/);
      expect(JSON.parse(check.body).error, checks[k]).toMatch(/shutting down/);
    }
    expect(JSON.parse(parseResponses(received[0])[1].body)).toEqual({
      error: "not ready: the server is shutting down",
      status: "shutting down",
    });
  });

  it("marks models unloading once draining starts", async () => {
    const running = await startServer({ modelDir, port: 0, logger: silentLogger, handleSignals: false });
    try {
      running.repository.beginShutdown();
      const res = await fetch(`${running.url}/v1/models/${running.model.name}`);
      expect(res.status).toBe(200);
      expect(res.headers.get("connection")).toBe("close");
      const status = (await res.json()) as { state: string; model_version_status: { state: string }[] };
      expect(status.state).toBe("UNLOADING");
      expect(status.model_version_status.map((version) => version.state)).toEqual(["UNLOADING"]);
    } finally {
      await running.close();
    }
  });

  it("reports a port in use", async () => {
    const first = await startServer({ modelDir, port: 0, logger: silentLogger, handleSignals: false });
    const { port } = new URL(first.url);
    await expect(startServer({ modelDir, port: Number(port), logger: silentLogger, handleSignals: false })).rejects.toThrow(
      /cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE/,
    );
    await first.close();
  });
});

describe("client errors", () => {
  it.each([
    ["oversized headers", `GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Large: ${"a".repeat(20_000)}\r\n\r\n`, 431, /^request headers too large: the limit is 16384 bytes/],
    ["a long URL", `GET /healthz?q=${"a".repeat(20_000)} HTTP/1.1\r\nHost: localhost\r\n\r\n`, 431, /^request headers too large/],
    ["a header without a colon", "GET /healthz HTTP/1.1\r\nHost localhost\r\n\r\n", 400, /^malformed HTTP request: .+ \(HPE_[A-Z_]+\)$/],
    ["an invalid request line", "NOT HTTP\r\n\r\n", 400, /^malformed HTTP request: .+ \(HPE_[A-Z_]+\)$/],
  ])("answers %s with JSON", async (_case, request, status, message) => {
    const logs: LogEntry[] = [];
    const running = await startServer({ modelDir, port: 0, logger: (entry) => logs.push(entry), handleSignals: false });
    try {
      const responses = parseResponses(await exchange(running.url, request));
      expect(responses).toHaveLength(1);
      const [response] = responses;
      expect(response.status).toBe(status);
      expect(response.headers["content-type"]).toBe("application/json; charset=utf-8");
      expect(response.headers.connection).toBe("close");
      const body = JSON.parse(response.body) as { error: string };
      expect(Object.keys(body)).toEqual(["error"]);
      expect(body.error).toMatch(message);

      const logged = logs.find((entry) => entry.msg === "request rejected before routing");
      expect(logged).toMatchObject({ level: "warn", status, error: body.error, requestId: response.headers["x-request-id"] });
      expect(JSON.stringify(logged)).not.toContain("aaaa");
      const metrics = await (await fetch(`${running.url}/metrics`)).text();
      expect(metrics).toContain(`onnxrec_requests_total{model="",route="unparsed",status="${status}"} 1`);
      expect((await fetch(`${running.url}/healthz`)).status).toBe(200);
    } finally {
      await running.close();
    }
  });

  it("answers a header timeout with 408", async () => {
    const logs: LogEntry[] = [];
    const server = createServer({ headersTimeout: 200, requestTimeout: 300, connectionsCheckingInterval: 50 }, (_req, res) => res.end());
    handleClientErrors(server, { logger: (entry) => logs.push(entry), metrics: new ServingMetrics() });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    try {
      const { port } = server.address() as AddressInfo;
      const responses = parseResponses(await exchange(`http://127.0.0.1:${port}`, "GET / HTTP/1.1\r\nHost: localhost\r\n"));
      expect(responses.map((response) => response.status)).toEqual([408]);
      expect(JSON.parse(responses[0].body)).toEqual({ error: "request timed out: the headers and body were not received in time" });
      expect(logs.map((entry) => entry.code)).toEqual(["ERR_HTTP_REQUEST_TIMEOUT"]);
    } finally {
      server.close();
    }
  });

  it("times out a stalled body with 408", async () => {
    const running = await startServer({ modelDir, port: 0, logger: silentLogger, handleSignals: false, requestTimeoutMs: 300 });
    try {
      const path = `/v1/models/${running.model.name}:predict`;
      const stalled = `POST ${path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{`;
      const started = performance.now();
      const responses = parseResponses(await exchange(running.url, stalled));
      expect(responses.map((response) => response.status)).toEqual([408]);
      expect(JSON.parse(responses[0].body)).toEqual({
        error: "request timed out: the body did not arrive within 0.3 s; send the whole body at once",
      });
      expect(performance.now() - started).toBeLessThan(10_000);
      const instances = [nullRow(running.model.encoder.features.map((f) => f.name))];
      const ok = await fetch(`${running.url}${path}`, { method: "POST", body: JSON.stringify({ instances }), headers: { "content-type": "application/json" } });
      expect(ok.status).toBe(200);
    } finally {
      await running.close();
    }
  });

  it("survives a connection reset mid-headers", async () => {
    const running = await startServer({ modelDir, port: 0, logger: silentLogger, handleSignals: false });
    try {
      const { port } = new URL(running.url);
      const socket = connect(Number(port), "127.0.0.1");
      await once(socket, "connect");
      socket.write("GET /healthz HTTP/1.1\r\nHost: loc");
      socket.resetAndDestroy();
      await once(socket, "close");
      expect((await fetch(`${running.url}/healthz`)).status).toBe(200);
    } finally {
      await running.close();
    }
  });
});

describe("signals", () => {
  it("closes gracefully and exits on SIGTERM", async () => {
    const script = join(modelDir, "serve-until-signal.mts");
    const serverModule = fileURLToPath(new URL("../../serving/server.ts", import.meta.url));
    await writeFile(
      script,
      `import { startServer } from ${JSON.stringify(serverModule)};\n` +
        `const running = await startServer({ modelDir: ${JSON.stringify(modelDir)}, port: 0 });\n`,
    );
    const child = spawn(process.execPath, ["--import", "tsx", script], { stdio: ["ignore", "pipe", "inherit"] });
    const exited = once(child, "exit");
    let output = "";
    child.stdout.setEncoding("utf8");
    const listening = new Promise<string>((resolve) => {
      child.stdout.on("data", (chunk: string) => {
        output += chunk;
        const match = /"url":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(output);
        if (match) resolve(match[1]);
      });
    });
    try {
      const url = await listening;
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
      child.kill("SIGTERM");
      const [code, signal] = await exited;
      expect(signal).toBeNull();
      expect(code).toBe(0);
      expect(output).toContain('"msg":"received SIGTERM; closing"');
      expect(output).toContain('"msg":"closed"');
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    }
  });
});

describe("serveCommand", () => {
  it("prints the URL and a working curl example", async () => {
    const lines: string[] = [];
    const running = await serveCommand(modelDir, { port: 0, name: "tiny", logger: silentLogger, print: (line) => lines.push(line) });
    try {
      const output = lines.join("\n");
      expect(output).toContain(`at ${running.url}`);
      const curl = lines.find((line) => line.startsWith("curl "));
      expect(curl).toBeDefined();
      expect(curl).toContain(`'${running.url}/v1/models/tiny:predict'`);

      const body = /-d '([^']*)'/.exec(curl!)![1];
      const res = await fetch(`${running.url}/v1/models/tiny:predict`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body,
      });
      expect(res.status).toBe(200);
    } finally {
      await running.close();
    }
  });
});
