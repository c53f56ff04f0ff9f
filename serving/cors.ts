/**
 * Cross-origin resource sharing, off unless origins are configured. A request
 * whose Origin header is in the list gets Access-Control-Allow-Origin set to
 * that origin (or `*` when the list is `*`). A preflight OPTIONS request from
 * such an origin gets a 204 response with the allowed methods and headers.
 */
import type { RequestHandler } from "express";
import { HttpError } from "./http.js";

const ALLOWED_METHODS = "GET, POST, OPTIONS";
const ALLOWED_HEADERS = "Content-Type, X-Request-Id";
const EXPOSED_HEADERS = "X-Request-Id, Retry-After";
/** How long a browser may cache a preflight response, in seconds. */
const PREFLIGHT_MAX_AGE_SECONDS = "600";

/**
 * Parses a comma-separated origin list such as "https://a.example,http://localhost:3000",
 * or "*" for any origin. Each origin is a scheme, a host and an optional port,
 * without a path. Throws a RangeError naming the first invalid entry.
 */
export function parseCorsOrigins(value: string | readonly string[]): string[] {
  const items = (typeof value === "string" ? value.split(",") : [...value]).map((item) => item.trim()).filter((item) => item !== "");
  if (items.length === 0) throw new RangeError("invalid CORS origins: the list is empty; give origins such as https://app.example or *");
  return items.map((item) => {
    if (item === "*") return item;
    let url: URL;
    try {
      url = new URL(item);
    } catch {
      throw new RangeError(`invalid CORS origin ${JSON.stringify(item)}: expected scheme://host[:port], such as https://app.example`);
    }
    if (url.origin === "null" || url.origin !== item.toLowerCase().replace(/\/$/, "")) {
      throw new RangeError(`invalid CORS origin ${JSON.stringify(item)}: expected scheme://host[:port] without a path, such as ${url.origin}`);
    }
    return url.origin;
  });
}

/** Returns the CORS middleware for the given origins (as returned by `parseCorsOrigins`). */
export function cors(origins: readonly string[]): RequestHandler {
  const anyOrigin = origins.includes("*");
  const allowed = new Set(origins);
  return (req, res, next) => {
    const origin = req.get("origin");
    if (!anyOrigin) res.vary("Origin");
    const matches = origin !== undefined && (anyOrigin || allowed.has(origin.toLowerCase()));
    const preflight = req.method === "OPTIONS" && req.get("access-control-request-method") !== undefined;
    if (!matches) {
      if (preflight) throw new HttpError(403, `origin ${JSON.stringify(origin ?? "")} is not allowed by this server's CORS configuration`);
      next();
      return;
    }
    res.set("Access-Control-Allow-Origin", anyOrigin ? "*" : origin);
    if (preflight) {
      res.set({
        "Access-Control-Allow-Methods": ALLOWED_METHODS,
        "Access-Control-Allow-Headers": ALLOWED_HEADERS,
        "Access-Control-Max-Age": PREFLIGHT_MAX_AGE_SECONDS,
      });
      res.status(204).end();
      return;
    }
    res.set("Access-Control-Expose-Headers", EXPOSED_HEADERS);
    next();
  };
}
