/**
 * Synthetic Ali-CCP-shaped data drawn from a known model. The true click and
 * purchase probabilities of every row are known, so the best achievable
 * (oracle) AUC of each task can be printed beside a trained model's AUC.
 *
 * The generative model:
 *
 * - Users (column 101) and items (205) come from 100,000 ids each, drawn with
 *   Zipf-like frequencies, so a few ids are frequent and most are rare.
 * - Each user has fixed profile fields: segment 121, group 122 (gender x age
 *   level), gender 124, age level 125, consumption level 126, shopping level
 *   127, occupation 128 and city level 129. Each item has a category 206, a
 *   brand 216 of that category, a shop 207 (for half of the items the
 *   brand's flagship shop) and an intention node 210, a subdivision of the
 *   category.
 * - Most users have a 14-day history of categories, brands, shops and
 *   intention nodes. Their top history values are 109_14, 127_14, 110_14 and
 *   150_14, and their activity levels are D109_14, D127_14, D110_14 and
 *   D150_14. History categories follow the user's taste plus a hidden offset,
 *   one of 8 per group. About a third of impressions show an item from the
 *   user's history categories or brands, as a recommender would.
 * - When the item's category, shop, brand or intention node is in the user's
 *   history, the combination columns 508, 509, 702 and 853 hold it and D508,
 *   D509, D702 and D853 hold the strength of that history entry. Otherwise
 *   both are 0.
 * - The click log-odds are a sum of effect groups. The largest are the
 *   category and frequent-brand biases, the history match, user activity,
 *   the scene of column 301 (a position bias) and profile effects. The
 *   history match grows with D508, twice as fast in scene 1, and adds a
 *   bonus for a node match. User activity adds the square root of D109_14
 *   and subtracts a penalty for D110_14 far from 0.5.
 * - Smaller click groups are a taste affinity, a price fit and per-id
 *   effects. The affinity is the dot product of a 2-d user taste, fixed by
 *   group 122 with a gender axis and an age axis, and a 2-d category vector.
 *   The price fit multiplies the category's price level by the consumption
 *   level 126. Per-id effects exist only for the few users, items, brands and
 *   shops expected in at least 0.2% of rows.
 * - The purchase-given-click log-odds share drivers with clicks: half the
 *   category bias, 0.8 of the brand bias, the scene, a little of the category
 *   match, a smaller affinity and a larger price fit. They add their own: a
 *   brand match (702, D702), a shop match (509, D509), a saturating effect of
 *   brand activity D127_14, and shopping level and age effects.
 * - The intercepts are fitted on a pilot sample so that about 9.5% of rows
 *   are clicked and 9% of clicks (or a rate the caller picks) are purchased.
 * - p_click is the click probability and p_purchase = p_click * P(buy | click)
 *   is the unconditional purchase probability. The labels are drawn from them.
 *
 * Most of the signal sits on small and medium vocabularies and on the dense
 * columns, so that an embedding model trained on about 140,000 rows can
 * learn most of it. Such models learn effects of rare ids and
 * sparse-by-sparse interactions poorly. Everything is a deterministic
 * function of the seed.
 */
import { createWriteStream } from "node:fs";
import { mkdir, rename, rm } from "node:fs/promises";
import { dirname } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";

import { auc } from "../../training/metrics.ts";

/** Sparse columns in Ali-CCP order. */
export const SPARSE_COLUMNS = [
  "101", "121", "122", "124", "125", "126", "127", "128", "129",
  "205", "206", "207", "210", "216", "508", "509", "702", "853", "301",
  "109_14", "110_14", "127_14", "150_14",
] as const;

/** Dense columns in Ali-CCP order, each in [0, 1]. */
export const DENSE_COLUMNS = [
  "D109_14", "D110_14", "D127_14", "D150_14", "D508", "D509", "D702", "D853",
] as const;

export type SparseColumn = (typeof SPARSE_COLUMNS)[number];
export type DenseColumn = (typeof DENSE_COLUMNS)[number];

/** The CSV header: labels, sparse columns, dense columns, true probabilities. */
export const CSV_COLUMNS: readonly string[] = [
  "click",
  "purchase",
  ...SPARSE_COLUMNS,
  ...DENSE_COLUMNS,
  "p_click",
  "p_purchase",
];

/** Effect groups that make up the click and purchase-given-click log-odds. */
export const EFFECT_GROUPS = [
  "affinity",
  "itemBias",
  "userProfile",
  "priceFit",
  "historyMatch",
  "activity",
  "position",
  "idEffects",
] as const;
export type EffectGroup = (typeof EFFECT_GROUPS)[number];

/** Log-odds contribution of each effect group, one value per row. */
export type LogitTerms = Record<EffectGroup, Float64Array>;

/** A block of generated rows in columnar form. */
export interface AliCcpRows {
  rows: number;
  click: Uint8Array;
  purchase: Uint8Array;
  /** Integer codes, 1-based. 0 means "none" in the combination and history columns. */
  sparse: Record<SparseColumn, Int32Array>;
  /** Values rounded to 4 decimals, as written to the CSV. */
  dense: Record<DenseColumn, Float64Array>;
  pClick: Float64Array;
  pPurchase: Float64Array;
  /** Log-odds by effect group, present only when requested with `withTerms`. */
  terms?: { click: LogitTerms; buy: LogitTerms; clickIntercept: number; buyIntercept: number };
}

export interface AliCcpSummary {
  rows: number;
  clicks: number;
  purchases: number;
  /** Clicks per row. */
  clickRate: number;
  /** Purchases per click. */
  purchaseRate: number;
  /** AUC of click against p_click and of purchase against p_purchase, over all rows. NaN when a class is missing. */
  oracleAuc: { ctr: number; cvr: number };
  /** Distinct values of each sparse column. */
  distinctValues: Record<SparseColumn, number>;
}

// Vocabulary sizes.
const USER_COUNT = 100_000;
const ITEM_COUNT = 100_000;
const CATEGORY_COUNT = 150;
const BRAND_COUNT = 3_000;
const SHOP_COUNT = 8_000;
const SEGMENT_COUNT = 97;
const GROUP_COUNT = 13;
const TASTE_DIM = 2;

// Zipf exponents: the weight of rank r (0-based) is (r + 1 + offset)^-exponent.
const USER_ZIPF = 1.0;
const ITEM_ZIPF = 1.0;
const SHOP_ZIPF = 0.8;
const CATEGORY_ZIPF = 0.9;
const BRAND_ZIPF = 1.4;
const SEGMENT_ZIPF = 0.7;

const AGE_SHARE = [0.05, 0.2, 0.3, 0.22, 0.13, 0.07, 0.03];
const CONSUMPTION_SHARE = [0.3, 0.5, 0.2];
const SHOPPING_LEVEL_SHARE = [0.15, 0.35, 0.5];
const CITY_SHARE = [0.25, 0.3, 0.3, 0.15];
const FEMALE_SHARE = 0.6;
const STUDENT_SHARE = 0.15;
const HISTORY_SHARE_BY_SHOPPING_LEVEL = [0.6, 0.75, 0.85];
const SCENE_SHARE = [0.5, 0.3, 0.2];

const MAX_HISTORY_CATEGORIES = 5;
/** Number of hidden taste offsets per group that steer history categories. */
const HIDDEN_TASTE_VARIANTS = 8;
const MAX_HISTORY_OTHERS = 3;
/** Share of impressions of users with a history that show an item from that history. */
const RECOMMENDED_SHARE = 0.35;
/** Share of those that come from a history brand rather than a history category. */
const BRAND_RECOMMENDED_SHARE = 0.4;

/**
 * Only ids expected in at least this share of rows (200 per 100,000) get a
 * per-id effect, because the training data has too few clicks of rarer ids to learn one.
 */
const FREQUENT_ID_SHARE = 2e-3;
const ID_EFFECT_SD = 0.3;

const CLICK_RATE_TARGET = 0.095;
/** Purchases per click, unless the generator is given another. */
export const DEFAULT_PURCHASE_RATE = 0.09;
const PILOT_ROWS = 20_000;

// Log-odds coefficients.
const CLICK_AFFINITY = 0.11;
const BUY_AFFINITY = 0.05;
const CATEGORY_CLICK_SD = 0.4;
const CLICK_PRICE_FIT = 0.1;
const BUY_PRICE_FIT = 0.15;
const SCENE_CLICK = [0.45, 0.0, -0.5];
const SCENE_BUY = [0.15, 0.0, -0.15];
const SHOPPING_LEVEL_CLICK = [-0.3, 0.0, 0.2];
const SHOPPING_LEVEL_BUY = [-0.25, 0.0, 0.2];
const CITY_CLICK = [0.15, 0.05, -0.05, -0.15];
const OCCUPATION_CLICK = [0.0, 0.12];
const SEGMENT_CLICK_SD = 0.2;
const AGE_SD = 0.12;

// ---------------------------------------------------------------------------
// Random numbers and sampling

/** Applies the murmur3 32-bit finalizer, a bijection on 32-bit integers. */
function mix32(value: number): number {
  let z = value >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** A small, fast PRNG (sfc32). Each (seed, stream) pair gives its own sequence. */
class Random {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  private spareNormal = Number.NaN;

  constructor(seed: number, stream: number) {
    const key = mix32(mix32(seed) + Math.imul(stream, 0x9e3779b9));
    this.a = mix32(key ^ 0x243f6a88);
    this.b = mix32(key ^ 0x85a308d3);
    this.c = mix32(key ^ 0x13198a2e);
    this.d = 1;
    for (let i = 0; i < 15; i++) this.uint32();
  }

  uint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Returns a uniform value in [0, 1). */
  uniform(): number {
    return this.uint32() / 4294967296;
  }

  /** Returns a uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /** Returns a standard normal value (Box-Muller, keeping the second value for the next call). */
  normal(): number {
    if (!Number.isNaN(this.spareNormal)) {
      const value = this.spareNormal;
      this.spareNormal = Number.NaN;
      return value;
    }
    const radius = Math.sqrt(-2 * Math.log(1 - this.uniform()));
    const angle = 2 * Math.PI * this.uniform();
    this.spareNormal = radius * Math.sin(angle);
    return radius * Math.cos(angle);
  }

  /** Returns the index of the share that a uniform draw falls in. The shares must sum to 1. */
  choose(shares: readonly number[]): number {
    let u = this.uniform();
    for (let i = 0; i < shares.length - 1; i++) {
      u -= shares[i];
      if (u < 0) return i;
    }
    return shares.length - 1;
  }
}

/**
 * Writes the cumulative weights of weights[start..end), normalised to end at
 * 1, into `out` at the same indexes. Segments of one array can hold the
 * distributions of different groups.
 */
function cumulative(
  weights: ArrayLike<number>,
  start = 0,
  end = weights.length,
  out: Float64Array = new Float64Array(weights.length),
): Float64Array {
  if (end <= start) return out;
  let total = 0;
  for (let i = start; i < end; i++) total += weights[i];
  let running = 0;
  for (let i = start; i < end; i++) {
    running += weights[i];
    out[i] = running / total;
  }
  out[end - 1] = 1;
  return out;
}

/** Returns the first index in [start, end) whose cumulative weight exceeds u (binary search). */
function sampleIndex(cdf: Float64Array, u: number, start = 0, end = cdf.length): number {
  let low = start;
  let high = end - 1;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (cdf[mid] > u) high = mid;
    else low = mid + 1;
  }
  return low;
}

function zipfWeights(count: number, exponent: number, offset: number): Float64Array {
  const weights = new Float64Array(count);
  for (let r = 0; r < count; r++) weights[r] = (r + 1 + offset) ** -exponent;
  return weights;
}

/** Returns each weight divided by the total: the expected share of rows. */
function shares(weights: Float64Array): Float64Array {
  const total = weights.reduce((sum, w) => sum + w, 0);
  return weights.map((w) => w / total);
}

function normals(count: number, sd: number, random: Random): Float64Array {
  const values = new Float64Array(count);
  for (let i = 0; i < count; i++) values[i] = sd * random.normal();
  return values;
}

/**
 * Shifts and scales values[offset], values[offset + stride], ... in place to a
 * weighted mean of 0 and a weighted standard deviation of `sd`, so that the
 * spread of an effect over rows does not change from seed to seed.
 */
function standardize(values: Float64Array, weights: Float64Array, sd: number, offset = 0, stride = 1): Float64Array {
  let total = 0;
  let sum = 0;
  for (let k = 0; k < weights.length; k++) {
    total += weights[k];
    sum += weights[k] * values[offset + k * stride];
  }
  const mean = sum / total;
  let squares = 0;
  for (let k = 0; k < weights.length; k++) squares += weights[k] * (values[offset + k * stride] - mean) ** 2;
  const scale = sd / Math.sqrt(squares / total);
  for (let k = 0; k < weights.length; k++) values[offset + k * stride] = (values[offset + k * stride] - mean) * scale;
  return values;
}

/** Draws a per-id effect for an id expected in `share` of rows, or returns 0 for a rarer id. */
function frequentIdEffect(share: number, random: Random): number {
  const effect = ID_EFFECT_SD * random.normal();
  return share >= FREQUENT_ID_SHARE ? effect : 0;
}

/** Returns a random permutation of the codes 1..count, so that codes do not reveal frequency ranks. */
function shuffledCodes(count: number, random: Random): Int32Array {
  const codes = new Int32Array(count);
  for (let i = 0; i < count; i++) codes[i] = i + 1;
  for (let i = count - 1; i > 0; i--) {
    const j = random.int(i + 1);
    const swap = codes[i];
    codes[i] = codes[j];
    codes[j] = swap;
  }
  return codes;
}

/** Rounds to 4 decimals, the precision of the dense columns in the CSV. */
function round4(value: number): number {
  return Math.round(value * 10_000) / 10_000;
}

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

// ---------------------------------------------------------------------------
// Catalog: categories, brands, shops, intention nodes and items

/**
 * Members of groups, stored by group: the members of group g are
 * members[start[g]..start[g + 1]), and `cdf` contains their cumulative
 * popularity within the group.
 */
interface Groups {
  start: Int32Array;
  members: Int32Array;
  cdf: Float64Array;
}

/** Groups members 0..n-1 by `groupOf`, keeping member order, with popularity `weight`. */
function groupMembers(groupOf: Int32Array, groupCount: number, weight: ArrayLike<number>): Groups {
  const start = new Int32Array(groupCount + 1);
  for (const g of groupOf) start[g + 1]++;
  for (let g = 0; g < groupCount; g++) start[g + 1] += start[g];
  const members = new Int32Array(groupOf.length);
  const fill = start.slice(0, groupCount);
  for (let i = 0; i < groupOf.length; i++) members[fill[groupOf[i]]++] = i;
  const memberWeight = new Float64Array(groupOf.length);
  for (let k = 0; k < groupOf.length; k++) memberWeight[k] = weight[members[k]];
  const cdf = new Float64Array(groupOf.length);
  for (let g = 0; g < groupCount; g++) cumulative(memberWeight, start[g], start[g + 1], cdf);
  return { start, members, cdf };
}

/** Draws a member of group g by popularity, or returns -1 when the group is empty. */
function drawMember(groups: Groups, g: number, random: Random): number {
  const start = groups.start[g];
  const end = groups.start[g + 1];
  if (end === start) return -1;
  return groups.members[sampleIndex(groups.cdf, random.uniform(), start, end)];
}

/** Catalog tables. Indexes are 0-based, and item indexes are popularity ranks. */
interface Catalog {
  categoryVector: Float64Array; // [CATEGORY_COUNT, TASTE_DIM]
  categoryClickBias: Float64Array;
  categoryBuyBias: Float64Array;
  /** Price level, weighted mean 0 and standard deviation 1. */
  categoryPrice: Float64Array;
  categoryBrands: Groups;
  categoryNodes: Groups;
  brandClickBias: Float64Array;
  brandBuyBias: Float64Array;
  shopClickBias: Float64Array;
  itemCdf: Float64Array;
  itemCategory: Int32Array;
  itemBrand: Int32Array;
  itemShop: Int32Array;
  itemNode: Int32Array;
  itemClickEffect: Float64Array;
  categoryItems: Groups;
  brandItems: Groups;
  codes: { category: Int32Array; brand: Int32Array; shop: Int32Array; node: Int32Array; item: Int32Array };
}

function buildCatalog(random: Random): Catalog {
  const categoryWeight = zipfWeights(CATEGORY_COUNT, CATEGORY_ZIPF, 3);
  const categoryShare = shares(categoryWeight);
  const categoryCdf = cumulative(categoryWeight);
  const categoryVector = normals(CATEGORY_COUNT * TASTE_DIM, 1, random);
  for (let d = 0; d < TASTE_DIM; d++) standardize(categoryVector, categoryWeight, 1, d, TASTE_DIM);
  const categoryClickBias = standardize(normals(CATEGORY_COUNT, 1, random), categoryWeight, CATEGORY_CLICK_SD);
  // Categories that get clicked also sell, plus a small purchase-only part.
  const categoryBuyBias = new Float64Array(CATEGORY_COUNT);
  for (let c = 0; c < CATEGORY_COUNT; c++) categoryBuyBias[c] = 0.5 * categoryClickBias[c] + 0.1 * random.normal();
  const categoryPrice = standardize(normals(CATEGORY_COUNT, 1, random), categoryWeight, 1);

  // Every category gets one brand and the rest go to categories by popularity.
  // Within a category, brand popularity is Zipf-like: the first brand leads.
  const brandCategory = new Int32Array(BRAND_COUNT);
  for (let b = 0; b < BRAND_COUNT; b++) {
    brandCategory[b] = b < CATEGORY_COUNT ? b : sampleIndex(categoryCdf, random.uniform());
  }
  const brandRankInCategory = new Int32Array(BRAND_COUNT);
  const brandsSoFar = new Int32Array(CATEGORY_COUNT);
  for (let b = 0; b < BRAND_COUNT; b++) brandRankInCategory[b] = brandsSoFar[brandCategory[b]]++;
  const brandWeight = Float64Array.from(brandRankInCategory, (rank) => (rank + 1) ** -BRAND_ZIPF);
  const categoryBrands = groupMembers(brandCategory, CATEGORY_COUNT, brandWeight);

  // Frequent brands have a click effect and 0.8 times that purchase effect.
  const brandClickBias = new Float64Array(BRAND_COUNT);
  const brandBuyBias = new Float64Array(BRAND_COUNT);
  for (let c = 0; c < CATEGORY_COUNT; c++) {
    const { start, members, cdf } = categoryBrands;
    for (let k = start[c]; k < start[c + 1]; k++) {
      const shareInCategory = cdf[k] - (k > start[c] ? cdf[k - 1] : 0);
      brandClickBias[members[k]] = frequentIdEffect(categoryShare[c] * shareInCategory, random);
      brandBuyBias[members[k]] = 0.8 * brandClickBias[members[k]];
    }
  }

  // Each category has 3 to 10 intention nodes, again with Zipf-like popularity.
  const nodeCategory: number[] = [];
  const nodeWeight: number[] = [];
  for (let c = 0; c < CATEGORY_COUNT; c++) {
    const count = 3 + random.int(8);
    for (let k = 0; k < count; k++) {
      nodeCategory.push(c);
      nodeWeight.push((k + 1) ** -0.8);
    }
  }
  const nodeCount = nodeCategory.length;
  const categoryNodes = groupMembers(Int32Array.from(nodeCategory), CATEGORY_COUNT, nodeWeight);

  const shopWeight = zipfWeights(SHOP_COUNT, SHOP_ZIPF, 2);
  const shopShare = shares(shopWeight);
  const shopCdf = cumulative(shopWeight);
  const shopClickBias = new Float64Array(SHOP_COUNT);
  for (let s = 0; s < SHOP_COUNT; s++) shopClickBias[s] = 0.5 * frequentIdEffect(shopShare[s], random);
  const brandShop = new Int32Array(BRAND_COUNT);
  for (let b = 0; b < BRAND_COUNT; b++) brandShop[b] = sampleIndex(shopCdf, random.uniform());

  const itemWeight = zipfWeights(ITEM_COUNT, ITEM_ZIPF, 2);
  const itemShare = shares(itemWeight);
  const itemCategory = new Int32Array(ITEM_COUNT);
  const itemBrand = new Int32Array(ITEM_COUNT);
  const itemShop = new Int32Array(ITEM_COUNT);
  const itemNode = new Int32Array(ITEM_COUNT);
  const itemClickEffect = new Float64Array(ITEM_COUNT);
  for (let i = 0; i < ITEM_COUNT; i++) {
    const c = sampleIndex(categoryCdf, random.uniform());
    itemCategory[i] = c;
    itemBrand[i] = drawMember(categoryBrands, c, random);
    // Half of a brand's items sell in its flagship shop.
    itemShop[i] = random.uniform() < 0.5 ? brandShop[itemBrand[i]] : sampleIndex(shopCdf, random.uniform());
    itemNode[i] = drawMember(categoryNodes, c, random);
    itemClickEffect[i] = frequentIdEffect(itemShare[i], random);
  }

  return {
    categoryVector,
    categoryClickBias,
    categoryBuyBias,
    categoryPrice,
    categoryBrands,
    categoryNodes,
    brandClickBias,
    brandBuyBias,
    shopClickBias,
    itemCdf: cumulative(itemWeight),
    itemCategory,
    itemBrand,
    itemShop,
    itemNode,
    itemClickEffect,
    categoryItems: groupMembers(itemCategory, CATEGORY_COUNT, itemWeight),
    brandItems: groupMembers(itemBrand, BRAND_COUNT, itemWeight),
    codes: {
      category: shuffledCodes(CATEGORY_COUNT, random),
      brand: shuffledCodes(BRAND_COUNT, random),
      shop: shuffledCodes(SHOP_COUNT, random),
      node: shuffledCodes(nodeCount, random),
      item: shuffledCodes(ITEM_COUNT, random),
    },
  };
}

// ---------------------------------------------------------------------------
// Population: user profiles and 14-day histories

/**
 * One field of every user's 14-day history (categories, brands, shops or
 * nodes): up to `slots` distinct (value, strength) entries per user, strongest
 * first. Strengths are in [0.02, 1], rounded to 4 decimals.
 */
class HistoryField {
  readonly count: Uint8Array;
  readonly values: Int32Array;
  readonly strengths: Float64Array;

  constructor(
    users: number,
    readonly slots: number,
  ) {
    this.count = new Uint8Array(users);
    this.values = new Int32Array(users * slots);
    this.strengths = new Float64Array(users * slots);
  }

  /** Returns the strength of `value` in the user's history, or 0 when it is absent. */
  strengthOf(user: number, value: number): number {
    const offset = user * this.slots;
    for (let k = 0; k < this.count[user]; k++) {
      if (this.values[offset + k] === value) return this.strengths[offset + k];
    }
    return 0;
  }

  /** Returns the user's strongest value, or -1 when the history is empty. */
  top(user: number): number {
    return this.count[user] > 0 ? this.values[user * this.slots] : -1;
  }

  /** Returns a uniformly chosen value of the user's history. The history must not be empty. */
  pick(user: number, random: Random): number {
    return this.values[user * this.slots + random.int(this.count[user])];
  }

  private has(offset: number, count: number, value: number): boolean {
    for (let k = 0; k < count; k++) if (this.values[offset + k] === value) return true;
    return false;
  }

  /**
   * Fills the user's history with up to `wanted` distinct values from `draw`,
   * giving up after 8 draws per wanted value, then sorts it by strength.
   */
  fill(user: number, wanted: number, draw: () => number, strength: (index: number) => number): void {
    const offset = user * this.slots;
    let count = 0;
    for (let tries = 0; tries < 8 * wanted && count < Math.min(wanted, this.slots); tries++) {
      const value = draw();
      if (value < 0 || this.has(offset, count, value)) continue;
      this.values[offset + count] = value;
      this.strengths[offset + count] = clipStrength(strength(count));
      count++;
    }
    this.count[user] = count;
    // Insertion sort by descending strength, because there are at most 5 slots.
    for (let i = offset + 1; i < offset + count; i++) {
      const value = this.values[i];
      const strength = this.strengths[i];
      let j = i - 1;
      for (; j >= offset && this.strengths[j] < strength; j--) {
        this.values[j + 1] = this.values[j];
        this.strengths[j + 1] = this.strengths[j];
      }
      this.values[j + 1] = value;
      this.strengths[j + 1] = strength;
    }
  }
}

/** Clips to [0.02, 1] and rounds to 4 decimals, so that a present entry never reads as 0. */
function clipStrength(value: number): number {
  return round4(Math.min(1, Math.max(0.02, value)));
}

/** User tables. Indexes are 0-based popularity ranks. */
interface Population {
  userCdf: Float64Array;
  userCode: Int32Array;
  segment: Uint8Array;
  group: Uint8Array;
  gender: Uint8Array;
  age: Uint8Array;
  consumption: Uint8Array;
  shoppingLevel: Uint8Array;
  occupation: Uint8Array;
  city: Uint8Array;
  /** [USER_COUNT, TASTE_DIM], fixed by group 122. */
  taste: Float64Array;
  profileClick: Float64Array;
  profileBuy: Float64Array;
  userClickEffect: Float64Array;
  categories: HistoryField;
  brands: HistoryField;
  shops: HistoryField;
  nodes: HistoryField;
  categoryActivity: Float64Array; // D109_14
  shopActivity: Float64Array; // D110_14
  brandActivity: Float64Array; // D127_14
  nodeActivity: Float64Array; // D150_14
}

function buildPopulation(catalog: Catalog, random: Random): Population {
  const n = USER_COUNT;
  const userWeight = zipfWeights(n, USER_ZIPF, 2);
  const userShare = shares(userWeight);
  const segmentCdf = cumulative(zipfWeights(SEGMENT_COUNT, SEGMENT_ZIPF, 2));
  const segmentClick = normals(SEGMENT_COUNT, SEGMENT_CLICK_SD, random);
  const ageClick = normals(AGE_SHARE.length, AGE_SD, random);
  const ageBuy = normals(AGE_SHARE.length, AGE_SD, random);

  // Groups 0-6 are women of age levels 0-6, groups 7-12 men of age levels 0-5
  // (age level 6 joins 5). Taste has a gender axis and an age axis, plus a
  // little group-specific noise.
  const groupTaste = new Float64Array(GROUP_COUNT * TASTE_DIM);
  for (let grp = 0; grp < GROUP_COUNT; grp++) {
    const female = grp < 7;
    const ageLevel = female ? grp : grp - 7;
    groupTaste[grp * TASTE_DIM] = (female ? 1 : -1) + 0.3 * random.normal();
    groupTaste[grp * TASTE_DIM + 1] = (ageLevel - 2.5) / 2.5 + 0.3 * random.normal();
  }

  const population: Population = {
    userCdf: cumulative(userWeight),
    userCode: new Int32Array(0),
    segment: new Uint8Array(n),
    group: new Uint8Array(n),
    gender: new Uint8Array(n),
    age: new Uint8Array(n),
    consumption: new Uint8Array(n),
    shoppingLevel: new Uint8Array(n),
    occupation: new Uint8Array(n),
    city: new Uint8Array(n),
    taste: new Float64Array(n * TASTE_DIM),
    profileClick: new Float64Array(n),
    profileBuy: new Float64Array(n),
    userClickEffect: new Float64Array(n),
    categories: new HistoryField(n, MAX_HISTORY_CATEGORIES),
    brands: new HistoryField(n, MAX_HISTORY_OTHERS),
    shops: new HistoryField(n, MAX_HISTORY_OTHERS),
    nodes: new HistoryField(n, MAX_HISTORY_OTHERS),
    categoryActivity: new Float64Array(n),
    shopActivity: new Float64Array(n),
    brandActivity: new Float64Array(n),
    nodeActivity: new Float64Array(n),
  };
  const p = population;
  const history = new HistoryDrawer(catalog, groupTaste, random);

  for (let u = 0; u < n; u++) {
    const female = random.uniform() < FEMALE_SHARE;
    const age = random.choose(AGE_SHARE);
    const group = female ? age : 7 + Math.min(age, 5);
    const segment = sampleIndex(segmentCdf, random.uniform());
    const level = random.choose(SHOPPING_LEVEL_SHARE);
    const occupation = random.uniform() < STUDENT_SHARE ? 1 : 0;
    const city = random.choose(CITY_SHARE);
    p.segment[u] = segment;
    p.group[u] = group;
    p.gender[u] = female ? 0 : 1;
    p.age[u] = age;
    p.consumption[u] = random.choose(CONSUMPTION_SHARE);
    p.shoppingLevel[u] = level;
    p.occupation[u] = occupation;
    p.city[u] = city;
    for (let d = 0; d < TASTE_DIM; d++) p.taste[u * TASTE_DIM + d] = groupTaste[group * TASTE_DIM + d];
    p.profileClick[u] =
      segmentClick[segment] + ageClick[age] + SHOPPING_LEVEL_CLICK[level] + CITY_CLICK[city] +
      OCCUPATION_CLICK[occupation];
    p.profileBuy[u] = ageBuy[age] + SHOPPING_LEVEL_BUY[level];
    p.userClickEffect[u] = frequentIdEffect(userShare[u], random);
    if (random.uniform() < HISTORY_SHARE_BY_SHOPPING_LEVEL[level]) history.draw(p, u);
  }
  p.userCode = shuffledCodes(n, random);
  return p;
}

/** Draws users' 14-day histories from the catalog. */
class HistoryDrawer {
  /**
   * Category distributions of history categories, one per (group, hidden
   * taste variant): [GROUP_COUNT * HIDDEN_TASTE_VARIANTS, CATEGORY_COUNT].
   */
  private readonly categoryCdfs: Float64Array;

  constructor(
    private readonly catalog: Catalog,
    groupTaste: Float64Array,
    private readonly random: Random,
  ) {
    // History categories follow popularity and a taste that adds a hidden
    // offset, one of a few per group, to the group's visible taste.
    const categoryWeight = zipfWeights(CATEGORY_COUNT, CATEGORY_ZIPF, 3);
    const score = new Float64Array(CATEGORY_COUNT);
    this.categoryCdfs = new Float64Array(GROUP_COUNT * HIDDEN_TASTE_VARIANTS * CATEGORY_COUNT);
    const taste = new Float64Array(TASTE_DIM);
    for (let variant = 0; variant < GROUP_COUNT * HIDDEN_TASTE_VARIANTS; variant++) {
      const group = Math.floor(variant / HIDDEN_TASTE_VARIANTS);
      for (let d = 0; d < TASTE_DIM; d++) taste[d] = groupTaste[group * TASTE_DIM + d] + 0.7 * random.normal();
      for (let c = 0; c < CATEGORY_COUNT; c++) {
        let dot = 0;
        for (let d = 0; d < TASTE_DIM; d++) dot += taste[d] * catalog.categoryVector[c * TASTE_DIM + d];
        score[c] = categoryWeight[c] * Math.exp(1.2 * dot);
      }
      const cdf = this.categoryCdfs.subarray(variant * CATEGORY_COUNT, (variant + 1) * CATEGORY_COUNT);
      cumulative(score, 0, CATEGORY_COUNT, cdf);
    }
  }

  draw(p: Population, u: number): void {
    const { catalog, random } = this;

    // Activity levels share a common base, so active users are active in every field.
    const base = random.uniform();
    const categoryActivity = clipStrength(base + 0.2 * random.normal());
    const shopActivity = clipStrength(base + 0.25 * random.normal());
    const brandActivity = clipStrength(base + 0.25 * random.normal());
    const nodeActivity = clipStrength(base + 0.25 * random.normal());
    p.categoryActivity[u] = categoryActivity;
    p.shopActivity[u] = shopActivity;
    p.brandActivity[u] = brandActivity;
    p.nodeActivity[u] = nodeActivity;

    const variant = p.group[u] * HIDDEN_TASTE_VARIANTS + random.int(HIDDEN_TASTE_VARIANTS);
    const cdfStart = variant * CATEGORY_COUNT;
    p.categories.fill(
      u,
      1 + Math.floor(categoryActivity * (MAX_HISTORY_CATEGORIES - 0.01)),
      () => sampleIndex(this.categoryCdfs, random.uniform(), cdfStart, cdfStart + CATEGORY_COUNT) - cdfStart,
      (index) => categoryActivity * 0.85 ** index * (0.7 + 0.3 * random.uniform()),
    );

    // Brands, shops and nodes come from the history categories. A history shop
    // is the shop of an item the user saw in one of them.
    const others = (activity: number): number => Math.floor(activity * (MAX_HISTORY_OTHERS + 0.99));
    const pickCategory = (): number => p.categories.pick(u, random);
    p.brands.fill(
      u,
      others(brandActivity),
      () => drawMember(catalog.categoryBrands, pickCategory(), random),
      () => brandActivity * (0.5 + 0.5 * random.uniform()),
    );
    p.shops.fill(
      u,
      others(shopActivity),
      () => {
        const item = drawMember(catalog.categoryItems, pickCategory(), random);
        return item < 0 ? -1 : catalog.itemShop[item];
      },
      () => shopActivity * (0.5 + 0.5 * random.uniform()),
    );
    p.nodes.fill(
      u,
      others(nodeActivity),
      () => drawMember(catalog.categoryNodes, pickCategory(), random),
      () => nodeActivity * (0.5 + 0.5 * random.uniform()),
    );
  }
}

// ---------------------------------------------------------------------------
// Rows

/** One impression: the user, the item and its attributes, the scene and the dense values. */
interface Impression {
  user: number;
  item: number;
  category: number;
  brand: number;
  shop: number;
  node: number;
  /** 0-based scene index. Column 301 contains scene + 1. */
  scene: number;
  categoryMatch: number; // D508
  shopMatch: number; // D509
  brandMatch: number; // D702
  nodeMatch: number; // D853
  categoryActivity: number; // D109_14
  shopActivity: number; // D110_14
  brandActivity: number; // D127_14
  nodeActivity: number; // D150_14
}

type EffectValues = Record<EffectGroup, number>;

function emptyEffects(): EffectValues {
  return {
    affinity: 0,
    itemBias: 0,
    userProfile: 0,
    priceFit: 0,
    historyMatch: 0,
    activity: 0,
    position: 0,
    idEffects: 0,
  };
}

/** Fills `out` with the click log-odds of each effect group, without the intercept. */
function clickEffects(x: Impression, catalog: Catalog, users: Population, out: EffectValues): void {
  out.affinity = CLICK_AFFINITY * tasteDot(x, catalog, users);
  out.itemBias =
    catalog.categoryClickBias[x.category] + catalog.brandClickBias[x.brand] + catalog.shopClickBias[x.shop];
  out.userProfile = users.profileClick[x.user];
  out.priceFit = CLICK_PRICE_FIT * priceFit(x, catalog, users);
  let historyMatch = 0;
  if (x.categoryMatch > 0) {
    // The category match matters twice as much in scene 1.
    const slope = x.scene === 0 ? 2.0 : 1.0;
    historyMatch += 0.3 + slope * x.categoryMatch;
  }
  if (x.nodeMatch > 0) historyMatch += 0.2 + 0.6 * x.nodeMatch;
  out.historyMatch = historyMatch;
  out.activity = 1.1 * Math.sqrt(x.categoryActivity) - 1.5 * (x.shopActivity - 0.5) ** 2;
  out.position = SCENE_CLICK[x.scene];
  out.idEffects = users.userClickEffect[x.user] + catalog.itemClickEffect[x.item];
}

/** Fills `out` with the purchase-given-click log-odds of each effect group, without the intercept. */
function buyEffects(x: Impression, catalog: Catalog, users: Population, out: EffectValues): void {
  out.affinity = BUY_AFFINITY * tasteDot(x, catalog, users);
  out.itemBias = catalog.categoryBuyBias[x.category] + catalog.brandBuyBias[x.brand];
  out.userProfile = users.profileBuy[x.user];
  out.priceFit = BUY_PRICE_FIT * priceFit(x, catalog, users);
  let historyMatch = 0.2 * x.categoryMatch;
  if (x.brandMatch > 0) historyMatch += 0.3 + 1.0 * x.brandMatch;
  if (x.shopMatch > 0) historyMatch += 0.2 + 0.6 * x.shopMatch;
  out.historyMatch = historyMatch;
  out.activity = 0.6 * (1 - Math.exp(-4 * x.brandActivity));
  out.position = SCENE_BUY[x.scene];
  out.idEffects = 0;
}

function tasteDot(x: Impression, catalog: Catalog, users: Population): number {
  let dot = 0;
  for (let d = 0; d < TASTE_DIM; d++) {
    dot += users.taste[x.user * TASTE_DIM + d] * catalog.categoryVector[x.category * TASTE_DIM + d];
  }
  return dot;
}

/** Returns the category's price level signed by consumption level: big spenders favour expensive categories. */
function priceFit(x: Impression, catalog: Catalog, users: Population): number {
  return catalog.categoryPrice[x.category] * (users.consumption[x.user] - 1);
}

function sumEffects(effects: EffectValues): number {
  let sum = 0;
  for (const group of EFFECT_GROUPS) sum += effects[group];
  return sum;
}

/** Draws the user, item and scene of an impression and looks up its history matches. */
function drawImpression(catalog: Catalog, users: Population, random: Random, x: Impression): void {
  const u = sampleIndex(users.userCdf, random.uniform());
  let item = -1;
  if (users.categories.count[u] > 0 && random.uniform() < RECOMMENDED_SHARE) {
    if (users.brands.count[u] > 0 && random.uniform() < BRAND_RECOMMENDED_SHARE) {
      item = drawMember(catalog.brandItems, users.brands.pick(u, random), random);
    } else {
      item = drawMember(catalog.categoryItems, users.categories.pick(u, random), random);
    }
  }
  if (item < 0) item = sampleIndex(catalog.itemCdf, random.uniform());

  x.user = u;
  x.item = item;
  x.category = catalog.itemCategory[item];
  x.brand = catalog.itemBrand[item];
  x.shop = catalog.itemShop[item];
  x.node = catalog.itemNode[item];
  x.scene = random.choose(SCENE_SHARE);
  x.categoryMatch = users.categories.strengthOf(u, x.category);
  x.shopMatch = users.shops.strengthOf(u, x.shop);
  x.brandMatch = users.brands.strengthOf(u, x.brand);
  x.nodeMatch = users.nodes.strengthOf(u, x.node);
  x.categoryActivity = users.categoryActivity[u];
  x.shopActivity = users.shopActivity[u];
  x.brandActivity = users.brandActivity[u];
  x.nodeActivity = users.nodeActivity[u];
}

/** Writes the impression's sparse codes and dense values into row r. */
function writeColumns(
  x: Impression,
  catalog: Catalog,
  users: Population,
  sparse: Record<SparseColumn, Int32Array>,
  dense: Record<DenseColumn, Float64Array>,
  r: number,
): void {
  const { codes } = catalog;
  const u = x.user;
  const codeOrNone = (table: Int32Array, index: number, present: boolean): number => (present ? table[index] : 0);

  sparse["101"][r] = users.userCode[u];
  sparse["121"][r] = users.segment[u] + 1;
  sparse["122"][r] = users.group[u] + 1;
  sparse["124"][r] = users.gender[u] + 1;
  sparse["125"][r] = users.age[u] + 1;
  sparse["126"][r] = users.consumption[u] + 1;
  sparse["127"][r] = users.shoppingLevel[u] + 1;
  sparse["128"][r] = users.occupation[u] + 1;
  sparse["129"][r] = users.city[u] + 1;

  sparse["205"][r] = codes.item[x.item];
  sparse["206"][r] = codes.category[x.category];
  sparse["207"][r] = codes.shop[x.shop];
  sparse["210"][r] = codes.node[x.node];
  sparse["216"][r] = codes.brand[x.brand];

  sparse["508"][r] = codeOrNone(codes.category, x.category, x.categoryMatch > 0);
  sparse["509"][r] = codeOrNone(codes.shop, x.shop, x.shopMatch > 0);
  sparse["702"][r] = codeOrNone(codes.brand, x.brand, x.brandMatch > 0);
  sparse["853"][r] = codeOrNone(codes.node, x.node, x.nodeMatch > 0);
  sparse["301"][r] = x.scene + 1;

  const topCategory = users.categories.top(u);
  const topShop = users.shops.top(u);
  const topBrand = users.brands.top(u);
  const topNode = users.nodes.top(u);
  sparse["109_14"][r] = codeOrNone(codes.category, topCategory, topCategory >= 0);
  sparse["110_14"][r] = codeOrNone(codes.shop, topShop, topShop >= 0);
  sparse["127_14"][r] = codeOrNone(codes.brand, topBrand, topBrand >= 0);
  sparse["150_14"][r] = codeOrNone(codes.node, topNode, topNode >= 0);

  dense.D109_14[r] = x.categoryActivity;
  dense.D110_14[r] = x.shopActivity;
  dense.D127_14[r] = x.brandActivity;
  dense.D150_14[r] = x.nodeActivity;
  dense.D508[r] = x.categoryMatch;
  dense.D509[r] = x.shopMatch;
  dense.D702[r] = x.brandMatch;
  dense.D853[r] = x.nodeMatch;
}

/** Features of a block of rows and their log-odds before the intercepts. */
interface DrawnFeatures {
  sparse: Record<SparseColumn, Int32Array>;
  dense: Record<DenseColumn, Float64Array>;
  clickLogit: Float64Array;
  buyLogit: Float64Array;
  clickTerms?: LogitTerms;
  buyTerms?: LogitTerms;
}

function emptyTerms(rows: number): LogitTerms {
  const terms = {} as LogitTerms;
  for (const group of EFFECT_GROUPS) terms[group] = new Float64Array(rows);
  return terms;
}

/** Draws `rows` impressions and computes their log-odds without intercepts. */
function drawFeatures(
  catalog: Catalog,
  users: Population,
  random: Random,
  rows: number,
  withTerms: boolean,
): DrawnFeatures {
  const sparse = {} as Record<SparseColumn, Int32Array>;
  for (const column of SPARSE_COLUMNS) sparse[column] = new Int32Array(rows);
  const dense = {} as Record<DenseColumn, Float64Array>;
  for (const column of DENSE_COLUMNS) dense[column] = new Float64Array(rows);
  const clickLogit = new Float64Array(rows);
  const buyLogit = new Float64Array(rows);
  const clickTerms = withTerms ? emptyTerms(rows) : undefined;
  const buyTerms = withTerms ? emptyTerms(rows) : undefined;

  const x: Impression = {
    user: 0, item: 0, category: 0, brand: 0, shop: 0, node: 0, scene: 0,
    categoryMatch: 0, shopMatch: 0, brandMatch: 0, nodeMatch: 0,
    categoryActivity: 0, shopActivity: 0, brandActivity: 0, nodeActivity: 0,
  };
  const click = emptyEffects();
  const buy = emptyEffects();
  for (let r = 0; r < rows; r++) {
    drawImpression(catalog, users, random, x);
    writeColumns(x, catalog, users, sparse, dense, r);
    clickEffects(x, catalog, users, click);
    buyEffects(x, catalog, users, buy);
    clickLogit[r] = sumEffects(click);
    buyLogit[r] = sumEffects(buy);
    if (clickTerms && buyTerms) {
      for (const group of EFFECT_GROUPS) {
        clickTerms[group][r] = click[group];
        buyTerms[group][r] = buy[group];
      }
    }
  }
  return { sparse, dense, clickLogit, buyLogit, clickTerms, buyTerms };
}

/**
 * Returns the intercept b for which the mean of sigmoid(b + logit), weighted
 * by `weights` when given, equals `target`. The mean grows with b, so
 * bisection finds it.
 */
function interceptForRate(logits: Float64Array, weights: Float64Array | undefined, target: number): number {
  let totalWeight = 0;
  for (let r = 0; r < logits.length; r++) totalWeight += weights ? weights[r] : 1;
  let low = -30;
  let high = 30;
  for (let iteration = 0; iteration < 60; iteration++) {
    const mid = (low + high) / 2;
    let mean = 0;
    for (let r = 0; r < logits.length; r++) mean += (weights ? weights[r] : 1) * sigmoid(mid + logits[r]);
    if (mean / totalWeight < target) low = mid;
    else high = mid;
  }
  return (low + high) / 2;
}

function checkSeed(seed: number): void {
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new RangeError(`seed must be an integer from 0 to 4294967295, got ${seed}`);
  }
}

function checkRowCount(name: string, rows: number, min: number): void {
  if (!Number.isSafeInteger(rows) || rows < min) {
    throw new RangeError(`${name} must be an integer of at least ${min}, got ${rows}`);
  }
}

export interface GeneratorOptions {
  /** Share of clicks that are purchased (default 0.09). */
  purchaseRate?: number;
}

/**
 * Draws rows for one seed. Features and labels come from separate seeded
 * streams that successive `next` calls continue, so the rows do not depend
 * on how they are split into blocks.
 */
export class AliCcpGenerator {
  /** Intercept of the click log-odds. */
  readonly clickIntercept: number;
  /** Intercept of the purchase-given-click log-odds. */
  readonly buyIntercept: number;
  private readonly catalog: Catalog;
  private readonly population: Population;
  private readonly featureRandom: Random;
  private readonly labelRandom: Random;

  /**
   * Builds the catalog and the users for `seed`, an integer from 0 to 2^32 - 1.
   * `purchaseRate`, between 0 and 1 exclusive, is the share of clicks that are
   * purchased. It moves only the purchase intercept: the features and the
   * clicks are the same at every rate.
   */
  constructor(
    readonly seed: number,
    options: GeneratorOptions = {},
  ) {
    checkSeed(seed);
    const purchaseRate = options.purchaseRate ?? DEFAULT_PURCHASE_RATE;
    if (!(purchaseRate > 0 && purchaseRate < 1)) {
      throw new RangeError(`purchaseRate must be a number between 0 and 1 exclusive, got ${purchaseRate}`);
    }
    const tables = new Random(seed, 1);
    this.catalog = buildCatalog(tables);
    this.population = buildPopulation(this.catalog, tables);
    this.featureRandom = new Random(seed, 2);
    this.labelRandom = new Random(seed, 3);

    // The tables shift the mean log-odds from seed to seed, so the intercepts
    // are fitted on a pilot sample from its own stream to hit the target rates.
    const pilot = drawFeatures(this.catalog, this.population, new Random(seed, 4), PILOT_ROWS, false);
    this.clickIntercept = interceptForRate(pilot.clickLogit, undefined, CLICK_RATE_TARGET);
    const pilotClick = pilot.clickLogit.map((logit) => sigmoid(this.clickIntercept + logit));
    this.buyIntercept = interceptForRate(pilot.buyLogit, pilotClick, purchaseRate);
  }

  /** Draws the next `rows` rows. With `withTerms`, also returns the log-odds of each effect group. */
  next(rows: number, options: { withTerms?: boolean } = {}): AliCcpRows {
    checkRowCount("rows", rows, 0);
    const features = drawFeatures(this.catalog, this.population, this.featureRandom, rows, options.withTerms ?? false);
    const click = new Uint8Array(rows);
    const purchase = new Uint8Array(rows);
    const pClick = new Float64Array(rows);
    const pPurchase = new Float64Array(rows);
    for (let r = 0; r < rows; r++) {
      const pc = sigmoid(this.clickIntercept + features.clickLogit[r]);
      const pb = sigmoid(this.buyIntercept + features.buyLogit[r]);
      pClick[r] = pc;
      pPurchase[r] = pc * pb;
      if (this.labelRandom.uniform() < pc) {
        click[r] = 1;
        if (this.labelRandom.uniform() < pb) purchase[r] = 1;
      }
    }

    const { sparse, dense } = features;
    const result: AliCcpRows = { rows, click, purchase, sparse, dense, pClick, pPurchase };
    if (features.clickTerms && features.buyTerms) {
      result.terms = {
        click: features.clickTerms,
        buy: features.buyTerms,
        clickIntercept: this.clickIntercept,
        buyIntercept: this.buyIntercept,
      };
    }
    return result;
  }
}

/** Generates `rows` rows from `seed` in memory. */
export function generateRows(
  rows: number,
  seed: number,
  options: GeneratorOptions & { withTerms?: boolean } = {},
): AliCcpRows {
  checkRowCount("rows", rows, 0);
  return new AliCcpGenerator(seed, options).next(rows, options);
}

// ---------------------------------------------------------------------------
// Summaries

/**
 * Computes the AUC of the true probabilities against labels drawn from them,
 * which is the AUC a model that knew the generating model would get on these
 * rows. Returns NaN when the labels hold only one class.
 */
export function oracleAuc(labels: ArrayLike<number>, probabilities: ArrayLike<number>): number {
  let positives = 0;
  for (let r = 0; r < labels.length; r++) if (labels[r] > 0.5) positives++;
  if (positives === 0 || positives === labels.length) return Number.NaN;
  return auc(labels, probabilities);
}

/** Counts the distinct values of integer columns; values must be non-negative. */
class DistinctCounter {
  private seen = new Uint8Array(1024);
  count = 0;

  add(values: Int32Array): void {
    for (const value of values) {
      if (value >= this.seen.length) {
        const grown = new Uint8Array(Math.max(value + 1, 2 * this.seen.length));
        grown.set(this.seen);
        this.seen = grown;
      }
      if (this.seen[value] === 0) {
        this.seen[value] = 1;
        this.count++;
      }
    }
  }
}

type Labels = Pick<AliCcpRows, "rows" | "click" | "purchase" | "pClick" | "pPurchase">;

function summarizeLabels(labels: Labels, distinctValues: Record<SparseColumn, number>): AliCcpSummary {
  let clicks = 0;
  let purchases = 0;
  for (let r = 0; r < labels.rows; r++) {
    clicks += labels.click[r];
    purchases += labels.purchase[r];
  }
  return {
    rows: labels.rows,
    clicks,
    purchases,
    clickRate: labels.rows > 0 ? clicks / labels.rows : 0,
    purchaseRate: clicks > 0 ? purchases / clicks : 0,
    oracleAuc: { ctr: oracleAuc(labels.click, labels.pClick), cvr: oracleAuc(labels.purchase, labels.pPurchase) },
    distinctValues,
  };
}

/** Summarises rows: label rates, oracle AUCs and distinct values per sparse column. */
export function summarize(rows: AliCcpRows): AliCcpSummary {
  const distinctValues = {} as Record<SparseColumn, number>;
  for (const column of SPARSE_COLUMNS) {
    const counter = new DistinctCounter();
    counter.add(rows.sparse[column]);
    distinctValues[column] = counter.count;
  }
  return summarizeLabels(rows, distinctValues);
}

/** Oracle AUCs of one probability model: click, purchase over all rows, purchase among clicked rows. */
export interface OracleAucs {
  ctr: number;
  cvr: number;
  buyGivenClick: number;
}

/**
 * Estimates how much of each task's oracle AUC comes from each effect group.
 * Returns the AUCs of the full model, and of the model with one group's
 * log-odds removed, against the same labels. Needs rows generated with
 * `withTerms`.
 */
export function effectBreakdown(rows: AliCcpRows): { full: OracleAucs; without: Record<EffectGroup, OracleAucs> } {
  const terms = rows.terms;
  if (!terms) throw new Error("effectBreakdown needs rows generated with { withTerms: true }");
  const aucsWithout = (removed: EffectGroup | undefined): OracleAucs => {
    const pClick = new Float64Array(rows.rows);
    const pPurchase = new Float64Array(rows.rows);
    const clickedLabels: number[] = [];
    const clickedScores: number[] = [];
    for (let r = 0; r < rows.rows; r++) {
      let clickLogit = terms.clickIntercept;
      let buyLogit = terms.buyIntercept;
      for (const group of EFFECT_GROUPS) {
        if (group === removed) continue;
        clickLogit += terms.click[group][r];
        buyLogit += terms.buy[group][r];
      }
      const pBuy = sigmoid(buyLogit);
      pClick[r] = sigmoid(clickLogit);
      pPurchase[r] = pClick[r] * pBuy;
      if (rows.click[r] === 1) {
        clickedLabels.push(rows.purchase[r]);
        clickedScores.push(pBuy);
      }
    }
    return {
      ctr: oracleAuc(rows.click, pClick),
      cvr: oracleAuc(rows.purchase, pPurchase),
      buyGivenClick: oracleAuc(clickedLabels, clickedScores),
    };
  };
  const without = {} as Record<EffectGroup, OracleAucs>;
  for (const group of EFFECT_GROUPS) without[group] = aucsWithout(group);
  return { full: aucsWithout(undefined), without };
}

// ---------------------------------------------------------------------------
// CSV output

export interface GenerateOptions extends GeneratorOptions {
  rows: number;
  seed: number;
  outPath: string;
  /** Rows generated and written per block (default 16,384). The output does not depend on it. */
  blockRows?: number;
}

/** Formats the rows of a block as CSV lines in CSV_COLUMNS order, each ending in a newline. */
export function formatCsvRows(block: AliCcpRows): string {
  const sparse = SPARSE_COLUMNS.map((column) => block.sparse[column]);
  const dense = DENSE_COLUMNS.map((column) => block.dense[column]);
  const lines = new Array<string>(block.rows);
  const fields = new Array<string>(CSV_COLUMNS.length);
  for (let r = 0; r < block.rows; r++) {
    let f = 0;
    fields[f++] = String(block.click[r]);
    fields[f++] = String(block.purchase[r]);
    for (const column of sparse) fields[f++] = String(column[r]);
    for (const column of dense) fields[f++] = String(column[r]);
    // Full precision, so that the probabilities read back are the ones the labels were drawn from.
    fields[f++] = String(block.pClick[r]);
    fields[f++] = String(block.pPurchase[r]);
    lines[r] = fields.join(",");
  }
  return lines.length > 0 ? lines.join("\n") + "\n" : "";
}

/**
 * Generates `rows` rows from `seed` and streams them as CSV to `outPath`, with
 * a header line. The file is written under a temporary name in the same
 * folder and renamed when complete, so `outPath` never contains a partial file.
 * Returns the summary of the written rows.
 */
export async function generateAliCcp(options: GenerateOptions): Promise<AliCcpSummary> {
  const { rows, seed, outPath } = options;
  const blockRows = options.blockRows ?? 16_384;
  checkRowCount("rows", rows, 0);
  checkRowCount("blockRows", blockRows, 1);
  const generator = new AliCcpGenerator(seed, options);

  // Only labels, probabilities and distinct values are kept for the summary.
  const labels: Labels = {
    rows,
    click: new Uint8Array(rows),
    purchase: new Uint8Array(rows),
    pClick: new Float64Array(rows),
    pPurchase: new Float64Array(rows),
  };
  const counters = SPARSE_COLUMNS.map(() => new DistinctCounter());
  async function* csvChunks(): AsyncGenerator<string> {
    yield CSV_COLUMNS.join(",") + "\n";
    for (let done = 0; done < rows; done += blockRows) {
      const block = generator.next(Math.min(blockRows, rows - done));
      labels.click.set(block.click, done);
      labels.purchase.set(block.purchase, done);
      labels.pClick.set(block.pClick, done);
      labels.pPurchase.set(block.pPurchase, done);
      SPARSE_COLUMNS.forEach((column, k) => counters[k].add(block.sparse[column]));
      yield formatCsvRows(block);
    }
  }

  await mkdir(dirname(outPath), { recursive: true });
  const tempPath = `${outPath}.${process.pid}.tmp`;
  try {
    await pipeline(Readable.from(csvChunks()), createWriteStream(tempPath));
    await rename(tempPath, outPath);
  } catch (error) {
    await rm(tempPath, { force: true });
    throw error;
  }

  const distinctValues = {} as Record<SparseColumn, number>;
  SPARSE_COLUMNS.forEach((column, k) => (distinctValues[column] = counters[k].count));
  return summarizeLabels(labels, distinctValues);
}
