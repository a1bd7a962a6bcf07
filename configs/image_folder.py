"""Your own images: a `train/<class>/<image>` + `test/<class>/<image>` folder (PNG or
JPEG, torchvision ImageFolder / Kaggle layout) or a .tar/.tar.gz of one.

The argument is the folder or archive, optionally with `,tiny`:
  jaxinv train-classifier --config configs/image_folder.py:/data/pets --workdir /tmp/pets_classifier
  jaxinv invert --config configs/image_folder.py:/data/pets --workdir /tmp/pets_inversion \
      --config.init_from=/tmp/pets_classifier
  jaxinv sample --workdir /tmp/pets_inversion --num-per-class 10 --out /tmp/pets_samples.npz
Any other config takes the same dataset as `--config.dataset=folder:PATH`. Class names are
the folder names, sorted; the images are decoded once (under JAXINV_TFDS_DIR) and the
classifier's summary.json records the class names and the folder.

Expected: depends on the images; the ResNet (global pooling) takes any image size, and
the generator square images of even size.
"""

from jaxinv.config import default_config
from jaxinv.data import FOLDER_PREFIX


def get_config(arg=None):
  path, _, variant = (arg or "").rpartition(",") if (arg or "").endswith(",tiny") else (arg, "", "")
  if not path:
    raise ValueError("configs/image_folder.py needs the folder or archive as its argument, e.g. "
                     "configs/image_folder.py:/data/pets (or /data/pets,tiny).")
  return default_config(FOLDER_PREFIX + path, variant or None)
