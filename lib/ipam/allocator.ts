/**
 * Address allocation inside one subnet.
 *
 * Pure in-memory bookkeeping with no persistence of its own: after a restart, state is rebuilt
 * from the addresses the kernel shows ({@link AddressPool.fromAllocations}).
 *
 * Dynamic allocation is next-fit, like CNI host-local: the search starts after the previously
 * allocated address and wraps around, so a just-released address is handed out again only after
 * the rest of the range has been used. This avoids a new container inheriting a stale ARP/conntrack
 * entry or firewall state meant for the previous owner.
 *
 * Storage is a bitmap of the allocatable range, split into 8 KiB pages created on first use, so an
 * idle /8 costs nothing and a full one 2 MiB. Allocation skips full 32-bit words, so it is O(1)
 * amortised over a sweep of the range. Ranges larger than {@link MAX_WINDOW} addresses (any IPv6
 * /64, IPv4 larger than /8) allocate dynamically only from their first MAX_WINDOW addresses;
 * static addresses ({@link AddressPool.reserve}) may be anywhere in the subnet.
 */

import { ConfigError, NetmodesError } from '../errors';
import { bigIntToIP, Cidr, Family, ipToBigInt } from '../net/addr';
import { AddressRange, defaultGateway, parseRange, parseSubnet, reservedAddresses, validateGateway } from './subnets';

/** Most addresses {@link AddressPool.allocate} hands out from one range: 2^24, an IPv4 /8. */
export const MAX_WINDOW = 1 << 24;

const PAGE_SHIFT = 16; /* addresses per page: 65536 */
const PAGE_WORDS = 1 << (PAGE_SHIFT - 5);
const WORD_MASK = PAGE_WORDS - 1;

/** Options for a pool. */
export interface PoolOptions {
  /** The network's subnet, host bits zero (`172.17.0.0/16`, `fd00:1::/64`). */
  subnet: string;
  /**
   * Sub-range of `subnet` that {@link AddressPool.allocate} hands out from (Docker's
   * `--ip-range`). Static reservations may still be anywhere in the subnet.
   */
  ipRange?: string;
  /**
   * The gateway, never handed out. `undefined`: the first address of the subnet
   * ({@link defaultGateway}). `null`: the network has no gateway.
   */
  gateway?: string | null;
}

/** Serialisable state of a pool; also valid {@link PoolOptions}. */
export interface PoolState {
  subnet: string;
  ipRange?: string;
  gateway: string | null;
  /** Addresses held, ascending. */
  allocated: string[];
  /** The last address handed out by `allocate()`, where the next search continues from. */
  last?: string;
}

/**
 * An address pool over one subnet, for either family. Prefer {@link Ipv4Pool} / {@link Ipv6Pool},
 * which also check the subnet's family.
 *
 * Never hands out the network address, the IPv4 broadcast address or the gateway.
 * Addresses are accepted in any valid spelling and returned in canonical form (see `net/addr`).
 */
export class AddressPool {
  /** The subnet, `network/prefix`. */
  readonly subnet: string;
  /** The allocation range if one was given, `network/prefix`. */
  readonly ipRange?: string;
  /** The gateway in canonical form, or null if the network has none. */
  readonly gateway: string | null;
  /** 4 or 6, from the subnet. */
  readonly family: Family;

  readonly #subnet: Cidr;
  /** First address of the bitmap window (start of ipRange, else of the subnet). */
  readonly #base: bigint;
  /** Number of addresses covered by the bitmap. */
  readonly #window: number;
  /** Addresses never handed out (network, broadcast, gateway), as integers. */
  readonly #reserved: bigint[];
  /** The gateway as an integer, -1n if none. */
  readonly #gw: bigint;
  /** How many of `#reserved` lie inside the window (their bits are set permanently). */
  readonly #reservedInWindow: number;
  readonly #pages: (Uint32Array | undefined)[];
  /** Held addresses inside the window, reserved ones excluded. */
  #inWindow = 0;
  /** Held addresses outside the window (static reservations). */
  readonly #outside = new Set<bigint>();
  /** Offset where the next search starts: one past the last allocation. */
  #cursor = 0;
  /** Offset of the last dynamic allocation, -1 if none. */
  #last = -1;

  /**
   * @throws ConfigError for an invalid subnet, range or gateway (fields `subnet`, `ipRange`,
   *   `gateway`), or when `family` is given and the subnet is of the other family.
   */
  constructor(opts: PoolOptions, family?: Family) {
    if (!opts || typeof opts !== 'object') throw new ConfigError('expected pool options', 'subnet');
    const subnet = parseSubnet(opts.subnet, 'subnet');
    if (family !== undefined && subnet.family !== family) {
      throw new ConfigError(`expected an IPv${family} subnet, got ${subnet.toString()}`, 'subnet');
    }
    this.#subnet = subnet;
    this.subnet = subnet.toString();
    this.family = subnet.family;

    let range: Pick<AddressRange, 'start' | 'end'> = subnet;
    if (opts.ipRange !== undefined) {
      const r = parseRange(opts.ipRange, 'ipRange');
      if (r.family !== subnet.family || r.start < subnet.start || r.end > subnet.end) {
        throw new ConfigError(`range ${r.text} is not inside subnet ${this.subnet}`, 'ipRange');
      }
      this.ipRange = r.text;
      range = r;
    }

    this.gateway =
      opts.gateway === null
        ? null
        : opts.gateway === undefined
          ? defaultGateway(subnet)
          : validateGateway(opts.gateway, subnet, 'gateway');

    this.#base = range.start;
    const span = range.end - range.start + 1n;
    this.#window = span > BigInt(MAX_WINDOW) ? MAX_WINDOW : Number(span);
    this.#pages = new Array(Math.ceil(this.#window / (1 << PAGE_SHIFT)));

    this.#gw = this.gateway === null ? -1n : ipToBigInt(this.gateway, 'gateway').value;
    this.#reserved = reservedAddresses(subnet);
    if (this.#gw >= 0n) this.#reserved.push(this.#gw);
    let inWindow = 0;
    for (const r of this.#reserved) {
      const off = this.#offset(r);
      if (off >= 0) {
        this.#set(off);
        inWindow++;
      }
    }
    this.#reservedInWindow = inWindow;
  }

  /**
   * Builds a pool holding `inUse`, e.g. the addresses found on a network's endpoints after a
   * restart. The gateway and duplicates in `inUse` are skipped (address dumps usually include the
   * bridge's own address). Pass `last` (from {@link toJSON}) to resume the next-fit search exactly;
   * without it, the search resumes after the highest address in the allocation range.
   * @throws ConfigError for entries outside the subnet or that are its network/broadcast address
   *   (field `allocations[i]`), and for bad options.
   */
  static fromAllocations<T extends AddressPool>(
    this: new (opts: PoolOptions) => T,
    opts: PoolOptions,
    inUse: Iterable<string>,
    last?: string,
  ): T {
    const pool = new this(opts);
    let i = 0;
    let highest = -1;
    for (const ip of inUse) {
      const field = `allocations[${i++}]`;
      const value = pool.#locate(ip, field, true);
      if (value === pool.#gw) continue;
      if (pool.#reserved.includes(value)) {
        throw new ConfigError(`${ip} is a reserved address of subnet ${pool.subnet}`, field);
      }
      pool.#hold(value);
      highest = Math.max(highest, pool.#offset(value));
    }
    const resumeAt = last !== undefined ? pool.#offset(pool.#locate(last, 'last', true)) : highest;
    if (resumeAt >= 0) {
      pool.#last = resumeAt;
      pool.#cursor = resumeAt + 1 === pool.#window ? 0 : resumeAt + 1;
    }
    return pool;
  }

  /** Addresses `allocate()` can hand out in total: the range (capped at MAX_WINDOW) minus reserved ones. */
  get size(): number {
    return this.#window - this.#reservedInWindow;
  }

  /** Addresses held now, by `allocate()` or `reserve()`, including static ones outside the range. */
  get used(): number {
    return this.#inWindow + this.#outside.size;
  }

  /** Addresses `allocate()` can still hand out. */
  get free(): number {
    return this.size - this.#inWindow;
  }

  /**
   * Takes the next free address after the last one allocated, wrapping at the end of the range.
   * @returns the address in canonical form.
   * @throws NetmodesError `EPOOLEXHAUSTED` when the range is full.
   */
  allocate(): string {
    if (this.#inWindow >= this.size) {
      throw new NetmodesError(
        'EPOOLEXHAUSTED',
        `no free IPv${this.family} address left in ${this.ipRange ?? this.subnet}` +
          (this.ipRange ? ` (subnet ${this.subnet})` : ''),
      );
    }
    let off = this.#findFree(this.#cursor, this.#window);
    if (off < 0) off = this.#findFree(0, this.#cursor);
    this.#set(off);
    this.#inWindow++;
    this.#last = off;
    this.#cursor = off + 1 === this.#window ? 0 : off + 1;
    return bigIntToIP(this.#base + BigInt(off), this.family);
  }

  /**
   * Takes a specific address (a static IP). Like Docker, it may be anywhere in the subnet, inside
   * the allocation range or not. Does not move the next-fit position.
   * @returns the address in canonical form.
   * @throws ConfigError (field `ip`) when it is not an address of the subnet, or is its network,
   *   broadcast or gateway address.
   * @throws NetmodesError `EADDRINUSE` when it is already held.
   */
  reserve(ip: string): string {
    const value = this.#locate(ip, 'ip', true);
    const text = bigIntToIP(value, this.family);
    if (this.#reserved.includes(value)) {
      const what = value === this.#gw ? 'gateway' : value === this.#subnet.start ? 'network' : 'broadcast';
      throw new ConfigError(`${text} is the ${what} address of ${this.subnet}`, 'ip');
    }
    if (!this.#hold(value)) throw new NetmodesError('EADDRINUSE', `address ${text} is already in use in ${this.subnet}`);
    return text;
  }

  /**
   * Returns an address to the pool. Idempotent: releasing a free, reserved or foreign address
   * does nothing.
   * @returns true if the address was held.
   * @throws ConfigError (field `ip`) only when `ip` is not an IP address at all.
   */
  release(ip: string): boolean {
    const value = this.#locate(ip, 'ip', false);
    if (value < 0n || this.#reserved.includes(value)) return false;
    const off = this.#offset(value);
    if (off < 0) return this.#outside.delete(value);
    if (!this.#test(off)) return false;
    this.#clear(off);
    this.#inWindow--;
    return true;
  }

  /**
   * True when `ip` is held by an endpoint. False for free addresses, addresses outside the subnet
   * and the reserved network/broadcast/gateway addresses.
   * @throws ConfigError (field `ip`) when `ip` is not an IP address at all.
   */
  has(ip: string): boolean {
    const value = this.#locate(ip, 'ip', false);
    if (value < 0n || this.#reserved.includes(value)) return false;
    const off = this.#offset(value);
    return off < 0 ? this.#outside.has(value) : this.#test(off);
  }

  /** Held addresses, ascending, canonical form. */
  addresses(): string[] {
    const out: bigint[] = [];
    const outside = [...this.#outside].sort((a, b) => (a < b ? -1 : 1));
    let k = 0;
    while (k < outside.length && outside[k] < this.#base) out.push(outside[k++]);
    for (let p = 0; p < this.#pages.length; p++) {
      const page = this.#pages[p];
      if (!page) continue;
      for (let w = 0; w < page.length; w++) {
        let word = page[w];
        while (word !== 0) {
          const bit = 31 - Math.clz32(word & -word);
          word &= word - 1;
          const value = this.#base + BigInt((p << PAGE_SHIFT) | (w << 5) | bit);
          if (!this.#reserved.includes(value)) out.push(value);
        }
      }
    }
    while (k < outside.length) out.push(outside[k++]);
    return out.map((v) => bigIntToIP(v, this.family));
  }

  /** Serialisable state; `Pool.fromAllocations(state, state.allocated, state.last)` restores it. */
  toJSON(): PoolState {
    const state: PoolState = { subnet: this.subnet, gateway: this.gateway, allocated: this.addresses() };
    if (this.ipRange) state.ipRange = this.ipRange;
    if (this.#last >= 0) state.last = bigIntToIP(this.#base + BigInt(this.#last), this.family);
    return state;
  }

  /**
   * Parses `ip` and checks it belongs to the subnet. With `strict`, anything else is a
   * ConfigError; without, foreign addresses return -1n (only non-addresses throw).
   */
  #locate(ip: string, field: string, strict: boolean): bigint {
    const { value, family } = ipToBigInt(ip, field);
    if (family === this.family && value >= this.#subnet.start && value <= this.#subnet.end) return value;
    if (!strict) return -1n;
    throw new ConfigError(`${bigIntToIP(value, family)} is not an address of subnet ${this.subnet}`, field);
  }

  /** Bitmap offset of an address of the subnet, or -1 outside the window. */
  #offset(value: bigint): number {
    const off = value - this.#base;
    return off >= 0n && off < BigInt(this.#window) ? Number(off) : -1;
  }

  /** Marks an address of the subnet as held; false if it already was. */
  #hold(value: bigint): boolean {
    const off = this.#offset(value);
    if (off < 0) {
      if (this.#outside.has(value)) return false;
      this.#outside.add(value);
      return true;
    }
    if (this.#test(off)) return false;
    this.#set(off);
    this.#inWindow++;
    return true;
  }

  #test(off: number): boolean {
    const page = this.#pages[off >>> PAGE_SHIFT];
    return page !== undefined && (page[(off >>> 5) & WORD_MASK] & (1 << (off & 31))) !== 0;
  }

  #set(off: number): void {
    const p = off >>> PAGE_SHIFT;
    /* The last page only needs to cover the rest of the window (a /24 needs 8 words). */
    const page =
      this.#pages[p] ??
      (this.#pages[p] = new Uint32Array(Math.min(PAGE_WORDS, Math.ceil((this.#window - (p << PAGE_SHIFT)) / 32))));
    page[(off >>> 5) & WORD_MASK] |= 1 << (off & 31);
  }

  #clear(off: number): void {
    const page = this.#pages[off >>> PAGE_SHIFT];
    if (page) page[(off >>> 5) & WORD_MASK] &= ~(1 << (off & 31));
  }

  /** First clear bit in [from, to), or -1. */
  #findFree(from: number, to: number): number {
    let off = from;
    while (off < to) {
      const p = off >>> PAGE_SHIFT;
      const page = this.#pages[p];
      if (page === undefined) return off; /* untouched page: all free */
      let w = (off >>> 5) & WORD_MASK;
      let word = ~page[w] & (-1 << (off & 31));
      for (;;) {
        if (word !== 0) {
          const found = (p << PAGE_SHIFT) | (w << 5) | (31 - Math.clz32(word & -word));
          return found < to ? found : -1;
        }
        if (++w === page.length) break;
        word = ~page[w];
      }
      off = (p + 1) << PAGE_SHIFT;
    }
    return -1;
  }
}

/** An {@link AddressPool} over an IPv4 subnet. */
export class Ipv4Pool extends AddressPool {
  /** @throws ConfigError as {@link AddressPool}, and (field `subnet`) for an IPv6 subnet. */
  constructor(opts: PoolOptions) {
    super(opts, 4);
  }
}

/**
 * An {@link AddressPool} over an IPv6 subnet. No broadcast address; the subnet-router anycast
 * (network) address is never handed out. Dynamic allocation uses the first {@link MAX_WINDOW}
 * addresses of the range.
 */
export class Ipv6Pool extends AddressPool {
  /** @throws ConfigError as {@link AddressPool}, and (field `subnet`) for an IPv4 subnet. */
  constructor(opts: PoolOptions) {
    super(opts, 6);
  }
}
