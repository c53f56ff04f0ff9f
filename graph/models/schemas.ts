/**
 * The config-file options of each model kind, as zod schemas that reject
 * unknown keys, so a misspelt option fails validation instead of falling back
 * to a default. Features and task types come from the config's features and
 * labels, not from these options.
 */
import { z } from "zod";
import { ACTIVATIONS, type Activation } from "../layers/mlp.js";

const mlpSchema = z
  .object({
    dims: z.array(z.number().int().positive()).min(1),
    dropout: z.number().min(0).lt(1).optional(),
    activation: z.enum(ACTIVATIONS as [Activation, ...Activation[]]).optional(),
  })
  .strict();

const towersSchema = z.array(mlpSchema).min(1).describe("one tower per task, in label order");

export const MODEL_SCHEMAS = {
  ple: z
    .object({
      kind: z.literal("ple"),
      nLevel: z.number().int().positive(),
      nExpertSpecific: z.number().int().min(0),
      nExpertShared: z.number().int().min(0),
      expertParams: mlpSchema,
      towerParamsList: towersSchema,
    })
    .strict(),
  mmoe: z
    .object({ kind: z.literal("mmoe"), nExpert: z.number().int().positive(), expertParams: mlpSchema, towerParamsList: towersSchema })
    .strict(),
  "shared-bottom": z.object({ kind: z.literal("shared-bottom"), bottomParams: mlpSchema, towerParamsList: towersSchema }).strict(),
  esmm: z
    .object({
      kind: z.literal("esmm"),
      userFeatures: z.array(z.string()).min(1),
      itemFeatures: z.array(z.string()).min(1),
      cvrParams: mlpSchema,
      ctrParams: mlpSchema,
    })
    .strict()
    .describe("tasks, in label order: cvr, ctr, ctcvr; ctr and ctcvr train"),
};

/** Options of any model kind, distinguished by `kind`. */
export const modelOptionsSchema = z.discriminatedUnion("kind", [
  MODEL_SCHEMAS.ple,
  MODEL_SCHEMAS.mmoe,
  MODEL_SCHEMAS["shared-bottom"],
  MODEL_SCHEMAS.esmm,
]);

export type ModelOptions = z.infer<typeof modelOptionsSchema>;

/** Returns the number of tasks a kind's options imply, or undefined where the labels decide it. */
export function taskCountOf(options: ModelOptions): number | undefined {
  if (options.kind === "esmm") return 3;
  return options.towerParamsList.length;
}
