"""tf_otcycle: optimal-transport-driven cycleGAN for unsupervised inverse problems.

Importing the package registers every custom Keras object, so
``keras.saving.load_model("generator.keras")`` works in other projects.
"""

from tf_otcycle._startup import import_tensorflow

import_tensorflow()  # without TensorFlow's C++ start-up lines (see tf_otcycle._startup)

from tf_otcycle import layers, losses, metrics, model, models, physics, schedules  # noqa: E402, F401
from tf_otcycle.model import OTCycleGAN  # noqa: E402, F401

__version__ = "0.1.0"
