// The models' public entry (`shapleycam-webgpu/models`): the zoo and loading any registered architecture
// from safetensors, the architecture registry, the module tree, and the safetensors reader/writer.

import './archs/index.ts'; // registers the architectures (a side effect: package.json's sideEffects lists it)

export { loadModel, loadZooModel, zooNames, getZooEntry, stateDictFromSafetensors, type LoadedModel, type ZooEntry, type NamedBytes, type WeightsSource } from './zoo.ts';
export {
  architectureNames, getArchitecture, registerArchitecture, activationLayout, IMAGENET_MEAN, IMAGENET_STD,
  type Architecture, type Preprocessing, type Network, type ActivationLayout, type TokenLayout, type WeightShapes,
} from './registry.ts';
export { Module, ModelError, type StateDictSource } from './module.ts';
export {
  readSafetensors, parseSafetensors, writeSafetensors, serializeSafetensors, SafetensorsFile, SafetensorsError,
  type SafetensorsDType, type SafetensorsEntry, type TensorToWrite,
} from './safetensors.ts';
export { randomStateDict, initializeRandom } from './init.ts';
export { CIFAR10_CLASSES } from './labels.ts';
