// What the page's bundle gets for the Node modules engine code imports on its Node branches only
// (engine/wasm/platform.ts: fs, worker_threads, os). Nothing here is ever called in a browser; mapping
// them to this empty module keeps Node out of the bundle, explicitly.
export {};
