/**
 * The nf_tables slice of the addon (native/nft/). Messages are plain objects named after the
 * kernel's: `{ msg: 'newrule', family: 'inet', table, chain, exprs, comment }`; attribute names
 * are those of native/nft/objects.cc and expr.cc. The typed API in this folder builds them.
 */
import type { NsHandle } from '../native';

export type NftMsgName =
  | 'newtable' | 'deltable' | 'destroytable' | 'newchain' | 'delchain' | 'destroychain' | 'newrule' | 'delrule'
  | 'destroyrule' | 'newset' | 'delset' | 'destroyset' | 'newsetelem' | 'delsetelem' | 'destroysetelem';

/** One operation: message name, family, NLM flags as booleans, then the object's attributes. */
export interface NftMsg {
  msg: NftMsgName;
  family: string;
  /** NLM_F_EXCL: fail with EEXIST if the object exists (nft `create` vs `add`). */
  excl?: boolean;
  /** newrule: NLM_F_APPEND (default true; false inserts at the head or before `position`). */
  append?: boolean;
  /** newrule: NLM_F_REPLACE the rule `handle`. */
  replace?: boolean;
  [attr: string]: unknown;
}

export interface NftCommitOptions {
  /** Default true: refuse (EMSGSIZE) rather than split a transaction that exceeds maxBytes. */
  atomic?: boolean;
  /** Largest batch (one sendmsg) to build; default 64 MiB. */
  maxBytes?: number;
  /** Ruleset generation the changes were computed from; the kernel fails with ERESTART if it moved. */
  genid?: number;
}

export interface NativeRuleset {
  gen: number;
  tables: Record<string, any>[];
  chains: Record<string, any>[];
  sets: Record<string, any>[];
  rules: Record<string, any>[];
}

export interface NftNative {
  /** One nf_tables transaction; resolves to one result per operation (`{ handle }` for rules). */
  nftTransact(ns: NsHandle | null, msgs: NftMsg[], opts?: NftCommitOptions): Promise<{ handle?: number }[]>;
  /** Dumps tables, chains, sets (with their elements) and rules, consistent with one generation. */
  nftList(
    ns: NsHandle | null,
    filter?: { family?: string; table?: string; elements?: boolean; rules?: boolean },
  ): Promise<NativeRuleset>;
  /** The bytes nftTransact would send (batch begin ... end), sequence numbers from seqBase. */
  nftEncode(msgs: NftMsg[], seqBase?: number, opts?: NftCommitOptions): Buffer;
  /** Decodes nf_tables netlink messages (ours or the kernel's). */
  nftDecode(buf: Buffer): Record<string, any>[];
}
