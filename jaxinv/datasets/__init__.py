"""Dataset readers behind `jaxinv.data` (import that module, not these).

* `errors`     -- `DataError`, raised for any missing, corrupt or unreadable data.
* `idx_files`  -- the official MNIST / Fashion-MNIST IDX files: checksums, download, parsing.
* `idx_tfds`   -- TFDS builders that turn those files into array_record datasets (no TensorFlow).
* `cifar_bin`  -- the CIFAR-10 binary record format, read with numpy.
* `stock_tfds` -- TFDS's own builders (cifar10, svhn_cropped), which need TensorFlow.
* `digits`     -- scikit-learn's bundled 8x8 digits, made MNIST-like.

Every reader returns `(uint8 images N x H x W x C, integer labels N)`; scaling
to [-1, 1] happens once, in `jaxinv.data.load`.
"""
