"""Importing upstream pytorch-grad-cam (jacobgil/pytorch-grad-cam) from a local checkout, for the fixture
generators of scripts/ (never part of the project or of CI; no upstream code is kept in this repository),
and loading the other generators of scripts/ (their file names have hyphens) to share their helpers.

The checkout: the commit the shared fixtures were made with, exported to a temporary folder, e.g.
    git -C <mirror of jacobgil/pytorch-grad-cam> archive 084273b3f30b54ad0c64cf8020a4337d979a66e0 \
        pytorch_grad_cam | tar -x -C /tmp/pgc
and pass --upstream /tmp/pgc. Its dependencies come from Debian (python3-torch, python3-torchvision,
python3-opencv, python3-sklearn, python3-scipy, python3-tqdm, python3-matplotlib).

`ttach` (test-time augmentation) is not packaged by Debian; BaseCAM only builds its default transforms at
construction. `install_ttach_stub` puts a module of that name in place whose transforms can be built and
iterated, and refuses to augment: the generators never use aug_smooth, so any use would be a bug.
"""

import importlib.util
import os
import sys
import types

UPSTREAM_COMMIT = '084273b3f30b54ad0c64cf8020a4337d979a66e0'
HERE = os.path.dirname(os.path.abspath(__file__))


def load_script(name, file):
    """Loads scripts/<file> as a module called `name`."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, file))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def install_ttach_stub():
    if 'ttach' in sys.modules:
        return
    tta = types.ModuleType('ttach')

    class _Transform:
        def __init__(self, *args, **kwargs):
            pass

    class Compose:
        def __init__(self, transforms):
            self.transforms = transforms

        def __iter__(self):
            raise RuntimeError('ttach stand-in: aug_smooth is not supported by these generators')

    tta.Compose = Compose
    tta.HorizontalFlip = _Transform
    tta.Multiply = _Transform
    sys.modules['ttach'] = tta


def import_upstream(path):
    """Imports pytorch_grad_cam from `path` (a folder holding pytorch_grad_cam/) and returns the package."""
    if not os.path.isdir(os.path.join(path, 'pytorch_grad_cam')):
        raise SystemExit(f'{path}: no pytorch_grad_cam/ folder (export upstream commit {UPSTREAM_COMMIT} there)')
    install_ttach_stub()
    sys.path.insert(0, os.path.abspath(path))
    import pytorch_grad_cam  # noqa: E402
    return pytorch_grad_cam
