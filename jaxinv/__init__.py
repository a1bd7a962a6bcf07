"""jaxinv: network inversion of any JAX classifier.

    import jaxinv
    classifier = jaxinv.from_linen(model, variables)      # or from_function / from_nnx
    inv = jaxinv.make_inversion(classifier, image_shape=(28, 28, 1))
    state, history = jaxinv.fit(inv, jax.random.key(0), steps=1500)
    images = jaxinv.sample(inv, state, labels=[0, 1, 2], key=jax.random.key(1))

Importing jaxinv changes nothing process-wide.
"""

from jaxinv.classifier import Classifier, InputSpec, from_function, from_linen, from_nnx
from jaxinv.ensemble import Member
from jaxinv.fit import fit
from jaxinv.inversion import (Inversion, default_optimizer, ensemble_keys, generator_variables,
                              make_inversion, paper_generator, sample)
from jaxinv.saved_generator import load_generator, save_generator
from jaxinv.steps import InversionState, TermContext

__all__ = [
    "Classifier", "InputSpec", "from_function", "from_linen", "from_nnx",
    "Inversion", "InversionState", "TermContext", "Member", "make_inversion", "paper_generator",
    "default_optimizer", "ensemble_keys", "generator_variables", "fit", "sample",
    "save_generator", "load_generator",
]
