// The idle nodes in routing's order, kept as they change (the registry's; routing and the classifier's node link read
// it): an idle network of 10,000 nodes costs a request the first few nodes of a list, not a reading of every node.
import { NODE_TIERS, type NodeTier } from "../../common/vocabulary.ts";
import type { LiveNode } from "./live-node.ts";

/**
 * What a node's place was worked out from: when any of it changes (LiveNode tells the registry), the node moves. Its
 * speed and slots are its declaration's, fixed at registration.
 */
interface Place {
  tier: NodeTier;
  slots: number;
  tokensPerSecond: number;
  reputation: number;
  remote: boolean;
}

/**
 * Idle nodes (running nothing, a free slot, not suspended) by tier, then by slots (most first), each list in
 * routing's order among idle nodes of as many free slots (router.ts `better`): the faster, then the more reputable,
 * then this coordinator's own; equals in the order they became idle.
 */
export class IdleIndex {
  readonly #lists = new Map<NodeTier, Map<number, LiveNode[]>>(NODE_TIERS.map((tier) => [tier, new Map()]));
  /** Each tier's lists, most slots first (what `lists` returns; rebuilt when a slot count comes or goes). */
  readonly #ordered = new Map<NodeTier, LiveNode[][]>(NODE_TIERS.map((tier) => [tier, []]));
  readonly #places = new Map<LiveNode, Place>();

  /** The idle nodes of `tier`, one list per slot count, most slots first, each in routing's order. */
  lists(tier: NodeTier): readonly (readonly LiveNode[])[] {
    return this.#ordered.get(tier)!;
  }

  /** Puts `node` where it belongs now: in its place, moved, or out (`registered` false: it left the registry). */
  update(node: LiveNode, registered: boolean): void {
    const place = this.#places.get(node);
    const idle = registered && node.tasks.size === 0 && !node.suspended && node.freeSlots > 0;
    if (place && idle && samePlace(place, node)) return;
    if (place) this.#remove(node, place);
    if (idle) this.#insert(node);
  }

  #insert(node: LiveNode): void {
    const place = placeOf(node);
    this.#places.set(node, place);
    const byTier = this.#lists.get(place.tier)!;
    let list = byTier.get(place.slots);
    if (!list) {
      byTier.set(place.slots, (list = []));
      this.#order(place.tier);
    }
    // after its equals: the one idle the longest goes first
    list.splice(this.#bound(list, place, true), 0, node);
  }

  #remove(node: LiveNode, place: Place): void {
    const byTier = this.#lists.get(place.tier)!;
    const list = byTier.get(place.slots)!;
    // the first of its equals, then along them to the node itself
    let at = this.#bound(list, place, false);
    while (at < list.length && list[at] !== node) at++;
    if (at === list.length) at = list.indexOf(node); // not where its place says: cannot happen, but never lose track
    if (at >= 0) list.splice(at, 1);
    this.#places.delete(node);
    if (list.length === 0) {
      byTier.delete(place.slots);
      this.#order(place.tier);
    }
  }

  /** The index of the first node of `list` after `place` (`after` true: after its equals too) in routing's order. */
  #bound(list: readonly LiveNode[], place: Place, after: boolean): number {
    let low = 0;
    let high = list.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      const order = compare(this.#places.get(list[mid]!)!, place);
      if (order < 0 || (after && order === 0)) low = mid + 1;
      else high = mid;
    }
    return low;
  }

  #order(tier: NodeTier): void {
    const byTier = this.#lists.get(tier)!;
    this.#ordered.set(
      tier,
      [...byTier.keys()].sort((a, b) => b - a).map((slots) => byTier.get(slots)!),
    );
  }
}

function placeOf(node: LiveNode): Place {
  return {
    tier: node.tier,
    slots: node.freeSlots,
    tokensPerSecond: node.capabilities.tokensPerSecond,
    reputation: node.reputation,
    remote: node.remote,
  };
}

function samePlace(place: Place, node: LiveNode): boolean {
  return (
    place.tier === node.tier &&
    place.slots === node.freeSlots &&
    place.tokensPerSecond === node.capabilities.tokensPerSecond &&
    place.reputation === node.reputation &&
    place.remote === node.remote
  );
}

/** Negative when `a` comes first: the faster, then the more reputable, then this coordinator's own. */
function compare(a: Place, b: Place): number {
  if (a.tokensPerSecond !== b.tokensPerSecond) return b.tokensPerSecond - a.tokensPerSecond;
  if (a.reputation !== b.reputation) return b.reputation - a.reputation;
  return (a.remote ? 1 : 0) - (b.remote ? 1 : 0);
}
