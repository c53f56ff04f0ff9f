/** Finding the model version that a URL names, for the V1 and V2 routes. */
import type { Request, Response } from "express";
import { HttpError, locals } from "./http.js";
import type { LoadedModel } from "./model.js";
import type { ModelRepository } from "./repository.js";

const VERSION_TEXT = /^[1-9][0-9]*$/;

/** Reads a version from a URL parameter. Throws `HttpError` 400 unless it is a positive integer. */
export function parseVersion(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const version = Number(text);
  if (!VERSION_TEXT.test(text) || !Number.isSafeInteger(version)) {
    throw new HttpError(400, `invalid version ${JSON.stringify(text)} in the URL: expected a positive integer`);
  }
  return version;
}

/**
 * Returns the model version named by `name` and `version` (the highest
 * version when omitted). Throws `HttpError` 503 for a version that failed to
 * load (or a model none of whose versions loaded), and 404 for an unknown
 * model or a version that is not there.
 */
export function findModel(repository: ModelRepository, name: string, version: number | undefined): LoadedModel {
  const model = repository.get(name, version);
  if (model !== undefined) return model;
  const names = repository.names;
  const failure = repository.loadFailure(name, version);
  if (failure !== undefined) {
    const loaded = repository.versions(name);
    const others = loaded.length === 0 ? "no version of it is loaded" : `the loaded versions are ${loaded.join(", ")}`;
    throw new HttpError(
      503,
      `version ${failure.version} of model ${JSON.stringify(name)} failed to load; ${others}. ` +
        "The server's log has the error; fix or replace the version's files, and the server retries when they change",
    );
  }
  if (!names.includes(name)) {
    const served = names.length === 0 ? "no model" : names.map((served) => JSON.stringify(served)).join(", ");
    throw new HttpError(404, `model ${JSON.stringify(name)} not found; this server serves ${served}`);
  }
  throw new HttpError(
    404,
    `version ${version} of model ${JSON.stringify(name)} not found; the loaded versions are ${repository.versions(name).join(", ")}`,
  );
}

/**
 * Returns the model name from the URL, or for routes without one (POST
 * /predict) the only model served. Throws `HttpError` 400 when the server
 * serves several models and the URL names none.
 */
export function modelName(repository: ModelRepository, req: Request): string {
  const name = param(req, "name");
  if (name !== undefined) return name;
  const names = repository.names;
  if (names.length === 1) return names[0];
  if (names.length === 0) throw new HttpError(404, "no model is loaded");
  throw new HttpError(
    400,
    `this server serves ${names.length} models (${names.join(", ")}); name one in the URL, as in /v1/models/<name>:predict`,
  );
}

/**
 * Finds the model version named by the request's URL and records it for the
 * request's log line and metrics. A reload swaps the served set first and
 * releases the versions that left afterwards, so a version found here and
 * given its request in the same tick (with no await in between) has not
 * been released by a reload.
 */
export function requestModel(repository: ModelRepository, req: Request, res: Response): LoadedModel {
  const name = modelName(repository, req);
  // A known name labels the request's metrics even when the version is missing; an unknown one would add a series per URL.
  if (repository.get(name) !== undefined) locals(res).model = name;
  const model = findModel(repository, name, parseVersion(param(req, "version")));
  locals(res).model = model.name;
  locals(res).version = model.version;
  return model;
}

/** Returns a named route parameter; the routes here have no wildcard parameters, which would be arrays. */
function param(req: Request, key: string): string | undefined {
  const value: unknown = req.params[key];
  return typeof value === "string" ? value : undefined;
}
