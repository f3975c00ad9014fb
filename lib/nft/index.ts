/**
 * nftables from Node.js over NETLINK_NETFILTER: transactions, typed objects, rule builders that
 * read like nft text, and typed read-back. Never runs `nft`.
 */
export { nftTransaction, NftTransaction, TxResult } from './transaction';
export { nftList, Ruleset, ListFilter } from './list';
export { nftRulesetText, ruleText } from './text';
export {
  Family, Hook, ChainType, PRIORITIES, PriorityName, Table, TableRef, Chain, ChainRef, NftSet, SetRef, SetFlag, SetElement,
  VerdictValue, Rule, RuleRef,
} from './model';
export * from './expr';
export {
  rule, RuleBuilder, FieldName, FIELD_NAMES, fieldType, masquerade, dnatTo, dnatMap, ctStateAccept, vmap, CT_STATES, CT_STATUS,
  FIB_TYPES,
} from './builders';
export { DATA_TYPES, Scalar, Range, TypedValue, IntervalKey, IntervalPart } from './types';
export type { NftCommitOptions, NftMsg } from './native';
