// Small DOM helpers for the page: building elements, drawing the engine's 8-bit RGB pictures, offering
// bytes for download.

import type { RgbImage } from '../../../cam/rendering/image.ts';

type Child = Node | string | null | undefined | false;

/** An element with attributes (strings; `class` included) and children. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attributes: Record<string, string> = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  for (const child of children) if (child) element.append(child);
  return element;
}

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (!element) throw new Error(`page: no element #${id}`);
  return element as T;
}

/** A canvas showing an RGB picture at its own pixel size (CSS scales it). */
export function pictureCanvas(picture: RgbImage, className = ''): HTMLCanvasElement {
  const canvas = h('canvas', { class: className, width: String(picture.width), height: String(picture.height) });
  const rgba = new Uint8ClampedArray(picture.width * picture.height * 4);
  for (let i = 0, j = 0; i < picture.data.length; i += 3, j += 4) {
    rgba[j] = picture.data[i];
    rgba[j + 1] = picture.data[i + 1];
    rgba[j + 2] = picture.data[i + 2];
    rgba[j + 3] = 255;
  }
  canvas.getContext('2d')!.putImageData(new ImageData(rgba, picture.width, picture.height), 0, 0);
  return canvas;
}

/** A link that saves `bytes` as a file (the URL lives as long as the page). */
export function downloadLink(label: string, fileName: string, bytes: Uint8Array | Blob, type = 'application/octet-stream'): HTMLAnchorElement {
  const blob = bytes instanceof Blob ? bytes : new Blob([bytes as Uint8Array<ArrayBuffer>], { type });
  return h('a', { class: 'button', href: URL.createObjectURL(blob), download: fileName }, label);
}

export function formatMs(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`;
}
