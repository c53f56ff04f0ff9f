/**
 * Synthetic Ali-CCP-shaped data drawn from a known model, so the true click
 * and purchase probabilities of every row are known and the best achievable
 * (oracle) AUC of each task can be printed beside a trained model's AUC.
 *
 * The generative model:
 *
 * - Users (column 101, 100,000 ids) and items (205, 100,000 ids) are drawn
 *   with Zipf-like frequencies, so a few ids are frequent and most are rare.
 * - Each user has fixed profile fields: gender 124, age 125, group 122
 *   (gender x age), segment 121, consumption level 126, shopping level 127,
 *   occupation 128 and city level 129. Each item has a category 206, a brand
 *   216 from that category, a shop 207 and an intention node 210 (a
 *   subdivision of the category).
 * - A user's taste is a 3-d vector fixed by group 122 and segment 121, and
 *   each category has a 3-d vector. Their dot product is the user-segment x
 *   category affinity, the largest driver of clicks.
 * - Most users have a 14-day history: categories, brands, shops and intention
 *   nodes they engaged with, chosen by their taste plus a hidden per-user
 *   component. The top history value of each field is written to 109_14,
 *   127_14, 110_14 and 150_14, and the user's activity levels to D109_14,
 *   D127_14, D110_14 and D150_14. About a third of impressions come from the
 *   user's history categories, as a recommender would show them.
 * - When the shown item's category, shop, brand or node is in the user's
 *   history, the combination columns 508, 509, 702 and 853 hold that value
 *   and D508, D509, D702 and D853 hold the strength of the match. Otherwise
 *   both are 0.
 * - Click log-odds add: the affinity; category, brand and shop biases; profile
 *   effects (segment, age, shopping level, city, occupation); a category
 *   match bonus that grows with D508 and is larger in scene 1 of 301; a node
 *   match bonus; nonlinear effects of activity (the square root of D109_14, a
 *   penalty for D110_14 far from 0.5); a position bias by scene 301; and small
 *   per-id effects, only for the 500 most frequent users and items.
 * - Purchase after a click has log-odds that share part of the affinity and
 *   the scene effect with clicks and add their own drivers: a brand match
 *   (702, D702), a shop match (509, D509), a saturating effect of brand
 *   loyalty D127_14, brand trust, a category bias, shopping level, and an
 *   interaction of the user's consumption level 126 with the category's price
 *   level (big spenders favour expensive categories).
 * - p_click is the click probability and p_purchase = p_click * P(buy | click)
 *   is the unconditional purchase probability. The labels are drawn from them.
 *
 * Everything is a deterministic function of the seed.
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

/** Effect groups of the click and purchase log-odds, for measuring where the signal is. */
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

/** Log-odds contributions of each effect group, one value per row. */
export type LogitTerms = Record<EffectGroup, Float64Array>;

/** A block of generated rows in columnar form. */
export interface AliCcpRows {
  rows: number;
  click: Uint8Array;
  purchase: Uint8Array;
  /** Integer codes. 0 means "none" in the history and combination columns. */
  sparse: Record<SparseColumn, Int32Array>;
  /** Values rounded to 4 decimals, as written to the CSV. */
  dense: Record<DenseColumn, Float64Array>;
  pClick: Float64Array;
  pPurchase: Float64Array;
  /** Present only when requested with `withTerms`. */
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
  /** AUC of the true probabilities: click vs p_click, purchase vs p_purchase, over all rows. */
  oracleAuc: { ctr: number; cvr: number };
  /** Distinct values of each sparse column. */
  distinctValues: Record<SparseColumn, number>;
}

// Vocabulary sizes of the generated entities.
const USER_COUNT = 100_000;
const ITEM_COUNT = 100_000;
const CATEGORY_COUNT = 150;
const BRAND_COUNT = 3_000;
const SHOP_COUNT = 8_000;
const SEGMENT_COUNT = 97;
const GROUP_COUNT = 13;
const TASTE_DIM = 3;

// Zipf exponents: weight of the id of rank r is proportional to (r + offset)^-exponent.
const USER_ZIPF = 1.0;
const ITEM_ZIPF = 1.0;
const SHOP_ZIPF = 0.8;
const CATEGORY_ZIPF = 0.9;

/** Only the most frequent users and items get a per-id effect, so rare ids carry no signal. */
const FREQUENT_ID_RANKS = 500;
const MAX_HISTORY_CATEGORIES = 5;
const MAX_HISTORY_OTHERS = 3;
/** Share of impressions drawn from the user's history categories. */
const RECOMMENDED_SHARE = 0.35;

// Log-odds coefficients.
const CLICK_INTERCEPT = -3.05;
const BUY_INTERCEPT = -3.2;
const CLICK_AFFINITY = 0.45;
const BUY_AFFINITY = 0.25;
const SCENE_CLICK = [0.45, 0.0, -0.5];
const SCENE_BUY = [0.15, 0.0, -0.15];
const SCENE_SHARE = [0.5, 0.3, 0.2];
const SHOPPING_LEVEL_CLICK = [-0.3, 0.0, 0.2];
const SHOPPING_LEVEL_BUY = [-0.25, 0.0, 0.2];
const CITY_CLICK = [0.15, 0.05, -0.05, -0.15];
const OCCUPATION_CLICK = [0.0, 0.12];

/** A small fast PRNG (sfc32) seeded through splitmix32. */
class Random {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  private spareNormal = Number.NaN;

  constructor(seed: number, stream: number) {
    let state = (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(stream + 1, 0x85ebca6b)) >>> 0;
    const next = (): number => {
      state = (state + 0x9e3779b9) >>> 0;
      let z = state;
      z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
      z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
      return (z ^ (z >>> 15)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
    for (let i = 0; i < 12; i++) this.uint32();
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

  /** Returns a standard normal value (Box-Muller, caching the second value). */
  normal(): number {
    if (!Number.isNaN(this.spareNormal)) {
      const value = this.spareNormal;
      this.spareNormal = Number.NaN;
      return value;
    }
    const u = 1 - this.uniform();
    const v = this.uniform();
    const radius = Math.sqrt(-2 * Math.log(u));
    this.spareNormal = radius * Math.sin(2 * Math.PI * v);
    return radius * Math.cos(2 * Math.PI * v);
  }

  /** Shuffles the array in place (Fisher-Yates). */
  shuffle(values: Int32Array): void {
    for (let i = values.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const swap = values[i];
      values[i] = values[j];
      values[j] = swap;
    }
  }
}

/** Cumulative weights over one or more segments, each normalised to end at 1. */
function cumulative(weights: ArrayLike<number>, start = 0, end = weights.length, out?: Float64Array): Float64Array {
  const cdf = out ?? new Float64Array(weights.length);
  if (end <= start) return cdf;
  let total = 0;
  for (let i = start; i < end; i++) total += weights[i];
  let running = 0;
  for (let i = start; i < end; i++) {
    running += weights[i];
    cdf[i] = running / total;
  }
  cdf[end - 1] = 1;
  return cdf;
}

/** Returns the first index in [start, end) whose cumulative weight exceeds u. */
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

/** Returns a random permutation of the codes 1..count, so that codes do not reveal frequency ranks. */
function shuffledCodes(count: number, random: Random): Int32Array {
  const codes = new Int32Array(count);
  for (let i = 0; i < count; i++) codes[i] = i + 1;
  random.shuffle(codes);
  return codes;
}

function normals(count: number, scale: number, random: Random): Float64Array {
  const values = new Float64Array(count);
  for (let i = 0; i < count; i++) values[i] = scale * random.normal();
  return values;
}

function drawFrom(shares: readonly number[], random: Random): number {
  let u = random.uniform();
  for (let i = 0; i < shares.length - 1; i++) {
    u -= shares[i];
    if (u < 0) return i;
  }
  return shares.length - 1;
}

/** Rounds to 4 decimals, the precision of the dense columns in the CSV. */
function round4(value: number): number {
  return Math.round(value * 10_000) / 10_000;
}

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

/** Category, brand, shop, node and item tables. Indexes are 0-based; written codes are 1-based. */
interface Catalog {
  categoryVector: Float64Array; // [CATEGORY_COUNT, TASTE_DIM]
  categoryClickBias: Float64Array;
  categoryBuyBias: Float64Array;
  categoryPrice: Float64Array;
  categoryBrandStart: Int32Array; // brands of category c: categoryBrands[start[c]..start[c+1])
  categoryBrands: Int32Array;
  categoryBrandCdf: Float64Array;
  categoryNodeStart: Int32Array; // nodes of category c are the indexes start[c]..start[c+1]
  categoryNodeCdf: Float64Array;
  nodeCount: number;
  brandClickBias: Float64Array;
  brandBuyBias: Float64Array;
  shopClickBias: Float64Array;
  shopCdf: Float64Array;
  itemCdf: Float64Array; // by item index, which is also the frequency rank
  itemCategory: Int32Array;
  itemBrand: Int32Array;
  itemShop: Int32Array;
  itemNode: Int32Array;
  itemClickEffect: Float64Array;
  categoryItemStart: Int32Array; // items of category c: categoryItems[start[c]..start[c+1])
  categoryItems: Int32Array;
  categoryItemCdf: Float64Array;
  codes: { category: Int32Array; brand: Int32Array; shop: Int32Array; node: Int32Array; item: Int32Array };
}

function buildCatalog(random: Random): Catalog {
  const categoryWeight = zipfWeights(CATEGORY_COUNT, CATEGORY_ZIPF, 3);
  const categoryCdf = cumulative(categoryWeight);
  const categoryVector = normals(CATEGORY_COUNT * TASTE_DIM, 1, random);
  const categoryClickBias = normals(CATEGORY_COUNT, 0.3, random);
  const categoryBuyBias = normals(CATEGORY_COUNT, 0.2, random);
  const categoryPrice = normals(CATEGORY_COUNT, 1, random);

  // Every category gets one brand; the rest go to categories by popularity.
  const brandCategory = new Int32Array(BRAND_COUNT);
  for (let b = 0; b < BRAND_COUNT; b++) {
    brandCategory[b] = b < CATEGORY_COUNT ? b : sampleIndex(categoryCdf, random.uniform());
  }
  const categoryBrandStart = new Int32Array(CATEGORY_COUNT + 1);
  for (let b = 0; b < BRAND_COUNT; b++) categoryBrandStart[brandCategory[b] + 1]++;
  for (let c = 0; c < CATEGORY_COUNT; c++) categoryBrandStart[c + 1] += categoryBrandStart[c];
  const categoryBrands = new Int32Array(BRAND_COUNT);
  const fill = categoryBrandStart.slice(0, CATEGORY_COUNT);
  for (let b = 0; b < BRAND_COUNT; b++) categoryBrands[fill[brandCategory[b]]++] = b;
  // Within a category, brand popularity is Zipf-like too.
  const brandWeights = new Float64Array(BRAND_COUNT);
  const categoryBrandCdf = new Float64Array(BRAND_COUNT);
  for (let c = 0; c < CATEGORY_COUNT; c++) {
    const start = categoryBrandStart[c];
    const end = categoryBrandStart[c + 1];
    for (let k = start; k < end; k++) brandWeights[k] = (k - start + 1) ** -1.1;
    cumulative(brandWeights, start, end, categoryBrandCdf);
  }

  // Intention nodes subdivide categories: 3 to 10 nodes each.
  const categoryNodeStart = new Int32Array(CATEGORY_COUNT + 1);
  for (let c = 0; c < CATEGORY_COUNT; c++) categoryNodeStart[c + 1] = categoryNodeStart[c] + 3 + random.int(8);
  const nodeCount = categoryNodeStart[CATEGORY_COUNT];
  const nodeWeights = new Float64Array(nodeCount);
  const categoryNodeCdf = new Float64Array(nodeCount);
  for (let c = 0; c < CATEGORY_COUNT; c++) {
    const start = categoryNodeStart[c];
    const end = categoryNodeStart[c + 1];
    for (let k = start; k < end; k++) nodeWeights[k] = (k - start + 1) ** -0.8;
    cumulative(nodeWeights, start, end, categoryNodeCdf);
  }

  const brandClickBias = normals(BRAND_COUNT, 0.25, random);
  const brandBuyBias = normals(BRAND_COUNT, 0.35, random);
  const shopClickBias = normals(SHOP_COUNT, 0.1, random);
  const shopCdf = cumulative(zipfWeights(SHOP_COUNT, SHOP_ZIPF, 2));

  const itemWeight = zipfWeights(ITEM_COUNT, ITEM_ZIPF, 2);
  const itemCdf = cumulative(itemWeight);
  const itemCategory = new Int32Array(ITEM_COUNT);
  const itemBrand = new Int32Array(ITEM_COUNT);
  const itemShop = new Int32Array(ITEM_COUNT);
  const itemNode = new Int32Array(ITEM_COUNT);
  const itemClickEffect = new Float64Array(ITEM_COUNT);
  for (let i = 0; i < ITEM_COUNT; i++) {
    const c = sampleIndex(categoryCdf, random.uniform());
    itemCategory[i] = c;
    itemBrand[i] = categoryBrands[sampleIndex(categoryBrandCdf, random.uniform(), categoryBrandStart[c], categoryBrandStart[c + 1])];
    itemShop[i] = sampleIndex(shopCdf, random.uniform());
    itemNode[i] = sampleIndex(categoryNodeCdf, random.uniform(), categoryNodeStart[c], categoryNodeStart[c + 1]);
    if (i < FREQUENT_ID_RANKS) itemClickEffect[i] = 0.3 * random.normal();
  }

  // Items grouped by category, in rank order, for drawing an item of a given category.
  const categoryItemStart = new Int32Array(CATEGORY_COUNT + 1);
  for (let i = 0; i < ITEM_COUNT; i++) categoryItemStart[itemCategory[i] + 1]++;
  for (let c = 0; c < CATEGORY_COUNT; c++) categoryItemStart[c + 1] += categoryItemStart[c];
  const categoryItems = new Int32Array(ITEM_COUNT);
  const itemFill = categoryItemStart.slice(0, CATEGORY_COUNT);
  for (let i = 0; i < ITEM_COUNT; i++) categoryItems[itemFill[itemCategory[i]]++] = i;
  const groupedWeights = new Float64Array(ITEM_COUNT);
  for (let k = 0; k < ITEM_COUNT; k++) groupedWeights[k] = itemWeight[categoryItems[k]];
  const categoryItemCdf = new Float64Array(ITEM_COUNT);
  for (let c = 0; c < CATEGORY_COUNT; c++) {
    cumulative(groupedWeights, categoryItemStart[c], categoryItemStart[c + 1], categoryItemCdf);
  }

  return {
    categoryVector,
    categoryClickBias,
    categoryBuyBias,
    categoryPrice,
    categoryBrandStart,
    categoryBrands,
    categoryBrandCdf,
    categoryNodeStart,
    categoryNodeCdf,
    nodeCount,
    brandClickBias,
    brandBuyBias,
    shopClickBias,
    shopCdf,
    itemCdf,
    itemCategory,
    itemBrand,
    itemShop,
    itemNode,
    itemClickEffect,
    categoryItemStart,
    categoryItems,
    categoryItemCdf,
    codes: {
      category: shuffledCodes(CATEGORY_COUNT, random),
      brand: shuffledCodes(BRAND_COUNT, random),
      shop: shuffledCodes(SHOP_COUNT, random),
      node: shuffledCodes(nodeCount, random),
      item: shuffledCodes(ITEM_COUNT, random),
    },
  };
}

/** User tables: profile fields, taste and 14-day history. Indexes are 0-based frequency ranks. */
interface Population {
  userCdf: Float64Array;
  gender: Uint8Array;
  age: Uint8Array;
  group: Uint8Array;
  segment: Uint8Array;
  consumption: Uint8Array;
  shoppingLevel: Uint8Array;
  occupation: Uint8Array;
  city: Uint8Array;
  taste: Float64Array; // [USER_COUNT, TASTE_DIM], the part fixed by group and segment
  profileClick: Float64Array;
  profileBuy: Float64Array;
  userClickEffect: Float64Array;
  historyCategoryCount: Uint8Array;
  historyCategory: Int32Array; // [USER_COUNT, MAX_HISTORY_CATEGORIES]
  historyCategoryStrength: Float64Array;
  historyBrandCount: Uint8Array;
  historyBrand: Int32Array; // [USER_COUNT, MAX_HISTORY_OTHERS], and so on for shops and nodes
  historyBrandStrength: Float64Array;
  historyShopCount: Uint8Array;
  historyShop: Int32Array;
  historyShopStrength: Float64Array;
  historyNodeCount: Uint8Array;
  historyNode: Int32Array;
  historyNodeStrength: Float64Array;
  categoryActivity: Float64Array; // D109_14
  shopActivity: Float64Array; // D110_14
  brandActivity: Float64Array; // D127_14
  nodeActivity: Float64Array; // D150_14
  userCode: Int32Array;
}

const AGE_SHARE = [0.05, 0.2, 0.3, 0.22, 0.13, 0.07, 0.03];
const CONSUMPTION_SHARE = [0.3, 0.5, 0.2];
const SHOPPING_LEVEL_SHARE = [0.15, 0.35, 0.5];
const HISTORY_SHARE_BY_SHOPPING_LEVEL = [0.6, 0.75, 0.85];

function buildPopulation(catalog: Catalog, random: Random): Population {
  const n = USER_COUNT;
  const gender = new Uint8Array(n);
  const age = new Uint8Array(n);
  const group = new Uint8Array(n);
  const segment = new Uint8Array(n);
  const consumption = new Uint8Array(n);
  const shoppingLevel = new Uint8Array(n);
  const occupation = new Uint8Array(n);
  const city = new Uint8Array(n);
  const taste = new Float64Array(n * TASTE_DIM);
  const profileClick = new Float64Array(n);
  const profileBuy = new Float64Array(n);
  const userClickEffect = new Float64Array(n);

  const groupTaste = normals(GROUP_COUNT * TASTE_DIM, Math.sqrt(0.5), random);
  const segmentTaste = normals(SEGMENT_COUNT * TASTE_DIM, 0.5, random);
  const segmentClick = normals(SEGMENT_COUNT, 0.2, random);
  const ageClick = normals(AGE_SHARE.length, 0.12, random);
  const ageBuy = normals(AGE_SHARE.length, 0.12, random);
  const segmentCdf = cumulative(zipfWeights(SEGMENT_COUNT, 0.7, 2));

  const historyCategoryCount = new Uint8Array(n);
  const historyCategory = new Int32Array(n * MAX_HISTORY_CATEGORIES);
  const historyCategoryStrength = new Float64Array(n * MAX_HISTORY_CATEGORIES);
  const historyBrandCount = new Uint8Array(n);
  const historyBrand = new Int32Array(n * MAX_HISTORY_OTHERS);
  const historyBrandStrength = new Float64Array(n * MAX_HISTORY_OTHERS);
  const historyShopCount = new Uint8Array(n);
  const historyShop = new Int32Array(n * MAX_HISTORY_OTHERS);
  const historyShopStrength = new Float64Array(n * MAX_HISTORY_OTHERS);
  const historyNodeCount = new Uint8Array(n);
  const historyNode = new Int32Array(n * MAX_HISTORY_OTHERS);
  const historyNodeStrength = new Float64Array(n * MAX_HISTORY_OTHERS);
  const categoryActivity = new Float64Array(n);
  const shopActivity = new Float64Array(n);
  const brandActivity = new Float64Array(n);
  const nodeActivity = new Float64Array(n);

  const categoryCdf = new Float64Array(CATEGORY_COUNT);
  const categoryWeight = zipfWeights(CATEGORY_COUNT, CATEGORY_ZIPF, 3);
  const categoryScore = new Float64Array(CATEGORY_COUNT);
  const hiddenTaste = new Float64Array(TASTE_DIM);
  const clip = (x: number): number => round4(Math.min(1, Math.max(0.02, x)));

  for (let u = 0; u < n; u++) {
    const g = random.uniform() < 0.6 ? 0 : 1;
    const a = drawFrom(AGE_SHARE, random);
    const grp = g === 0 ? a : 7 + Math.min(a, 5);
    const seg = sampleIndex(segmentCdf, random.uniform());
    const cons = drawFrom(CONSUMPTION_SHARE, random);
    const level = drawFrom(SHOPPING_LEVEL_SHARE, random);
    const occ = random.uniform() < 0.85 ? 0 : 1;
    const cty = drawFrom([0.25, 0.3, 0.3, 0.15], random);
    gender[u] = g;
    age[u] = a;
    group[u] = grp;
    segment[u] = seg;
    consumption[u] = cons;
    shoppingLevel[u] = level;
    occupation[u] = occ;
    city[u] = cty;
    for (let d = 0; d < TASTE_DIM; d++) {
      taste[u * TASTE_DIM + d] = groupTaste[grp * TASTE_DIM + d] + segmentTaste[seg * TASTE_DIM + d];
      hiddenTaste[d] = taste[u * TASTE_DIM + d] + 0.7 * random.normal();
    }
    profileClick[u] =
      segmentClick[seg] + ageClick[a] + SHOPPING_LEVEL_CLICK[level] + CITY_CLICK[cty] + OCCUPATION_CLICK[occ];
    profileBuy[u] = ageBuy[a] + SHOPPING_LEVEL_BUY[level];
    if (u < FREQUENT_ID_RANKS) userClickEffect[u] = 0.3 * random.normal();

    if (random.uniform() >= HISTORY_SHARE_BY_SHOPPING_LEVEL[level]) continue;

    // Activity levels are correlated across fields through a common base.
    const base = random.uniform();
    const catAct = clip(base + 0.2 * random.normal());
    const shopAct = clip(base + 0.25 * random.normal());
    const brandAct = clip(base + 0.25 * random.normal());
    const nodeAct = clip(base + 0.25 * random.normal());
    categoryActivity[u] = catAct;
    shopActivity[u] = shopAct;
    brandActivity[u] = brandAct;
    nodeActivity[u] = nodeAct;

    // History categories follow popularity and the user's full (partly hidden) taste.
    for (let c = 0; c < CATEGORY_COUNT; c++) {
      let dot = 0;
      for (let d = 0; d < TASTE_DIM; d++) dot += hiddenTaste[d] * catalog.categoryVector[c * TASTE_DIM + d];
      categoryScore[c] = categoryWeight[c] * Math.exp(1.2 * dot);
    }
    cumulative(categoryScore, 0, CATEGORY_COUNT, categoryCdf);
    const wantedCategories = 1 + Math.min(MAX_HISTORY_CATEGORIES - 1, Math.floor(catAct * MAX_HISTORY_CATEGORIES));
    const catOffset = u * MAX_HISTORY_CATEGORIES;
    let kc = 0;
    for (let tries = 0; tries < 40 && kc < wantedCategories; tries++) {
      const c = sampleIndex(categoryCdf, random.uniform());
      if (!contains(historyCategory, catOffset, kc, c)) {
        historyCategory[catOffset + kc] = c;
        historyCategoryStrength[catOffset + kc] = clip(catAct * 0.85 ** kc * (0.7 + 0.3 * random.uniform()));
        kc++;
      }
    }
    historyCategoryCount[u] = kc;
    sortByStrength(historyCategory, historyCategoryStrength, catOffset, kc);

    const otherOffset = u * MAX_HISTORY_OTHERS;
    const pickCategory = (): number => historyCategory[catOffset + random.int(kc)];
    let kb = 0;
    const wantedBrands = Math.floor(brandAct * (MAX_HISTORY_OTHERS + 0.99));
    for (let tries = 0; tries < 20 && kb < wantedBrands; tries++) {
      const c = pickCategory();
      const k = sampleIndex(
        catalog.categoryBrandCdf, random.uniform(), catalog.categoryBrandStart[c], catalog.categoryBrandStart[c + 1],
      );
      const b = catalog.categoryBrands[k];
      if (!contains(historyBrand, otherOffset, kb, b)) {
        historyBrand[otherOffset + kb] = b;
        historyBrandStrength[otherOffset + kb] = clip(brandAct * (0.5 + 0.5 * random.uniform()));
        kb++;
      }
    }
    historyBrandCount[u] = kb;
    sortByStrength(historyBrand, historyBrandStrength, otherOffset, kb);

    // A history shop is the shop of an item the user saw in a history category.
    let ks = 0;
    const wantedShops = Math.floor(shopAct * (MAX_HISTORY_OTHERS + 0.99));
    for (let tries = 0; tries < 20 && ks < wantedShops; tries++) {
      const c = pickCategory();
      const start = catalog.categoryItemStart[c];
      const end = catalog.categoryItemStart[c + 1];
      if (end === start) continue;
      const item = catalog.categoryItems[sampleIndex(catalog.categoryItemCdf, random.uniform(), start, end)];
      const s = catalog.itemShop[item];
      if (!contains(historyShop, otherOffset, ks, s)) {
        historyShop[otherOffset + ks] = s;
        historyShopStrength[otherOffset + ks] = clip(shopAct * (0.5 + 0.5 * random.uniform()));
        ks++;
      }
    }
    historyShopCount[u] = ks;
    sortByStrength(historyShop, historyShopStrength, otherOffset, ks);

    let kn = 0;
    const wantedNodes = Math.floor(nodeAct * (MAX_HISTORY_OTHERS + 0.99));
    for (let tries = 0; tries < 20 && kn < wantedNodes; tries++) {
      const c = pickCategory();
      const node = sampleIndex(
        catalog.categoryNodeCdf, random.uniform(), catalog.categoryNodeStart[c], catalog.categoryNodeStart[c + 1],
      );
      if (!contains(historyNode, otherOffset, kn, node)) {
        historyNode[otherOffset + kn] = node;
        historyNodeStrength[otherOffset + kn] = clip(nodeAct * (0.5 + 0.5 * random.uniform()));
        kn++;
      }
    }
    historyNodeCount[u] = kn;
    sortByStrength(historyNode, historyNodeStrength, otherOffset, kn);
  }

  return {
    userCdf: cumulative(zipfWeights(n, USER_ZIPF, 2)),
    gender,
    age,
    group,
    segment,
    consumption,
    shoppingLevel,
    occupation,
    city,
    taste,
    profileClick,
    profileBuy,
    userClickEffect,
    historyCategoryCount,
    historyCategory,
    historyCategoryStrength,
    historyBrandCount,
    historyBrand,
    historyBrandStrength,
    historyShopCount,
    historyShop,
    historyShopStrength,
    historyNodeCount,
    historyNode,
    historyNodeStrength,
    categoryActivity,
    shopActivity,
    brandActivity,
    nodeActivity,
    userCode: shuffledCodes(n, random),
  };
}

function contains(values: Int32Array, offset: number, count: number, value: number): boolean {
  for (let k = 0; k < count; k++) if (values[offset + k] === value) return true;
  return false;
}

/** Sorts `count` (id, strength) slots at `offset` by descending strength, so slot 0 is the user's top value. */
function sortByStrength(ids: Int32Array, strengths: Float64Array, offset: number, count: number): void {
  for (let i = offset + 1; i < offset + count; i++) {
    const id = ids[i];
    const strength = strengths[i];
    let j = i - 1;
    while (j >= offset && strengths[j] < strength) {
      ids[j + 1] = ids[j];
      strengths[j + 1] = strengths[j];
      j--;
    }
    ids[j + 1] = id;
    strengths[j + 1] = strength;
  }
}

/** Returns the index among the first `count` slots at `offset` whose entry equals `value`, or -1. */
function slotOf(values: Int32Array, offset: number, count: number, value: number): number {
  for (let k = 0; k < count; k++) if (values[offset + k] === value) return offset + k;
  return -1;
}

function emptyTerms(rows: number): LogitTerms {
  const terms = {} as LogitTerms;
  for (const group of EFFECT_GROUPS) terms[group] = new Float64Array(rows);
  return terms;
}

function checkCount(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${name} must be a non-negative integer, got ${value}`);
  }
}

/**
 * Draws rows from one seeded stream. Successive `next` calls continue the
 * stream, so the rows do not depend on how they are split into blocks.
 */
export class AliCcpGenerator {
  private readonly catalog: Catalog;
  private readonly population: Population;
  private readonly random: Random;

  constructor(readonly seed: number) {
    checkCount("seed", seed);
    const tables = new Random(seed, 1);
    this.catalog = buildCatalog(tables);
    this.population = buildPopulation(this.catalog, tables);
    this.random = new Random(seed, 2);
  }

  /** Draws the next `rows` rows; `withTerms` also returns each effect group's log-odds. */
  next(rows: number, options: { withTerms?: boolean } = {}): AliCcpRows {
    checkCount("rows", rows);
    const { catalog, population: users, random } = this;
    const sparse = {} as Record<SparseColumn, Int32Array>;
    for (const column of SPARSE_COLUMNS) sparse[column] = new Int32Array(rows);
    const dense = {} as Record<DenseColumn, Float64Array>;
    for (const column of DENSE_COLUMNS) dense[column] = new Float64Array(rows);
    const click = new Uint8Array(rows);
    const purchase = new Uint8Array(rows);
    const pClick = new Float64Array(rows);
    const pPurchase = new Float64Array(rows);
    const clickTerms = options.withTerms ? emptyTerms(rows) : undefined;
    const buyTerms = options.withTerms ? emptyTerms(rows) : undefined;

    for (let r = 0; r < rows; r++) {
      const u = sampleIndex(users.userCdf, random.uniform());
      const catOffset = u * MAX_HISTORY_CATEGORIES;
      const otherOffset = u * MAX_HISTORY_OTHERS;
      const kc = users.historyCategoryCount[u];

      // Some impressions come from the user's history categories, the rest from the whole catalogue.
      let item = -1;
      if (kc > 0 && random.uniform() < RECOMMENDED_SHARE) {
        const c = users.historyCategory[catOffset + random.int(kc)];
        const start = catalog.categoryItemStart[c];
        const end = catalog.categoryItemStart[c + 1];
        if (end > start) item = catalog.categoryItems[sampleIndex(catalog.categoryItemCdf, random.uniform(), start, end)];
      }
      if (item < 0) item = sampleIndex(catalog.itemCdf, random.uniform());
      const category = catalog.itemCategory[item];
      const brand = catalog.itemBrand[item];
      const shop = catalog.itemShop[item];
      const node = catalog.itemNode[item];
      const scene = drawFrom(SCENE_SHARE, random);

      // Matches between the item and the user's history.
      const catSlot = slotOf(users.historyCategory, catOffset, kc, category);
      const shopSlot = slotOf(users.historyShop, otherOffset, users.historyShopCount[u], shop);
      const brandSlot = slotOf(users.historyBrand, otherOffset, users.historyBrandCount[u], brand);
      const nodeSlot = slotOf(users.historyNode, otherOffset, users.historyNodeCount[u], node);
      const d508 = catSlot < 0 ? 0 : users.historyCategoryStrength[catSlot];
      const d509 = shopSlot < 0 ? 0 : users.historyShopStrength[shopSlot];
      const d702 = brandSlot < 0 ? 0 : users.historyBrandStrength[brandSlot];
      const d853 = nodeSlot < 0 ? 0 : users.historyNodeStrength[nodeSlot];
      const d109 = users.categoryActivity[u];
      const d110 = users.shopActivity[u];
      const d127 = users.brandActivity[u];
      const d150 = users.nodeActivity[u];

      sparse["101"][r] = users.userCode[u];
      sparse["121"][r] = users.segment[u] + 1;
      sparse["122"][r] = users.group[u] + 1;
      sparse["124"][r] = users.gender[u] + 1;
      sparse["125"][r] = users.age[u] + 1;
      sparse["126"][r] = users.consumption[u] + 1;
      sparse["127"][r] = users.shoppingLevel[u] + 1;
      sparse["128"][r] = users.occupation[u] + 1;
      sparse["129"][r] = users.city[u] + 1;
      sparse["205"][r] = catalog.codes.item[item];
      sparse["206"][r] = catalog.codes.category[category];
      sparse["207"][r] = catalog.codes.shop[shop];
      sparse["210"][r] = catalog.codes.node[node];
      sparse["216"][r] = catalog.codes.brand[brand];
      sparse["508"][r] = catSlot < 0 ? 0 : catalog.codes.category[category];
      sparse["509"][r] = shopSlot < 0 ? 0 : catalog.codes.shop[shop];
      sparse["702"][r] = brandSlot < 0 ? 0 : catalog.codes.brand[brand];
      sparse["853"][r] = nodeSlot < 0 ? 0 : catalog.codes.node[node];
      sparse["301"][r] = scene + 1;
      sparse["109_14"][r] = kc > 0 ? catalog.codes.category[users.historyCategory[catOffset]] : 0;
      sparse["110_14"][r] = users.historyShopCount[u] > 0 ? catalog.codes.shop[users.historyShop[otherOffset]] : 0;
      sparse["127_14"][r] = users.historyBrandCount[u] > 0 ? catalog.codes.brand[users.historyBrand[otherOffset]] : 0;
      sparse["150_14"][r] = users.historyNodeCount[u] > 0 ? catalog.codes.node[users.historyNode[otherOffset]] : 0;
      dense.D109_14[r] = d109;
      dense.D110_14[r] = d110;
      dense.D127_14[r] = d127;
      dense.D150_14[r] = d150;
      dense.D508[r] = d508;
      dense.D509[r] = d509;
      dense.D702[r] = d702;
      dense.D853[r] = d853;

      let dot = 0;
      for (let d = 0; d < TASTE_DIM; d++) {
        dot += users.taste[u * TASTE_DIM + d] * catalog.categoryVector[category * TASTE_DIM + d];
      }
      const priceFit = catalog.categoryPrice[category] * (users.consumption[u] - 1);

      const clickAffinity = CLICK_AFFINITY * dot;
      const clickItem = catalog.categoryClickBias[category] + catalog.brandClickBias[brand] + catalog.shopClickBias[shop];
      const clickProfile = users.profileClick[u];
      const clickPrice = 0.15 * priceFit;
      const clickMatch =
        (catSlot < 0 ? 0 : 0.2 + d508 * (scene === 0 ? 1.2 : 0.6)) + (nodeSlot < 0 ? 0 : 0.15 + 0.5 * d853);
      const clickActivity = 0.9 * Math.sqrt(d109) - 1.2 * (d110 - 0.5) ** 2;
      const clickPosition = SCENE_CLICK[scene];
      const clickIds = users.userClickEffect[u] + catalog.itemClickEffect[item];
      const clickLogit =
        CLICK_INTERCEPT + clickAffinity + clickItem + clickProfile + clickPrice + clickMatch + clickActivity +
        clickPosition + clickIds;

      const buyAffinity = BUY_AFFINITY * dot;
      const buyItem = catalog.categoryBuyBias[category] + catalog.brandBuyBias[brand];
      const buyProfile = users.profileBuy[u];
      const buyPrice = 0.5 * priceFit;
      const buyMatch = (brandSlot < 0 ? 0 : 0.5 + 1.5 * d702) + (shopSlot < 0 ? 0 : 0.3 + 0.8 * d509) + 0.2 * d508;
      const buyActivity = 1.2 * (1 - Math.exp(-4 * d127));
      const buyPosition = SCENE_BUY[scene];
      const buyLogit =
        BUY_INTERCEPT + buyAffinity + buyItem + buyProfile + buyPrice + buyMatch + buyActivity + buyPosition;

      const pc = sigmoid(clickLogit);
      const pb = sigmoid(buyLogit);
      pClick[r] = pc;
      pPurchase[r] = pc * pb;
      if (random.uniform() < pc) {
        click[r] = 1;
        if (random.uniform() < pb) purchase[r] = 1;
      }

      if (clickTerms && buyTerms) {
        clickTerms.affinity[r] = clickAffinity;
        clickTerms.itemBias[r] = clickItem;
        clickTerms.userProfile[r] = clickProfile;
        clickTerms.priceFit[r] = clickPrice;
        clickTerms.historyMatch[r] = clickMatch;
        clickTerms.activity[r] = clickActivity;
        clickTerms.position[r] = clickPosition;
        clickTerms.idEffects[r] = clickIds;
        buyTerms.affinity[r] = buyAffinity;
        buyTerms.itemBias[r] = buyItem;
        buyTerms.userProfile[r] = buyProfile;
        buyTerms.priceFit[r] = buyPrice;
        buyTerms.historyMatch[r] = buyMatch;
        buyTerms.activity[r] = buyActivity;
        buyTerms.position[r] = buyPosition;
      }
    }

    const result: AliCcpRows = { rows, click, purchase, sparse, dense, pClick, pPurchase };
    if (clickTerms && buyTerms) {
      result.terms = { click: clickTerms, buy: buyTerms, clickIntercept: CLICK_INTERCEPT, buyIntercept: BUY_INTERCEPT };
    }
    return result;
  }
}

/** Generates `rows` rows from `seed` in memory. */
export function generateRows(rows: number, seed: number, options: { withTerms?: boolean } = {}): AliCcpRows {
  return new AliCcpGenerator(seed).next(rows, options);
}

/** Computes the AUC of true probabilities against labels drawn from them: the best AUC any model can expect. */
export function oracleAuc(labels: ArrayLike<number>, probabilities: ArrayLike<number>): number {
  return auc(labels, probabilities);
}

/** Counts distinct values of each sparse column. */
export function countDistinct(blocks: readonly AliCcpRows[]): Record<SparseColumn, number> {
  const counts = {} as Record<SparseColumn, number>;
  for (const column of SPARSE_COLUMNS) {
    const seen = new Set<number>();
    for (const block of blocks) for (const value of block.sparse[column]) seen.add(value);
    counts[column] = seen.size;
  }
  return counts;
}

/** Summarises rows: label rates, oracle AUCs and distinct values per sparse column. */
export function summarize(rows: AliCcpRows): AliCcpSummary {
  return summarizeLabels(rows, countDistinct([rows]));
}

type Labels = Pick<AliCcpRows, "rows" | "click" | "purchase" | "pClick" | "pPurchase">;

function emptyLabels(rows: number): Labels {
  return {
    rows,
    click: new Uint8Array(rows),
    purchase: new Uint8Array(rows),
    pClick: new Float64Array(rows),
    pPurchase: new Float64Array(rows),
  };
}

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

export interface GenerateOptions {
  rows: number;
  seed: number;
  outPath: string;
  /** Rows generated and written per block; the output does not depend on it. Default 16,384. */
  blockRows?: number;
}

/** Formats rows `0..block.rows` as CSV lines, each ending in a newline. */
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
    fields[f++] = String(block.pClick[r]);
    fields[f++] = String(block.pPurchase[r]);
    lines[r] = fields.join(",");
  }
  return lines.length > 0 ? lines.join("\n") + "\n" : "";
}

/**
 * Generates `rows` rows from `seed` and writes them as CSV to `outPath`, block
 * by block. The file is written under a temporary name and renamed when
 * complete, so `outPath` never holds a partial file. Returns the summary of
 * the written rows.
 */
export async function generateAliCcp(options: GenerateOptions): Promise<AliCcpSummary> {
  const { rows, seed, outPath } = options;
  const blockRows = options.blockRows ?? 16_384;
  checkCount("rows", rows);
  if (!Number.isSafeInteger(blockRows) || blockRows < 1) {
    throw new RangeError(`blockRows must be a positive integer, got ${blockRows}`);
  }
  const generator = new AliCcpGenerator(seed);

  // Only labels, probabilities and distinct values are kept for the summary.
  const labels = emptyLabels(rows);
  const distinct = new Map<SparseColumn, Set<number>>(SPARSE_COLUMNS.map((column) => [column, new Set<number>()]));
  async function* csvChunks(): AsyncGenerator<string> {
    yield CSV_COLUMNS.join(",") + "\n";
    for (let done = 0; done < rows; done += blockRows) {
      const block = generator.next(Math.min(blockRows, rows - done));
      labels.click.set(block.click, done);
      labels.purchase.set(block.purchase, done);
      labels.pClick.set(block.pClick, done);
      labels.pPurchase.set(block.pPurchase, done);
      for (const column of SPARSE_COLUMNS) {
        const seen = distinct.get(column)!;
        for (const value of block.sparse[column]) seen.add(value);
      }
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
  for (const column of SPARSE_COLUMNS) distinctValues[column] = distinct.get(column)!.size;
  return summarizeLabels(labels, distinctValues);
}
