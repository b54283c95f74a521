/** The buffer pool: page bytes under a hard budget, pluggable eviction, and a trace simulator. */
export { BufferPool } from './buffer-pool.ts';
export type { BufferPoolOptions, PageInfo, PinContext, PoolStats } from './buffer-pool.ts';
export type { EvictionPolicy, PageRef } from './policy.ts';
export { createPolicy, POLICY_NAMES, ArcPolicy, CostPolicy, DedupAwarePolicy, DedupFollowPolicy, LfuPolicy, LruPolicy, MruPolicy, SievePolicy, S3FifoPolicy } from './policies.ts';
export type { PolicyName } from './policies.ts';
export type { DedupAwareOptions } from './policies/dedup.ts';
export type { DedupFollowOptions } from './policies/dedup-follow.ts';
export { ShadowCache } from './shadow-cache.ts';
export { simulate, hitRatioTable, distinctBytes, pageSharers, sizeOfPage } from './simulate.ts';
export type { PageLayout, SimulationOptions, SimulationResult } from './simulate.ts';
export { zipfTrace, fineTuneFamily, seededRandom } from './traces.ts';
export type { ZipfTraceOptions, FamilyOptions } from './traces.ts';
