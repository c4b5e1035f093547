// Reading a labelled image folder for `eval`. Three layouts:
// - `index.json` with `images: [{file, label, class?}]` (and optionally `classes`), as in
//   shared/data/cifar10-sample;
// - `labels.json` mapping file name (relative to the folder) → class index;
// - an ImageFolder tree: one sub-folder per class (images anywhere below it). Class indices are the
//   model's label indices when every folder name is one of the model's labels, else the position of the
//   folder name in sorted order (torchvision's ImageFolder rule).
// Items are sorted by their path relative to the folder, so a run's order (and --limit) is reproducible.

import { readdir, readFile, stat } from 'node:fs/promises';
import { join, relative, resolve, sep } from 'node:path';

/** A data folder that cannot be read as a labelled dataset; the message is one line naming the file. */
export class DatasetError extends Error {
  override name = 'DatasetError';
}

export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg'];

export interface DatasetItem {
  /** Path relative to the folder, with '/' separators: the item's identity in results. */
  file: string;
  path: string;
  label: number;
}

export interface Dataset {
  root: string;
  layout: 'index.json' | 'labels.json' | 'imagefolder';
  items: DatasetItem[];
  /** Class names by index where known. */
  classNames: string[];
}

const isImage = (name: string) => IMAGE_EXTENSIONS.some((e) => name.toLowerCase().endsWith(e));
const byFile = (a: DatasetItem, b: DatasetItem) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0);

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

async function readJson(path: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    throw new DatasetError(`${path}: cannot read JSON (${(e as Error).message.split('\n')[0]})`);
  }
}

async function listImages(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const ent of await readdir(dir, { withFileTypes: true })) {
    if (ent.name.startsWith('.')) continue;
    const p = join(dir, ent.name);
    if (ent.isDirectory()) out.push(...(await listImages(p)));
    else if (isImage(ent.name)) out.push(p);
  }
  return out;
}

function checkLabel(label: unknown, file: string, numClasses: number, source: string): number {
  if (!Number.isInteger(label) || (label as number) < 0 || (label as number) >= numClasses) {
    throw new DatasetError(`${source}: label ${JSON.stringify(label)} of "${file}" is not a class index 0…${numClasses - 1} of this model`);
  }
  return label as number;
}

async function fromList(root: string, entries: [string, unknown][], numClasses: number, source: string): Promise<DatasetItem[]> {
  const items: DatasetItem[] = [];
  for (const [file, label] of entries) {
    const path = resolve(root, file);
    if (!path.startsWith(root + sep)) throw new DatasetError(`${source}: "${file}" lies outside the folder`);
    if (!(await exists(path))) throw new DatasetError(`${source}: listed image "${file}" not found`);
    items.push({ file: relative(root, path).split(sep).join('/'), path, label: checkLabel(label, file, numClasses, source) });
  }
  return items.sort(byFile);
}

/** Reads the images and labels of `dir`; `labels` are the model's class names. */
export async function readDataset(dir: string, labels: readonly string[], numClasses: number): Promise<Dataset> {
  const root = resolve(dir);
  let info;
  try {
    info = await stat(root);
  } catch {
    throw new DatasetError(`${dir}: data folder not found`);
  }
  if (!info.isDirectory()) throw new DatasetError(`${dir}: --data must be a folder`);

  const indexPath = join(root, 'index.json');
  if (await exists(indexPath)) {
    const index = (await readJson(indexPath)) as { images?: unknown; classes?: unknown };
    if (!Array.isArray(index.images)) throw new DatasetError(`${indexPath}: expected an "images" list of {file, label}`);
    const entries = index.images.map((e: any, i: number): [string, unknown] => {
      if (typeof e?.file !== 'string') throw new DatasetError(`${indexPath}: images[${i}] has no "file"`);
      return [e.file, e.label];
    });
    const items = await fromList(root, entries, numClasses, indexPath);
    if (items.length === 0) throw new DatasetError(`${indexPath}: no images listed`);
    const classNames = Array.isArray(index.classes) ? index.classes.map(String) : [...labels];
    return { root, layout: 'index.json', items, classNames };
  }

  const labelsPath = join(root, 'labels.json');
  if (await exists(labelsPath)) {
    const map = await readJson(labelsPath);
    if (typeof map !== 'object' || map === null || Array.isArray(map)) throw new DatasetError(`${labelsPath}: expected an object mapping file name → class index`);
    const items = await fromList(root, Object.entries(map), numClasses, labelsPath);
    if (items.length === 0) throw new DatasetError(`${labelsPath}: no images listed`);
    return { root, layout: 'labels.json', items, classNames: [...labels] };
  }

  const folders = (await readdir(root, { withFileTypes: true }))
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort();
  if (folders.length === 0) {
    throw new DatasetError(`${dir}: no class sub-folders, labels.json or index.json (expected an ImageFolder tree: one sub-folder of images per class)`);
  }
  const byLabel = folders.every((f) => labels.includes(f));
  const items: DatasetItem[] = [];
  for (const [i, folder] of folders.entries()) {
    const label = byLabel ? labels.indexOf(folder) : i;
    if (label >= numClasses) throw new DatasetError(`${dir}: ${folders.length} class folders but the model has ${numClasses} classes`);
    for (const path of await listImages(join(root, folder))) {
      items.push({ file: relative(root, path).split(sep).join('/'), path, label });
    }
  }
  if (items.length === 0) throw new DatasetError(`${dir}: no images (${IMAGE_EXTENSIONS.join(' ')}) in the class folders`);
  const classNames = byLabel ? [...labels] : folders;
  return { root, layout: 'imagefolder', items: items.sort(byFile), classNames };
}
