"""Code every chapter of *Everything Is a Mapping* shares.

- ``common.data``: the real data sets (Omniglot, mini-ImageNet, CIFAR-FS) and sinusoid tasks.
- ``common.episodes``: the one N-way K-shot episode sampler all three frameworks read.
- ``common.adapters``: thin views of that sampler as torch / tf.data / Keras inputs.
- ``common.weights``: canonical (framework-neutral) weights and converters.
- ``common.evaluation`` and ``common.results``: accuracy with a 95% CI, the results JSON, tables.
- ``common.exercises``: the exercise checker.

Importing ``common`` imports no deep-learning framework; each adapter imports its own lazily.
"""
