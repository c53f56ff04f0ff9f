import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ModelRepository, createApp, silentLogger } from "../../serving/app.js";
import { trainTinyModel } from "../fixtures/aliccp.js";
import { type Row, addVersion, emptyRepository, sampleRows } from "./helpers.js";

let repository: ModelRepository;
let rows: Row[];
let app: ReturnType<typeof createApp>;

beforeAll(async () => {
  const { modelDir } = await trainTinyModel();
  const root = await emptyRepository();
  await addVersion(root, "ple", 1, modelDir);
  repository = await ModelRepository.open(root);
  rows = sampleRows();
  app = createApp(repository, { logger: silentLogger });
});

afterAll(async () => {
  await repository?.close();
});

describe("non-finite scores", () => {
  it("are rejected with the row, not returned as null", async () => {
    // A large enough dense value overflows a trained network to NaN; here the session's output is made NaN for row 1.
    const model = repository.get("ple")! as unknown as { session: { run: (...args: unknown[]) => Promise<Record<string, { data: Float32Array }>> } };
    const original = model.session.run.bind(model.session);
    model.session.run = async (...args: unknown[]) => {
      const outputs = await original(...args);
      outputs.cvr.data[1] = Number.NaN;
      return outputs;
    };
    const huge: Row = { ...rows[0], D109_14: 3e38 };
    const res = await request(app).post("/v1/models/ple:predict").send({ instances: [rows[1], huge] });
    model.session.run = original;
    expect(res.status).toBe(400);
    expect(res.body.error).toMatch(/^row 1: the model gives a non-finite cvr score \(NaN\)/);
    expect(res.body.error).toMatch(/largest dense value is 3\.0000000054977558e\+38/);
  });

  it("leave ordinary rows alone", async () => {
    const res = await request(app).post("/v1/models/ple:predict").send({ instances: rows.slice(0, 3) });
    expect(res.status).toBe(200);
    for (const prediction of res.body.predictions) {
      expect(Number.isFinite(prediction.ctr)).toBe(true);
      expect(Number.isFinite(prediction.cvr)).toBe(true);
    }
  });
});
