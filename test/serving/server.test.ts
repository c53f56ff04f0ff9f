import { spawn } from "node:child_process";
import { once } from "node:events";
import { writeFile } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { serveCommand } from "../../cli/serve.js";
import { silentLogger } from "../../serving/app.js";
import { startServer } from "../../serving/server.js";
import { trainTinyModel } from "../fixtures/aliccp.js";

let modelDir: string;

beforeAll(async () => {
  ({ modelDir } = await trainTinyModel());
});

function nullRow(names: readonly string[]): Record<string, null> {
  return Object.fromEntries(names.map((name) => [name, null]));
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

  it("reports a port in use", async () => {
    const first = await startServer({ modelDir, port: 0, logger: silentLogger, handleSignals: false });
    const { port } = new URL(first.url);
    await expect(startServer({ modelDir, port: Number(port), logger: silentLogger, handleSignals: false })).rejects.toThrow(
      /cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE/,
    );
    await first.close();
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
