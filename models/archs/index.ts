// Registers every architecture with the registry. Import this module once (models/zoo.ts does).

import './resnet_cifar.ts';
