/**
 * Reading the ruleset back, typed: what a restarted process needs to reconcile the objects it
 * owns. Rules come back as the same expression lists the builders make (compare them with
 * deepStrictEqual, counters aside: see withoutCounterValues); set elements come back typed by
 * the set's key and data types, interval pairs merged into prefixes and ranges.
 * Equivalent to: `nft -j list ruleset` (or `list table FAMILY NAME`)
 */
import { native } from '../native';
import type { Namespace } from '../netns';
import { ConfigError } from '../errors';
import type { NftNative } from './native';
import { Chain, Family, NftSet, Rule, Table, assertFamily, assertName, chainFromNative, ruleFromNative, setFromNative, tableFromNative } from './model';

export interface Ruleset {
  /** The ruleset generation all of this was read at (pass it to commit({ genid }) to apply
   *  changes only if nothing changed meanwhile). */
  gen: number;
  tables: Table[];
  chains: Chain[];
  sets: NftSet[];
  rules: Rule[];
}

export interface ListFilter {
  family?: Family;
  table?: string;
  /** Read set elements (default true). */
  elements?: boolean;
  /** Read rules (default true). */
  rules?: boolean;
}

/** Lists tables, chains, sets (with elements) and rules in `ns` (default: this process's). */
export async function nftList(ns?: Namespace, filter: ListFilter = {}): Promise<Ruleset> {
  if (filter === null || typeof filter !== 'object') throw new ConfigError('an object', 'filter');
  if (filter.family !== undefined) assertFamily(filter.family, 'filter.family');
  if (filter.table !== undefined) assertName(filter.table, 'filter.table');
  const raw = await native<NftNative>().nftList(ns ? ns.handle : null, {
    family: filter.family,
    table: filter.table,
    elements: filter.elements ?? true,
    rules: filter.rules ?? true,
  });
  const keep = (o: Record<string, any>) => filter.family === undefined || o.family === filter.family;
  return {
    gen: raw.gen,
    tables: raw.tables.filter(keep).map(tableFromNative),
    chains: raw.chains.filter(keep).map(chainFromNative),
    sets: raw.sets.filter(keep).map((s) => setFromNative(s).set),
    rules: raw.rules.filter(keep).map(ruleFromNative),
  };
}
