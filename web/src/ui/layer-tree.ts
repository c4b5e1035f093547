// The target-layer picker: the model's module paths as a tree (torch-style dotted paths, parents before
// children), the chosen path highlighted and the way to it unfolded.

import { h } from './dom.ts';

interface Node {
  path: string;
  name: string;
  children: Node[];
}

function buildTree(paths: readonly string[]): Node[] {
  const roots: Node[] = [];
  const byPath = new Map<string, Node>();
  for (const path of paths) {
    const cut = path.lastIndexOf('.');
    const node: Node = { path, name: path.slice(cut + 1), children: [] };
    byPath.set(path, node);
    const parent = cut < 0 ? undefined : byPath.get(path.slice(0, cut));
    (parent ? parent.children : roots).push(node);
  }
  return roots;
}

/** Renders the tree into `container`; `choose` is called with a path when one is clicked. */
export function renderLayerTree(container: HTMLElement, paths: readonly string[], chosen: string, choose: (path: string) => void): void {
  const item = (node: Node): HTMLLIElement => {
    const button = h('button', { type: 'button', class: 'layer', 'data-path': node.path, title: node.path }, node.name);
    button.addEventListener('click', () => choose(node.path));
    if (node.children.length === 0) return h('li', {}, button);
    const details = h('details', {}, h('summary', {}, button), h('ul', {}, ...node.children.map(item)));
    details.open = chosen === node.path || chosen.startsWith(`${node.path}.`);
    return h('li', {}, details);
  };
  container.replaceChildren(h('ul', { class: 'tree' }, ...buildTree(paths).map(item)));
  markLayer(container, chosen);
}

/** Highlights the chosen path (and unfolds the way to it). */
export function markLayer(container: HTMLElement, chosen: string): void {
  for (const button of Array.from(container.querySelectorAll<HTMLButtonElement>('button.layer'))) {
    const path = button.dataset.path!;
    button.classList.toggle('chosen', path === chosen);
    if (chosen.startsWith(`${path}.`)) button.closest('details')!.open = true;
  }
}
