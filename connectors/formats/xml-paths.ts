/**
 * XML sources as a tree of local names. A mapping asks for a few paths below the record
 * element (`Offer`, `Contract/Offer`, `Contract/@type`, `@id`); walking this tree alongside
 * the parser's events costs one map lookup per element, and a whole subtree that no path
 * enters is skipped without looking at it.
 */
import { ConfigError } from '../../platform/errors.js';

/** One element position reachable by a wanted path. */
export interface PathNode {
  /** Child elements some wanted path goes through, by local name. */
  readonly children: Map<string, PathNode>;
  /** The source key, when the text of this element is wanted. */
  textKey: string | undefined;
  /** Source keys of wanted attributes of this element, by attribute local name. */
  readonly attributes: Map<string, string>;
}

const NAME = /^[A-Za-z_][\w.-]*$/;

/**
 * Builds the tree of the wanted sources. A path is local names joined by `/`, optionally
 * ending with `@attribute`; prefixes are not written (they are ignored when matching).
 * @throws ConfigError CONFIG_INVALID for anything else, such as a number or `a//b`.
 */
export function compilePaths(wanted: readonly (string | number)[]): PathNode {
  const root = newNode();
  for (const source of wanted) {
    const key = String(source);
    const steps = typeof source === 'string' ? source.split('/') : [];
    const last = steps.pop() ?? '';
    const isAttribute = last.startsWith('@');
    const leaf = isAttribute ? last.slice(1) : last;
    if (!NAME.test(leaf) || !steps.every((step) => NAME.test(step))) {
      throw new ConfigError(
        'CONFIG_INVALID',
        `xml source ${JSON.stringify(key)} is not a path like Contract/Offer or Contract/@type`,
        { source: key },
      );
    }
    const parent = steps.reduce(childOf, root);
    if (isAttribute) parent.attributes.set(leaf, key);
    else childOf(parent, leaf).textKey = key;
  }
  return root;
}

function newNode(): PathNode {
  return { children: new Map(), textKey: undefined, attributes: new Map() };
}

function childOf(node: PathNode, name: string): PathNode {
  let child = node.children.get(name);
  if (child === undefined) {
    child = newNode();
    node.children.set(name, child);
  }
  return child;
}
