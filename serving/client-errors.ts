/**
 * JSON responses for the requests that Node's HTTP server rejects before they
 * reach Express: headers over the size limit (431), malformed requests (400),
 * oversized chunk extensions (413) and requests that time out (408). Without
 * a 'clientError' listener, Node writes a bare status line with no body for
 * these.
 */
import { randomUUID } from "node:crypto";
import { STATUS_CODES, type Server, maxHeaderSize as defaultMaxHeaderSize } from "node:http";
import type { Duplex } from "node:stream";
import { JSON_TYPE } from "./http.js";
import { type Logger, logEntry, safeLog } from "./logging.js";
import type { ServingMetrics } from "./metrics.js";

/** Time a socket has to send its error response before it is destroyed, in milliseconds. */
const LINGER_MS = 1_000;

/** An error passed to 'clientError': llhttp errors carry an `HPE_*` code and a `reason`. */
type ClientError = Error & { code?: string; reason?: string };

interface ClientErrorResponse {
  status: number;
  message: string;
}

export interface ClientErrorOptions {
  logger: Logger;
  metrics: ServingMetrics;
  /** Limit on the request line and headers, in bytes (default: Node's `http.maxHeaderSize`). */
  maxHeaderSize?: number;
}

/**
 * Sends a JSON error response, `{"error": "..."}` with `Connection: close`,
 * for each 'clientError' event of `server`, and logs it without the raw
 * request bytes, which may contain credentials. A socket that is no longer
 * writable, or whose previous response is still being sent, is destroyed
 * without a response, because bytes written there would corrupt that response.
 */
export function handleClientErrors(server: Server, options: ClientErrorOptions): void {
  const { logger, metrics } = options;
  const maxHeaderSize = options.maxHeaderSize ?? defaultMaxHeaderSize;
  // Responses not yet closed, per socket. A socket is in this map only while the app handles a request from it.
  const openResponses = new WeakMap<Duplex, number>();
  // Sockets that have been sent an error response, so that a second 'clientError' on one of them writes nothing more.
  const errorSent = new WeakSet<Duplex>();

  server.on("request", (req, res) => {
    const socket = req.socket;
    openResponses.set(socket, (openResponses.get(socket) ?? 0) + 1);
    res.once("close", () => {
      const count = (openResponses.get(socket) ?? 1) - 1;
      if (count === 0) {
        openResponses.delete(socket);
      } else {
        openResponses.set(socket, count);
      }
    });
  });

  server.on("clientError", (error: ClientError, socket: Duplex) => {
    try {
      if (errorSent.has(socket)) return;
      const response = clientErrorResponse(error, maxHeaderSize);
      if (response === null) {
        // The connection itself failed (for example ECONNRESET), which is not worth a log line.
        socket.destroy();
        return;
      }
      if (!socket.writable || openResponses.has(socket)) {
        safeLog(logger, logEntry("warn", "request rejected before routing; closing the connection without a response", {
          status: response.status,
          code: error.code,
          error: response.message,
        }));
        socket.destroy();
        return;
      }
      errorSent.add(socket);
      const requestId = randomUUID();
      metrics.requests.inc({ model: "", route: "unparsed", status: String(response.status) });
      safeLog(logger, logEntry("warn", "request rejected before routing", {
        requestId,
        status: response.status,
        code: error.code,
        error: response.message,
      }));
      socket.end(httpResponse(response, requestId));
      // A client still sending its headers may never close its side, so the socket gets a limited time to flush.
      const timer = setTimeout(() => socket.destroy(), LINGER_MS);
      timer.unref();
      socket.once("close", () => clearTimeout(timer));
    } catch (failure) {
      safeLog(logger, logEntry("error", "failed to send the error response of a rejected request; closing the connection", {
        code: error.code,
        error: failure instanceof Error ? failure.message : String(failure),
      }));
      socket.destroy();
    }
  });
}

/**
 * Maps a 'clientError' error to the response to send, or null for errors of
 * the connection itself (such as ECONNRESET), which get no response.
 */
function clientErrorResponse(error: ClientError, maxHeaderSize: number): ClientErrorResponse | null {
  const code = error.code ?? "";
  if (code === "HPE_HEADER_OVERFLOW") {
    return {
      status: 431,
      message: `request headers too large: the limit is ${maxHeaderSize} bytes for the request line and headers; send fewer or shorter headers`,
    };
  }
  if (code === "HPE_CHUNK_EXTENSIONS_OVERFLOW") {
    return { status: 413, message: "chunk extensions too large: send the chunked body without chunk extensions" };
  }
  if (code === "ERR_HTTP_REQUEST_TIMEOUT") {
    return { status: 408, message: "request timed out: the headers and body were not received in time" };
  }
  if (code.startsWith("HPE_")) {
    const reason = error.reason ?? error.message;
    return { status: 400, message: `malformed HTTP request: ${reason} (${code})` };
  }
  return null;
}

/** Formats a complete HTTP/1.1 response with a JSON body that ends the connection. */
function httpResponse(response: ClientErrorResponse, requestId: string): string {
  const body = JSON.stringify({ error: response.message });
  return [
    `HTTP/1.1 ${response.status} ${STATUS_CODES[response.status] ?? ""}`,
    `Content-Type: ${JSON_TYPE}; charset=utf-8`,
    `Content-Length: ${Buffer.byteLength(body)}`,
    `X-Request-Id: ${requestId}`,
    "Connection: close",
    "",
    body,
  ].join("\r\n");
}
