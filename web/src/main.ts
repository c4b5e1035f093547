// The page: controls on the left, results on the right, the engine in a worker. Every request that fails
// shows its one-line message on top and changes nothing else: the loaded model, the images and the last
// results stay.

import type { BackendRequest, Catalog, ImageInfo, ModelChoice, ModelInfo, RunRequest } from './protocol.ts';
import { byId, formatMs, h } from './ui/dom.ts';
import { markLayer, renderLayerTree } from './ui/layer-tree.ts';
import { renderResults } from './ui/results.ts';
import { EngineClient } from './worker-client.ts';

const CUSTOM = '(architecture + weights file)';
const DEFAULT_METHODS = ['shapleycam', 'gradcam'];
/** Two of the CIFAR-10 sample images shipped with the project. */
const SAMPLES = [
  { name: 'cat_0001.png', url: new URL('../../samples/cifar10/cat_0001.png', import.meta.url) },
  { name: 'dog_0001.png', url: new URL('../../samples/cifar10/dog_0001.png', import.meta.url) },
];

const engine = new EngineClient();
const el = {
  status: byId('backend-status'),
  message: byId('message'),
  modelSelect: byId<HTMLSelectElement>('model-select'),
  custom: byId('custom-model'),
  archSelect: byId<HTMLSelectElement>('arch-select'),
  weightsInput: byId<HTMLInputElement>('weights-input'),
  backendSelect: byId<HTMLSelectElement>('backend-select'),
  loadModel: byId<HTMLButtonElement>('load-model'),
  modelStatus: byId('model-status'),
  dropZone: byId('drop-zone'),
  imageInput: byId<HTMLInputElement>('image-input'),
  addSamples: byId<HTMLButtonElement>('add-samples'),
  fitInput: byId<HTMLInputElement>('fit-input'),
  fitLabel: byId('fit-label'),
  imageList: byId('image-list'),
  methodList: byId('method-list'),
  layerInput: byId<HTMLInputElement>('layer-input'),
  layerTree: byId('layer-tree'),
  targetSelect: byId<HTMLSelectElement>('target-select'),
  classInput: byId<HTMLInputElement>('class-input'),
  classLabels: byId('class-labels'),
  run: byId<HTMLButtonElement>('run'),
  progress: byId('progress'),
  progressBar: byId<HTMLProgressElement>('progress-bar'),
  progressText: byId('progress-text'),
  results: byId('results'),
};

let model: ModelInfo | null = null;
const images: ImageInfo[] = [];
let busy = 0;

function showMessage(text: string | null): void {
  el.message.hidden = text === null;
  el.message.textContent = text ?? '';
}

/** Runs an engine request with the page marked busy; a failure becomes the one-line message. */
async function guarded<T>(what: string, task: () => Promise<T>): Promise<T | undefined> {
  busy++;
  document.body.classList.add('busy');
  el.run.disabled = true;
  el.loadModel.disabled = true;
  try {
    const result = await task();
    showMessage(null);
    return result;
  } catch (e) {
    showMessage(`${what}: ${(e as Error).message}`);
    return undefined;
  } finally {
    busy--;
    if (busy === 0) {
      document.body.classList.remove('busy');
      el.run.disabled = false;
      el.loadModel.disabled = false;
    }
  }
}

function option(value: string, text = value, disabled = false): HTMLOptionElement {
  const o = h('option', { value }, text);
  o.disabled = disabled;
  return o;
}

function fillCatalog(catalog: Catalog): void {
  el.modelSelect.replaceChildren(...catalog.zoo.map((z) => option(z.name, `${z.name} — ${z.description}`)), option(CUSTOM));
  el.archSelect.replaceChildren(...catalog.architectures.map((a) => option(a)));
  el.backendSelect.replaceChildren(...catalog.backends.map((b) => option(b.name, `${b.name} — ${b.note}`, !b.available)));
  el.targetSelect.replaceChildren(...catalog.targets.map((t) => option(t)));
  el.methodList.replaceChildren(
    ...catalog.methods.map((m) => {
      const box = h('input', { type: 'checkbox', value: m.name, 'data-family': String(m.family) });
      box.checked = DEFAULT_METHODS.includes(m.name);
      return h('label', { class: 'check' }, box, ` ${m.name}${m.family ? ' ★' : ''}`);
    }),
  );
  const isolation = catalog.crossOriginIsolated ? 'cross-origin isolated (wasm threads available)' : 'not cross-origin isolated (no wasm threads)';
  el.status.textContent = `Engine ready; page ${isolation}. Load a model.`;
}

function showModel(info: ModelInfo): void {
  model = info;
  el.modelStatus.textContent = `loaded ${info.name}: ${info.arch}, ${info.numClasses} classes, input ${info.inputSize.join('×')}, in ${formatMs(info.loadMs)}`;
  const b = info.backend;
  el.status.replaceChildren(
    'Backend: ',
    h('b', { id: 'backend-name', 'data-backend': b.name }, b.name),
    b.reason ? ` (auto: ${b.reason})` : ' (as chosen)',
    ' — ',
    h('span', { id: 'adapter' }, b.description),
  );
  el.classLabels.replaceChildren(...info.labels.map((l) => option(l)));
  el.fitLabel.textContent = info.resizes
    ? `Images are resized by the model's own preprocessing (to ${info.inputSize.join('×')})`
    : `Fit photos to the model's input size (${info.inputSize.join('×')}: shorter side, centre crop)`;
  el.fitInput.disabled = info.resizes;
  chooseLayer(info.defaultLayer);
  renderLayerTree(el.layerTree, info.modules, info.defaultLayer, chooseLayer);
}

function chooseLayer(path: string): void {
  el.layerInput.value = path;
  markLayer(el.layerTree, path);
}

async function loadModel(): Promise<void> {
  const backend = el.backendSelect.value as BackendRequest;
  let choice: ModelChoice;
  if (el.modelSelect.value === CUSTOM) {
    const file = el.weightsInput.files?.[0];
    if (!file) {
      showMessage('weights: choose a .safetensors file for the architecture');
      return;
    }
    choice = { arch: el.archSelect.value, weights: { name: file.name, bytes: new Uint8Array(await file.arrayBuffer()) } };
  } else {
    choice = { zoo: el.modelSelect.value };
  }
  el.modelStatus.textContent = 'loading…';
  const info = await guarded('model', () => engine.request({ type: 'load', model: choice, backend }));
  if (info) showModel(info);
  else el.modelStatus.textContent = model ? `still loaded: ${model.name}` : 'no model loaded';
}

async function addImage(name: string, bytes: Uint8Array): Promise<void> {
  const info = await guarded('image', () => engine.request({ type: 'addImage', name, bytes }, undefined, [bytes.buffer]));
  if (!info) return;
  images.push(info);
  renderImageList();
}

async function addFiles(files: FileList | null | undefined): Promise<void> {
  for (const file of Array.from(files ?? [])) await addImage(file.name, new Uint8Array(await file.arrayBuffer()));
}

function renderImageList(): void {
  el.imageList.replaceChildren(
    ...images.map((image) => {
      const remove = h('button', { type: 'button', class: 'remove', title: `remove ${image.name}` }, '×');
      remove.addEventListener('click', async () => {
        await guarded('image', () => engine.request({ type: 'removeImage', imageId: image.id }));
        images.splice(images.indexOf(image), 1);
        renderImageList();
      });
      return h('li', { 'data-image': image.name }, `${image.name} (${image.width}×${image.height})`, remove);
    }),
  );
}

function runRequest(): RunRequest {
  const methods = Array.from(el.methodList.querySelectorAll<HTMLInputElement>('input:checked'), (box) => box.value);
  const className = el.classInput.value.trim();
  return {
    images: images.map((i) => i.id),
    methods,
    layer: el.layerInput.value.trim(),
    target: el.targetSelect.value,
    className: className === '' ? null : className,
    fitToInput: el.fitInput.checked,
  };
}

async function explain(): Promise<void> {
  if (!model) {
    showMessage('explain: load a model first');
    return;
  }
  const request = runRequest();
  const started = performance.now();
  el.progress.hidden = false;
  el.progressBar.removeAttribute('value');
  el.progressText.textContent = 'starting…';
  let what = 'starting';
  const tick = setInterval(() => {
    el.progressText.textContent = `${what} — ${formatMs(performance.now() - started)}`;
  }, 100);
  const outcome = await guarded('explain', () =>
    engine.request({ type: 'run', run: request }, (done, total, step) => {
      el.progressBar.max = total;
      el.progressBar.value = done;
      what = `${done}/${total}: ${step} done`;
    }),
  );
  clearInterval(tick);
  el.progress.hidden = true;
  if (outcome) {
    renderResults(el.results, outcome, (label) => {
      el.classInput.value = label;
      void explain();
    });
    document.body.dataset.runs = String(Number(document.body.dataset.runs ?? 0) + 1);
  }
}

function wireControls(): void {
  el.modelSelect.addEventListener('change', () => {
    el.custom.hidden = el.modelSelect.value !== CUSTOM;
  });
  el.loadModel.addEventListener('click', () => void loadModel());
  el.imageInput.addEventListener('change', async () => {
    await addFiles(el.imageInput.files);
    el.imageInput.value = '';
  });
  el.dropZone.addEventListener('dragover', (event) => {
    event.preventDefault();
    el.dropZone.classList.add('over');
  });
  el.dropZone.addEventListener('dragleave', () => el.dropZone.classList.remove('over'));
  el.dropZone.addEventListener('drop', (event) => {
    event.preventDefault();
    el.dropZone.classList.remove('over');
    void addFiles(event.dataTransfer?.files);
  });
  el.addSamples.addEventListener('click', async () => {
    for (const { name, url } of SAMPLES) await addImage(name, new Uint8Array(await (await fetch(url)).arrayBuffer()));
  });
  el.layerInput.addEventListener('change', () => markLayer(el.layerTree, el.layerInput.value.trim()));
  el.run.addEventListener('click', () => void explain());
}

async function start(): Promise<void> {
  wireControls();
  const catalog = await guarded('engine', () => engine.request({ type: 'catalog' }));
  if (!catalog) return;
  fillCatalog(catalog);
  await loadModel();
  document.body.dataset.ready = 'true';
}

void start();
