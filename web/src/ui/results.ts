// The results of one run: what was computed where and how long each step took, the structural-zero badge,
// the CLI-format downloads, then per image its top-5 classes, the overlays of every method side by side and,
// for the ShapleyCAM family, the terms picture (the CLI's terms_<NNN>_<image>.png, drawn by the same code).

import { imageStem } from '../../../cam/algorithm/record-files.ts';
import type { ImageOutcome, LayerOutcome, RunOutcome } from '../protocol.ts';
import { downloadLink, formatMs, h, pictureCanvas } from './dom.ts';

/** Why H·A is zero: said once per run where the engine flagged it. */
function zeroBadge(layer: LayerOutcome, target: string): HTMLElement | null {
  if (!layer.hvpStructurallyZero) return null;
  return h(
    'p',
    { class: 'badge zero', 'data-layer': layer.layer },
    h('b', {}, `H·A ≡ 0 at ${layer.layer} (structurally)`),
    ` — under the ${target} utility the head after this layer (ReLU, pooling, linear) is piecewise linear, so its Hessian is zero; ` +
      'the engine knows it from symbolic zeros, not from arithmetic. The second-order term vanishes and ShapleyCAM equals GradCAM here. ' +
      'ReST, softmax or log-softmax bring curvature through the softmax.',
  );
}

function summary(outcome: RunOutcome): HTMLElement {
  const b = outcome.backend;
  const where = h(
    'p',
    { class: 'computed-on' },
    'Computed on ',
    h('b', { id: 'run-backend', 'data-backend': b.name }, b.name),
    b.reason ? ` (auto: ${b.reason})` : '',
    ' — ',
    h('span', { id: 'run-adapter' }, b.description),
    ' — ',
    h(
      'span',
      { id: 'run-fusion', 'data-fused': String(outcome.fused), 'data-dispatches': outcome.dispatches === null ? '' : String(outcome.dispatches) },
      outcome.fused ? 'fused (BatchNorm folded, convolution epilogues and head primitives fused)' : 'unfused',
      outcome.dispatches === null ? '' : `, ${outcome.dispatches} GPU dispatches`,
    ),
  );
  const layers = outcome.layers.map((l) => `${l.layer} [${l.shape.slice(1).join('×')}]`).join(', ');
  const steps = h(
    'table',
    { class: 'steps' },
    h('caption', {}, `utility ${outcome.target}, layer ${layers}`),
    ...outcome.steps.map((s) => h('tr', {}, h('td', {}, s.what), h('td', { class: 'ms' }, formatMs(s.ms)))),
    h('tr', { class: 'total' }, h('td', {}, 'total'), h('td', { class: 'ms' }, formatMs(outcome.totalMs))),
  );
  const downloads = h(
    'p',
    { class: 'downloads' },
    downloadLink('maps.safetensors', 'maps.safetensors', outcome.files.maps),
    ' ',
    downloadLink('terms.safetensors', 'terms.safetensors', outcome.files.terms),
    h('span', { class: 'hint' }, ' as the CLI writes them (cam/<method>, first_order/…, second_order/…; logits, activations/…, gradients/…, hvp/…)'),
  );
  return h('div', { id: 'run-summary' }, where, ...outcome.layers.map((l) => zeroBadge(l, outcome.target)), steps, downloads);
}

function percent(p: number): string {
  return `${(100 * p).toFixed(1)}%`;
}

function imageCard(image: ImageOutcome, index: number, outcome: RunOutcome, pickClass: (label: string) => void): HTMLElement {
  const e = image.explained;
  const top5 = h(
    'ol',
    { class: 'top5' },
    ...image.top5.map((c) => {
      const button = h('button', { type: 'button', 'data-class': c.label, class: c.index === e.index ? 'explained' : '' }, `${c.label} ${percent(c.probability)}`);
      button.addEventListener('click', () => pickClass(c.label));
      return h('li', {}, button);
    }),
  );
  const share = outcome.layers
    .map((l, i) => (l.hvpStructurallyZero ? null : `${l.layer}: second order reaches ${percent(image.secondOrderShare[i])} of the first`))
    .filter(Boolean)
    .join('; ');
  const figure = (caption: string, canvas: HTMLCanvasElement, method?: string) =>
    h('figure', method ? { 'data-method': method } : {}, canvas, h('figcaption', {}, caption));
  const overlays = h(
    'div',
    { class: 'overlays' },
    figure('input', pictureCanvas(image.picture, 'map')),
    ...image.overlays.map((o) => figure(o.method, pictureCanvas(o.image, 'map'), o.method)),
  );
  const fileName = `terms_${imageStem(image.name, index)}.png`;
  let terms: HTMLElement | null = null;
  if (image.terms) {
    const canvas = pictureCanvas(image.terms, 'terms-picture');
    const save = h('button', { type: 'button', class: 'button save-terms' }, fileName);
    save.addEventListener('click', () => {
      canvas.toBlob((blob) => {
        if (!blob) return;
        const link = downloadLink('', fileName, blob);
        link.click();
        setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
      }, 'image/png');
    });
    terms = h(
      'div',
      { class: 'terms' },
      h('h4', {}, 'First- vs second-order (ShapleyCAM family)'),
      h('p', { class: 'hint' }, 'Σ A⊙G, Σ −½·A⊙H·A and their sum on one colour scale; the channels with the largest weights w = mean(G − ½·H·A), split into their two parts. ', share),
      canvas,
      h('p', {}, save),
    );
  }
  return h(
    'article',
    { class: 'image-result', 'data-image': image.name },
    h('h3', {}, image.name),
    h('p', {}, `explained: ${e.label} (p ${e.probability.toFixed(3)}, ${outcome.target} utility ${e.utility.toFixed(3)}). Top 5 — pick one to explain it:`),
    top5,
    overlays,
    terms,
  );
}

export function renderResults(container: HTMLElement, outcome: RunOutcome, pickClass: (label: string) => void): void {
  container.replaceChildren(summary(outcome), ...outcome.images.map((image, i) => imageCard(image, i, outcome, pickClass)));
}
