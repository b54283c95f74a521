/**
 * The policy registry: every policy by name, so the pool, the simulator and the benchmark agree.
 * 'dedup' (the default everywhere) is the dedup-aware order following the best of its shadows;
 * 'dedup-order' is that order alone.
 */
import { InvalidArgumentError } from '../errors.ts';
import type { EvictionPolicy } from './policy.ts';
import { ArcPolicy } from './policies/arc.ts';
import { CostPolicy } from './policies/cost.ts';
import { DedupAwarePolicy } from './policies/dedup.ts';
import { DedupFollowPolicy } from './policies/dedup-follow.ts';
import { LfuPolicy } from './policies/lfu.ts';
import { LruPolicy } from './policies/lru.ts';
import { MruPolicy } from './policies/mru.ts';
import { SievePolicy } from './policies/sieve.ts';
import { S3FifoPolicy } from './policies/s3fifo.ts';

export { ArcPolicy, CostPolicy, DedupAwarePolicy, DedupFollowPolicy, LfuPolicy, LruPolicy, MruPolicy, SievePolicy, S3FifoPolicy };

export const POLICY_NAMES = ['lru', 'mru', 'lfu', 'arc', 'sieve', 's3fifo', 'cost', 'dedup-order', 'dedup'] as const;
export type PolicyName = (typeof POLICY_NAMES)[number];

export function createPolicy(name: PolicyName | string): EvictionPolicy {
  switch (name) {
    case 'lru': return new LruPolicy();
    case 'mru': return new MruPolicy();
    case 'lfu': return new LfuPolicy();
    case 'arc': return new ArcPolicy();
    case 'sieve': return new SievePolicy();
    case 's3fifo': return new S3FifoPolicy();
    case 'cost': return new CostPolicy();
    case 'dedup-order': return new DedupAwarePolicy();
    case 'dedup': return new DedupFollowPolicy();
    default:
      throw new InvalidArgumentError(`unknown eviction policy "${name}": use one of ${POLICY_NAMES.join(', ')}`);
  }
}
