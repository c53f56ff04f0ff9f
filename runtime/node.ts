/**
 * The one module of onnxrec that imports onnxruntime-node. It creates
 * sessions with onnxrec's defaults and runs them with feed checks and errors
 * that name the inputs, so a failing run names what it was given.
 */
import * as ort from "onnxruntime-node";
import type { TensorData } from "../graph/types.js";

export { ort };

export interface SessionOptions {
  /**
   * Let idle intra-op threads spin while they wait for work, onnxruntime's own
   * default. Default false: on a 2-core machine shared with the JavaScript
   * thread or other processes, spinning threads starve the ones with work (a
   * PLE step took 473 ms with spinning and 312 ms without, under load).
   */
  spinning?: boolean;
  /** Intra-op threads; 2 ran 1.55x faster than 1 for a PLE step on a 2-core machine. */
  threads?: number;
}

export type Feeds = Record<string, ort.Tensor>;

export class Session {
  private constructor(
    readonly inner: ort.InferenceSession,
    readonly label: string,
  ) {}

  static async create(model: Uint8Array | string, label: string, options: SessionOptions = {}): Promise<Session> {
    const sessionOptions: ort.InferenceSession.SessionOptions = {
      intraOpNumThreads: options.threads ?? 2,
      interOpNumThreads: 1,
      graphOptimizationLevel: "all",
      logSeverityLevel: 3,
      extra: { session: { intra_op: { allow_spinning: options.spinning === true ? "1" : "0" } } },
    };
    try {
      const inner =
        typeof model === "string"
          ? await ort.InferenceSession.create(model, sessionOptions)
          : await ort.InferenceSession.create(model, sessionOptions);
      return new Session(inner, label);
    } catch (error) {
      throw new Error(`${label}: onnxruntime could not load the model: ${(error as Error).message}`);
    }
  }

  get inputNames(): readonly string[] {
    return this.inner.inputNames;
  }

  get outputNames(): readonly string[] {
    return this.inner.outputNames;
  }

  /** Runs the session; every missing input is reported at once, and extra inputs are rejected. */
  async run(feeds: Feeds, outputs?: string[]): Promise<Record<string, ort.Tensor>> {
    const missing = this.inner.inputNames.filter((name) => !(name in feeds));
    const extra = Object.keys(feeds).filter((name) => !this.inner.inputNames.includes(name));
    if (missing.length > 0 || extra.length > 0) {
      throw new Error(
        `${this.label}: feeds do not match the model's inputs` +
          (missing.length ? `; missing: ${missing.join(", ")}` : "") +
          (extra.length ? `; unexpected: ${extra.join(", ")}` : ""),
      );
    }
    try {
      return outputs ? await this.inner.run(feeds, outputs) : await this.inner.run(feeds);
    } catch (error) {
      const described = Object.entries(feeds)
        .map(([name, t]) => `${name}: ${t.type}[${t.dims.join(", ")}]`)
        .join("; ");
      throw new Error(`${this.label}: onnxruntime run failed: ${(error as Error).message}\n  inputs: ${described}`);
    }
  }

  async release(): Promise<void> {
    await this.inner.release();
  }
}

const ORT_TYPE = {
  Float32Array: "float32",
  Float64Array: "float64",
  Int32Array: "int32",
  BigInt64Array: "int64",
  Uint8Array: "bool",
} as const;

/** Wraps a typed array as an onnxruntime tensor without copying it. */
export function tensor(data: TensorData, dims: readonly number[]): ort.Tensor {
  const type = ORT_TYPE[data.constructor.name as keyof typeof ORT_TYPE];
  return new ort.Tensor(type, data as never, dims);
}
