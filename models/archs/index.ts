// Registers every architecture with the registry. Import this module once (models/zoo.ts does).

import './resnet_cifar.ts';
import './resnet.ts';
import './vgg.ts';
import './mobilenet_v2.ts';
import './efficientnet.ts';
import './convnext.ts';
import './swin.ts';
import './mobilenet_v3.ts';
import './segmentation.ts';
import './vit.ts';
